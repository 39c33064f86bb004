import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DUPLICATE_SIGNAL_WINDOW_MS, signalHandler } from '../../src/lib/signals.js';

function harness() {
  let time = 1_000;
  const calls: string[] = [];
  const handle = signalHandler({
    stop: (s) => calls.push(`stop ${s}`),
    exitNow: (s) => calls.push(`exit ${s}`),
    now: () => time,
  });
  return { calls, handle, advance: (ms: number) => (time += ms) };
}

const S = suite('signals: the first stops in order, a second exits at once');

S('one signal starts the orderly stop', () => {
  const h = harness();
  h.handle('SIGINT');
  assert.equal(h.calls, ['stop SIGINT']);
});

S('the same signal again within the duplicate window is the same Ctrl-C, delivered twice', () => {
  const h = harness();
  h.handle('SIGINT');
  h.advance(DUPLICATE_SIGNAL_WINDOW_MS - 1);
  h.handle('SIGINT');
  assert.equal(h.calls, ['stop SIGINT']);
});

S('a second signal during teardown exits at once', () => {
  const h = harness();
  h.handle('SIGTERM');
  h.advance(DUPLICATE_SIGNAL_WINDOW_MS + 100);
  h.handle('SIGTERM');
  assert.equal(h.calls, ['stop SIGTERM', 'exit SIGTERM']);
});

S('a different signal, even right away, is a second request', () => {
  const h = harness();
  h.handle('SIGTERM');
  h.handle('SIGINT');
  assert.equal(h.calls, ['stop SIGTERM', 'exit SIGINT']);
});

S('the window is short enough that a person pressing Ctrl-C twice is heard', () => {
  assert.ok(DUPLICATE_SIGNAL_WINDOW_MS <= 100, `${DUPLICATE_SIGNAL_WINDOW_MS} ms`);
});

S.run();
