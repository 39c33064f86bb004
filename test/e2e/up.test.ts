// `innisfree up` end to end, as a user runs it, with the local provider: a client in the "internet" namespace
// reaches services on this host through the edge's public ports (TCP and UDP, public:local mappings, a destination
// on another namespace host); status reads the live tunnel; a second up of the same name is refused; a port added
// later updates the same edge; a failing activation is rolled back while the old ports keep working; SIGTERM and
// `down` leave nothing behind.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import { runCli } from '../helpers/cli.js';
import {
  type EdgeFootprint,
  assertNothingLeft,
  footprintOf,
  localProviderUnavailable,
  randomTunnelName,
} from '../helpers/local-edge.js';
import { run } from '../helpers/netns.js';
import { makeTempDir } from '../helpers/tmp.js';
import { type UpProcess, startUp } from '../helpers/up-process.js';

const unavailable = localProviderUnavailable();

interface World {
  dir: ReturnType<typeof makeTempDir>;
  env: Record<string, string>;
  name: string;
  token: string;
  http: Server;
  httpPort: number;
  udp: ReturnType<typeof createSocket>;
  udpPort: number;
  provider: LocalProvider;
  processes: UpProcess[];
  helpers: ChildProcess[];
  footprint?: EdgeFootprint;
  firstEdge?: { id: string; ipv4: string };
}

const world = {} as World;

function up(args: string[], extraEnv: Record<string, string> = {}): UpProcess {
  const process = startUp(['--provider', 'local', '--name', world.name, ...args], { ...world.env, ...extraEnv });
  world.processes.push(process);
  return process;
}

async function clientGet(ipv4: string, port: number): Promise<string> {
  const result = await world.provider.runInClient(
    world.name,
    ['curl', '-sS', '--http0.9', '--max-time', '5', `http://${ipv4}:${port}/`],
    { timeoutMs: 15_000 },
  );
  return result.exitCode === 0 ? result.stdout : `curl failed (${result.exitCode}): ${result.stderr.trim()}`;
}

async function clientUdp(ipv4: string, port: number, payload: string): Promise<string> {
  const result = await world.provider.runInClient(world.name, ['socat', '-T', '3', '-', `UDP:${ipv4}:${port}`], {
    input: payload,
    timeoutMs: 15_000,
  });
  return result.stdout;
}

function edgeOf(ready: Record<string, unknown>): string {
  assert.type(ready.ipv4, 'string');
  return ready.ipv4 as string;
}

const U = suite('up: end to end with the local provider');

U.before(async () => {
  if (unavailable) return;
  world.dir = makeTempDir('innisfree-up-');
  world.env = {
    INNISFREE_STATE_DIR: join(world.dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(world.dir.path, 'local'),
    XDG_CONFIG_HOME: join(world.dir.path, 'config'),
  };
  world.name = randomTunnelName();
  world.token = `hello-${world.name}`;
  world.processes = [];
  world.helpers = [];
  world.provider = new LocalProvider({ env: world.env, runtimeDir: world.env.INNISFREE_LOCAL_DIR });
  world.http = createServer((req, res) => res.end(`${world.token} ${req.url}\n`));
  await new Promise<void>((resolve) => world.http.listen(0, '127.0.0.1', resolve));
  world.httpPort = (world.http.address() as AddressInfo).port;
  world.udp = createSocket('udp4');
  world.udp.on('message', (message, remote) =>
    world.udp.send(Buffer.concat([Buffer.from('echo:'), message]), remote.port, remote.address),
  );
  await new Promise<void>((resolve) => world.udp.bind(0, '127.0.0.1', resolve));
  world.udpPort = world.udp.address().port;
});

U.after(async () => {
  if (unavailable) return;
  for (const process of world.processes) await process.stop('SIGKILL');
  for (const helper of world.helpers) helper.kill('SIGKILL');
  await world.provider
    .destroyEdge(world.name, { emit: () => {}, signal: new AbortController().signal })
    .catch(() => {});
  world.http.close();
  world.udp.close();
  world.dir.remove();
});

U('TCP and UDP through the public ports, a public:local mapping, status, a refused second up', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const first = up(['--ports', `8080:${world.httpPort}/tcp,5353:${world.udpPort}/udp`, '--keep']);
  const ready = await first.ready();
  const ipv4 = edgeOf(ready);
  assert.match(
    String(ready.tryIt),
    new RegExp(`ip netns exec isf-inet-[0-9a-f]{8} curl .*http://${ipv4.replace(/\./g, '\\.')}:8080/`),
  );

  assert.is(await clientGet(ipv4, 8080), `${world.token} /\n`);
  const payload = `ping-${Math.random().toString(36).slice(2)}`;
  assert.is(await clientUdp(ipv4, 5353, payload), `echo:${payload}`);

  const status = await runCli(['status', world.name, '--json'], world.env);
  assert.is(status.code, 0, status.stderr);
  const report = JSON.parse(status.stdout) as {
    phase: string;
    running: boolean;
    handshakeAgeSeconds: number | null;
    configInSync: boolean;
  };
  assert.is(report.phase, 'ready');
  assert.is(report.running, true);
  assert.ok(
    report.handshakeAgeSeconds !== null && report.handshakeAgeSeconds < 60,
    `recent handshake: ${report.handshakeAgeSeconds}`,
  );
  assert.is(report.configInSync, true);

  const second = await runCli(['up', '--provider', 'local', '--name', world.name, '--ports', '8080/tcp'], world.env);
  assert.is(second.code, 8, second.stderr);
  assert.match(second.stderr, new RegExp(`tunnel "${world.name}" is already in use by pid ${first.child.pid}`));

  const code = await first.stop('SIGTERM');
  assert.is(code, 0, first.stderr());
  const edge = await world.provider.findEdge(world.name);
  assert.ok(edge, '--keep kept the edge');
  world.firstEdge = { id: edge!.id, ipv4: edge!.ipv4 };
  assert.not.match(readFileSync('/proc/net/dev', 'utf8'), /isf-/, 'the home link is gone');
});

