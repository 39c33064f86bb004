import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { proxyCommand } from '../../src/commands/proxy.js';
import { runUntilStopped } from '../../src/home/data-plane.js';
import { writeHomeConfig } from '../../src/home/home-config-file.js';
import { DataPlaneError } from '../../src/lib/errors.js';
import type { ProgressEvent } from '../../src/lib/events.js';
import type { HomeConfig } from '../../src/plan.js';
import { tunnelPaths } from '../../src/state/paths.js';
import { runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { runCheck, startTrafficServer } from '../helpers/traffic.js';

const home: HomeConfig = {
  name: 'web',
  interface: 'isf-web',
  address: '10.50.7.2/30',
  edgeAddress: '10.50.7.1',
  edgeWireguardPort: 51820,
  persistentKeepalive: 25,
  mtu: 1420,
  allowedIps: ['10.50.7.1/32'],
  policyRouting: null,
  destination: 'none',
  forwarding: 'none',
  masquerade: false,
  forwards: [],
};

// ---
const usage = suite('innisfree proxy: usage errors (exit 2, one line with a hint)');
let state: ReturnType<typeof makeTempDir>;
usage.before.each(() => {
  state = makeTempDir();
});
usage.after.each(() => state.remove());

async function expectUsage(args: string[], pattern: RegExp): Promise<string> {
  const result = await runCli(['proxy', ...args], { INNISFREE_STATE_DIR: state.path });
  assert.is(result.code, 2, result.stderr);
  assert.match(result.stderr, pattern);
  assert.is(result.stderr.trim().split('\n').length, 1);
  assert.match(result.stderr, /\(hint: /);
  return result.stderr;
}

usage('neither a name nor addresses', async () => {
  await expectUsage([], /proxy needs a tunnel name, or --listen and --ports/);
  await expectUsage(['--listen', '127.0.0.1'], /proxy needs a tunnel name/);
});

usage('a tunnel without home.json points at up', async () => {
  const stderr = await expectUsage(['web'], /tunnel "web" has no home plan/);
  assert.match(stderr, /innisfree up --name web/);
});

usage('a damaged home.json, and one whose destination is none', async () => {
  const paths = tunnelPaths(state.path, 'web');
  mkdirSync(paths.dir, { recursive: true });
  writeFileSync(paths.home, '{"name": "web"');
  await expectUsage(['web'], /home\.json is damaged/);
  await writeHomeConfig(paths, home);
  await expectUsage(['web'], /forwards nothing: its destination is "none"/);
});

usage('bad values', async () => {
  await expectUsage(['--listen', 'localhost', '--ports', '80'], /--listen: "localhost" is not an IP address/);
  await expectUsage(['--listen', '127.0.0.1', '--ports', '80/sctp'], /unknown protocol "sctp"/);
  await expectUsage(['--listen', '127.0.0.1', '--ports', '80,80'], /given twice/);
  await expectUsage(
    ['--listen', '127.0.0.1', '--ports', '80', '--destination', 'none'],
    /--destination none leaves nothing/,
  );
  await expectUsage(
    ['--listen', '127.0.0.1', '--ports', '80', '--idle-timeout', 'soon'],
    /--idle-timeout: "soon" is not a number of seconds/,
  );
  await expectUsage(
    ['--listen', '127.0.0.1', '--ports', '80', '--max-connections', '0'],
    /--max-connections: "0" is not a positive whole number/,
  );
  await expectUsage(['Web!'], /"Web!" is not a tunnel name/);
  await expectUsage(['web', '--ports', '80'], /--ports cannot be combined with a tunnel name/);
});

usage.run();

// ---
const running = suite('innisfree proxy: running and stopping');

running('forwards PUBLIC to destination:LOCAL until the signal, then closes and returns', async () => {
  const service = await startTrafficServer('127.0.0.1', 0);
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const listenPort = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const events: ProgressEvent[] = [];
  const controller = new AbortController();
  const done = proxyCommand(
    { env: {}, emit: (e) => events.push(e), signal: controller.signal },
    { flags: { listen: '127.0.0.1', ports: `${listenPort}:${service.port}/tcp`, destination: '127.0.0.1' } },
  );
  for (let i = 0; i < 100 && !events.some((e) => e.type === 'log' && /proxy running/.test(e.message)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const messages = events.map((e) => (e.type === 'log' ? e.message : ''));
  assert.ok(
    messages.includes(`forwarding 127.0.0.1:${listenPort}/tcp -> 127.0.0.1:${service.port}`),
    messages.join('\n'),
  );
  const check = await runCheck({ kind: 'tcp-echo', host: '127.0.0.1', port: listenPort, bytes: 10_000 });
  assert.ok(check.ok, check.detail);
  controller.abort();
  assert.equal(await done, {});
  assert.ok(events.some((e) => e.type === 'log' && /proxy stopped; 1 connections\/sessions/.test(e.message)));
  // The port is free again.
  const again = createServer();
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject);
    again.listen(listenPort, '127.0.0.1', () => resolve());
  });
  await new Promise<void>((resolve) => again.close(() => resolve()));
  await service.close();
});

running('runUntilStopped: a signal stops once and resolves; a failure stops once and rethrows', async () => {
  let stops = 0;
  const stop = async (): Promise<void> => {
    stops++;
  };
  const never = new Promise<never>(() => {});
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 10);
  await runUntilStopped(controller.signal, never, stop);
  assert.is(stops, 1);

  const fault = new DataPlaneError('listener broke');
  try {
    await runUntilStopped(new AbortController().signal, Promise.reject(fault), stop);
    assert.unreachable('failure swallowed');
  } catch (error) {
    assert.is(error, fault);
  }
  assert.is(stops, 2);

  const already = new AbortController();
  already.abort();
  await runUntilStopped(already.signal, never, stop);
  assert.is(stops, 3);
});

running.run();
