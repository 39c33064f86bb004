import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import type { HealthEvent } from '../../src/lib/events.js';
import { createRenderer } from '../../src/lib/progress-renderer.js';

function capture(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({ write: (chunk, _enc, done) => ((text += String(chunk)), done()) });
  return { stream, text: () => text };
}

const event = (status: HealthEvent['status'], detail?: string): HealthEvent => ({
  type: 'health',
  tunnel: 'web',
  status,
  problems: ["the edge's forwarder (nginx) is not running"],
  ...(detail ? { detail } : {}),
});

const H = suite('render: health events of the watch');

H('plain: a degraded tunnel is a warning line, a repair is news, on stderr', () => {
  const err = capture();
  const out = capture();
  const renderer = createRenderer('plain', err.stream, out.stream);
  renderer.emit(event('degraded'));
  renderer.emit(event('repairing', 'restarted nginx'));
  renderer.emit(event('repaired'));
  renderer.emit(event('failed'));
  assert.is(out.text(), '');
  assert.equal(err.text().split('\n'), [
    "warning: tunnel web is degraded: the edge's forwarder (nginx) is not running",
    'tunnel web: repairing (restarted nginx)',
    'tunnel web is repaired and serving again',
    "warning: tunnel web could not be repaired: the edge's forwarder (nginx) is not running",
    '',
  ]);
});

H('json: the event as it is, one line', () => {
  const err = capture();
  const out = capture();
  createRenderer('json', err.stream, out.stream, { jsonEvents: 'stdout' }).emit(event('degraded'));
  const line = JSON.parse(out.text()) as HealthEvent & { time: string };
  assert.is(line.type, 'health');
  assert.is(line.status, 'degraded');
  assert.equal(line.problems, ["the edge's forwarder (nginx) is not running"]);
});

H.run();
