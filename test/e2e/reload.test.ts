// Reloading a running `innisfree up`, end to end with the local provider. First: SIGHUP (a closed terminal, or a
// reload asked the usual Unix way) must not kill `up` without teardown; the tunnel keeps serving, and a later
// SIGTERM still removes everything it made.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/provider.js';
import { assertNothingLeft, footprintOf, localProviderUnavailable, randomTunnelName } from '../helpers/local-edge.js';
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
  provider: LocalProvider;
  processes: UpProcess[];
}

const world = {} as World;
const R = suite('reload: a running up and SIGHUP');

function up(args: string[]): UpProcess {
  const process = startUp(['--provider', 'local', '--name', world.name, ...args], world.env);
  world.processes.push(process);
  return process;
}

async function clientGet(ipv4: string, port: number): Promise<string> {
  const result = await world.provider.runInClient(world.name, ['curl', '-sS', '--http0.9', '--max-time', '5', `http://${ipv4}:${port}/`], { timeoutMs: 15_000 });
  return result.exitCode === 0 ? result.stdout : `curl failed (${result.exitCode}): ${result.stderr.trim()}`;
}

R.before(async () => {
  if (unavailable) return;
  world.dir = makeTempDir('innisfree-reload-');
  world.env = {
    INNISFREE_STATE_DIR: join(world.dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(world.dir.path, 'local'),
    XDG_CONFIG_HOME: join(world.dir.path, 'config'),
  };
  world.name = randomTunnelName();
  world.token = `hello-${world.name}`;
  world.processes = [];
  world.provider = new LocalProvider({ env: world.env, runtimeDir: world.env.INNISFREE_LOCAL_DIR });
  world.http = createServer((req, res) => res.end(`${world.token} ${req.url}\n`));
  await new Promise<void>((resolve) => world.http.listen(0, '127.0.0.1', resolve));
  world.httpPort = (world.http.address() as AddressInfo).port;
});

R.after(async () => {
  if (unavailable) return;
  for (const process of world.processes) await process.stop('SIGKILL');
  await world.provider.destroyEdge(world.name, { emit: () => {}, signal: new AbortController().signal }).catch(() => {});
  world.http.close();
  world.dir.remove();
});

R('SIGHUP does not kill up: the tunnel keeps serving, and SIGTERM afterwards still leaves nothing behind', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const tunnel = up(['--ports', `8080:${world.httpPort}/tcp`]);
  const ready = await tunnel.ready();
  const ipv4 = String(ready.ipv4);
  assert.is(await clientGet(ipv4, 8080), `${world.token} /\n`);
  const local = await world.provider.localEdge(world.name);
  const home = JSON.parse(readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'home.json'), 'utf8')) as { interface: string };
  const edgeJson = JSON.parse(readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'edge', 'edge.json'), 'utf8')) as { wireguard: { interface: string } };
  const footprint = footprintOf(local!, [home.interface, edgeJson.wireguard.interface]);

  tunnel.child.kill('SIGHUP');
  const early = await Promise.race([tunnel.exited.then((code) => ({ code })), new Promise<undefined>((r) => setTimeout(() => r(undefined), 1500))]);
  assert.is(early, undefined, `up exited on SIGHUP (${JSON.stringify(early)}); stderr: ${tunnel.stderr()}`);
  assert.is(await clientGet(ipv4, 8080), `${world.token} /\n`, 'still serving after SIGHUP');

  assert.is(await tunnel.stop('SIGTERM'), 0, tunnel.stderr());
  assertNothingLeft(footprint);
});

R.run();