U('a port added later updates the same edge in place', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  assert.ok(world.firstEdge, 'needs the kept edge of the first test');
  const again = up([
    '--ports',
    `8080:${world.httpPort}/tcp,5353:${world.udpPort}/udp,8443:${world.httpPort}/tcp`,
    '--keep',
  ]);
  const ready = await again.ready();
  assert.is(edgeOf(ready), world.firstEdge!.ipv4, 'same address');
  assert.is((await world.provider.findEdge(world.name))!.id, world.firstEdge!.id, 'same edge');
  const deploy = again.events.find((e) => e.type === 'step' && e.id === 'deploy' && e.status !== 'start');
  assert.is(deploy?.status, 'done', 'the changed config was deployed');
  const edgeStep = again.events.find(
    (e) => e.type === 'log' && typeof e.message === 'string' && e.message.startsWith('found edge'),
  );
  assert.ok(edgeStep, 'the edge was found, not created');
  assert.is(await clientGet(world.firstEdge!.ipv4, 8443), `${world.token} /\n`);
  assert.is(await clientGet(world.firstEdge!.ipv4, 8080), `${world.token} /\n`);
  assert.is(await again.stop('SIGINT'), 0, again.stderr());
});

U('a failing activation is rolled back and the old ports keep working', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const statePath = (file: string) => join(world.env.INNISFREE_STATE_DIR!, world.name, file);
  const before = JSON.parse(readFileSync(statePath('status.json'), 'utf8')) as { deployedConfigHash: string };
  const edgeJson = readFileSync(statePath('edge/edge.json'), 'utf8');
  const failing = up(['--ports', `8080:${world.httpPort}/tcp,9443:${world.httpPort}/tcp`, '--keep'], {
    INNISFREE_LOCAL_FAIL_ACTIVATION: '1',
  });
  await failing.ready();
  assert.match(JSON.stringify(failing.events), /rolled back/);
  assert.match(JSON.stringify(failing.events), /previous configuration is still serving/);
  // The previous configuration keeps serving end to end; the refused port never opened.
  assert.is(await clientGet(world.firstEdge!.ipv4, 8443), `${world.token} /\n`);
  assert.is(await clientGet(world.firstEdge!.ipv4, 8080), `${world.token} /\n`);
  assert.match(await clientGet(world.firstEdge!.ipv4, 9443), /curl failed/);
  // Local state describes what the edge serves.
  const during = JSON.parse(readFileSync(statePath('status.json'), 'utf8')) as {
    deployedConfigHash: string;
    plannedConfigHash: string;
    message: string;
  };
  assert.is(during.deployedConfigHash, before.deployedConfigHash);
  assert.is.not(during.plannedConfigHash, during.deployedConfigHash);
  assert.match(during.message, /rolled back/);
  assert.is(readFileSync(statePath('edge/edge.json'), 'utf8'), edgeJson);
  const text = await runCli(['status', world.name], world.env);
  assert.match(text.stdout, /differs: run up or innisfree deploy/);
  // The run ends as "rolled back": the change it was asked for did not happen.
  assert.is(await failing.stop('SIGTERM'), 6, failing.stderr());
  assert.ok(await world.provider.findEdge(world.name), '--keep kept the edge');
});

