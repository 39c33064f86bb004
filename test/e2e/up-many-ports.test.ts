// Whatever port set the CLI accepts, the edge serves and `up` verifies quickly: 1,000 public TCP ports on the local
// provider (nginx forwarding, the home forwarder) come up, every port is probed through the tunnel and on the edge,
// and a client reaches a port in the middle of the range. The time to ready is printed, not asserted (machines
// differ); before the probes ran in parallel on the edge this took minutes and failed on nginx's connection limit.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Server, createServer } from 'node:http';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import { localProviderUnavailable, randomTunnelName } from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';
import { type UpProcess, startUp } from '../helpers/up-process.js';

const unavailable = localProviderUnavailable();
const FIRST = 41000;
// INNISFREE_TEST_PORT_COUNT=4096 runs the most the CLI accepts (about a minute here).
const COUNT = Number(process.env.INNISFREE_TEST_PORT_COUNT ?? 1000);

interface World {
  dir: ReturnType<typeof makeTempDir>;
  env: Record<string, string>;
  name: string;
  provider: LocalProvider;
  http: Server;
  processes: UpProcess[];
}
const world = {} as World;
const M = suite('up: 1,000 ports on the local provider');

M.before(async () => {
  if (unavailable) return;
  world.dir = makeTempDir('innisfree-many-');
  world.env = {
    INNISFREE_STATE_DIR: join(world.dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(world.dir.path, 'local'),
    XDG_CONFIG_HOME: join(world.dir.path, 'config'),
  };
  world.name = randomTunnelName();
  world.processes = [];
  world.provider = new LocalProvider({ env: world.env, runtimeDir: world.env.INNISFREE_LOCAL_DIR });
  world.http = createServer((req, res) => res.end(`many ${req.url}\n`));
  await new Promise<void>((resolve) => world.http.listen(FIRST + COUNT / 2, '127.0.0.1', resolve));
});

M.after(async () => {
  if (unavailable) return;
  for (const process of world.processes) await process.stop('SIGKILL');
  await world.provider
    .destroyEdge(world.name, { emit: () => {}, signal: new AbortController().signal })
    .catch(() => {});
  world.http.close();
  world.dir.remove();
});

M('1,000 TCP ports: ready in seconds, every port verified, a client reaches one', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const started = Date.now();
  const tunnel = startUp(
    [
      '--provider',
      'local',
      '--name',
      world.name,
      '--ports',
      `${FIRST}-${FIRST + COUNT - 1}/tcp`,
      '--home-forwarding',
      'proxy',
    ],
    world.env,
  );
  world.processes.push(tunnel);
  const ready = await tunnel.ready(300_000);
  const at = (id: string, status: string) =>
    Date.parse(String(tunnel.events.find((e) => e.type === 'step' && e.id === id && e.status === status)?.time));
  const verifyMs = at('verify', 'done') - at('verify', 'start');
  console.log(
    `  ${COUNT} ports: ready after ${((Date.now() - started) / 1000).toFixed(1)} s, of which verifying ` +
      `${(verifyMs / 1000).toFixed(1)} s`,
  );
  assert.ok(Number.isFinite(verifyMs), 'verified');
  assert.equal(ready.ports, [
    `${String(ready.ipv4)}:${FIRST}-${FIRST + COUNT - 1}/tcp -> 127.0.0.1:${FIRST}-${FIRST + COUNT - 1}`,
  ]);
  const port = FIRST + COUNT / 2;
  const result = await world.provider.runInClient(
    world.name,
    ['curl', '-sS', '--max-time', '5', `http://${String(ready.ipv4)}:${port}/x`],
    { timeoutMs: 15_000 },
  );
  assert.is(result.stdout, 'many /x\n', result.stderr);
  assert.is(await tunnel.stop('SIGTERM'), 0, tunnel.stderr());
});

M.run();