U('deploy re-applies the recorded config; a failing activation exits 6', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const failed = await runCli(['deploy', world.name], { ...world.env, INNISFREE_LOCAL_FAIL_ACTIVATION: '1' });
  assert.is(failed.code, 6, failed.stderr);
  assert.match(failed.stderr, /rolled .*back.*previous configuration is still serving/);
  const ok = await runCli(['deploy', world.name], world.env);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^Deployed [0-9a-f]{12} to innisfree-/);
  const status = JSON.parse(readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'status.json'), 'utf8')) as {
    message: string | null;
  };
  assert.is(status.message, null);
});

U('a destination on another namespace host', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const destination = await world.provider.ensureDestination(world.name);
  const service = spawn(
    'ip',
    [
      'netns',
      'exec',
      destination.namespace,
      'socat',
      `TCP-LISTEN:${world.httpPort},bind=${destination.address},fork,reuseaddr`,
      'SYSTEM:echo from-destination',
    ],
    { stdio: 'ignore' },
  );
  world.helpers.push(service);
  const listening = async () =>
    (await run('ip', ['netns', 'exec', destination.namespace, 'ss', '-ltn'])).stdout.includes(`:${world.httpPort}`);
  for (let i = 0; i < 50 && !(await listening()); i++) await new Promise((r) => setTimeout(r, 100));
  const tunnel = up([
    '--ports',
    `8080:${world.httpPort}/tcp,5353:${world.udpPort}/udp,8443:${world.httpPort}/tcp`,
    '--keep',
    '--destination',
    destination.address,
  ]);
  await tunnel.ready();
  assert.ok(
    tunnel.events.some((e) => e.type === 'step' && e.id === 'deploy' && e.status === 'skipped'),
    'the edge config did not change',
  );
  assert.is(await clientGet(world.firstEdge!.ipv4, 8080), 'from-destination\n');
  assert.is(await tunnel.stop('SIGTERM'), 0, tunnel.stderr());
  service.kill('SIGKILL');
});

U('down removes the edge, its state, and everything it made', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const local = await world.provider.localEdge(world.name);
  assert.ok(local);
  const footprint = footprintOf(local!, []);
  const result = await runCli(['down', world.name], world.env);
  assert.is(result.code, 0, result.stderr);
  assertNothingLeft(footprint);
  assert.not.ok(existsSync(join(world.env.INNISFREE_STATE_DIR!, world.name)), 'local state removed');
});

U('without --keep, SIGTERM leaves no namespace, link, process or socket behind', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const tunnel = up(['--ports', `8080:${world.httpPort}/tcp`]);
  const ready = await tunnel.ready();
  assert.is(await clientGet(edgeOf(ready), 8080), `${world.token} /\n`);
  const local = await world.provider.localEdge(world.name);
  const home = JSON.parse(readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'home.json'), 'utf8')) as {
    interface: string;
  };
  const edgeJson = JSON.parse(
    readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'edge', 'edge.json'), 'utf8'),
  ) as { wireguard: { interface: string } };
  const footprint = footprintOf(local!, [home.interface, edgeJson.wireguard.interface]);
  assert.is(await tunnel.stop('SIGTERM'), 0, tunnel.stderr());
  assertNothingLeft(footprint);
  assert.not.match(readFileSync('/proc/net/dev', 'utf8'), new RegExp(`${home.interface}:`), 'home link removed');
  const status = JSON.parse(readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'status.json'), 'utf8')) as {
    phase: string;
    edge: unknown;
  };
  assert.is(status.phase, 'stopped');
  assert.is(status.edge, null);
});

U.run();
