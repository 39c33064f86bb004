// Reloading a running `innisfree up`, end to end with the local provider. First: SIGHUP (a closed terminal, or a
// reload asked the usual Unix way) must not kill `up` without teardown; the tunnel keeps serving, and a later
// SIGTERM still removes everything it made. Then `innisfree reload` with a changed --file: a held connection on an
// unchanged port survives adding a port, removing it, an invalid file and a deploy the edge rolls back.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { type AddressInfo, type Server as TcpServer, createServer as createTcpServer } from 'node:net';
import { runCli } from '../helpers/cli.js';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
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
  echo: TcpServer;
  echoPort: number;
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
  const result = await world.provider.runInClient(
    world.name,
    ['curl', '-sS', '--http0.9', '--max-time', '5', `http://${ipv4}:${port}/`],
    { timeoutMs: 15_000 },
  );
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
  world.echo = createTcpServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => world.echo.listen(0, '127.0.0.1', resolve));
  world.echoPort = (world.echo.address() as AddressInfo).port;
});

R.after(async () => {
  if (unavailable) return;
  for (const process of world.processes) await process.stop('SIGKILL');
  await world.provider
    .destroyEdge(world.name, { emit: () => {}, signal: new AbortController().signal })
    .catch(() => {});
  world.http.close();
  world.echo.close();
  world.dir.remove();
});

R('SIGHUP does not kill up: the tunnel keeps serving, and SIGTERM afterwards still leaves nothing behind', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const tunnel = up(['--ports', `8080:${world.httpPort}/tcp`]);
  const ready = await tunnel.ready();
  const ipv4 = String(ready.ipv4);
  assert.is(await clientGet(ipv4, 8080), `${world.token} /\n`);
  const local = await world.provider.localEdge(world.name);
  const home = JSON.parse(readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'home.json'), 'utf8')) as {
    interface: string;
  };
  const edgeJson = JSON.parse(
    readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'edge', 'edge.json'), 'utf8'),
  ) as { wireguard: { interface: string } };
  const footprint = footprintOf(local!, [home.interface, edgeJson.wireguard.interface]);

  tunnel.child.kill('SIGHUP');
  const early = await Promise.race([
    tunnel.exited.then((code) => ({ code })),
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 1500)),
  ]);
  assert.is(early, undefined, `up exited on SIGHUP (${JSON.stringify(early)}); stderr: ${tunnel.stderr()}`);
  assert.is(await clientGet(ipv4, 8080), `${world.token} /\n`, 'still serving after SIGHUP');

  assert.is(await tunnel.stop('SIGTERM'), 0, tunnel.stderr());
  assertNothingLeft(footprint);
});

/** A TCP connection from the internet client, held open; `alive` sends a line and expects it echoed back. */
function holdConnection(namespace: string, ipv4: string, port: number) {
  const script =
    `const s=require('net').connect(${port},'${ipv4}');s.on('connect',()=>console.log('connected'));` +
    `s.on('data',d=>process.stdout.write(d));s.on('close',()=>{console.log('closed');process.exit(0)});` +
    `s.on('error',e=>console.log('error '+e.code));process.stdin.on('data',d=>s.write(d));`;
  const child = spawn('ip', ['netns', 'exec', namespace, process.execPath, '-e', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let n = 0;
  const waitFor = (text: string, ms: number) =>
    new Promise<boolean>((resolve) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if (output.includes(text) || output.includes('closed') || Date.now() - started > ms) {
          clearInterval(poll);
          resolve(output.includes(text));
        }
      }, 50);
    });
  return {
    connected: () => waitFor('connected', 10_000),
    alive: async (): Promise<boolean> => {
      const line = `ping-${++n}`;
      child.stdin.write(`${line}\n`);
      return waitFor(line, 5_000);
    },
    output: () => output,
    close: () => child.kill('SIGKILL'),
  };
}

R(
  'innisfree reload: a held connection on A survives adding B, removing B, an invalid file and a rolled-back deploy',
  async () => {
    if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
    const file = join(world.dir.path, 'tunnel.json');
    const failFile = join(world.dir.path, 'fail-activation');
    const A = `7000:${world.echoPort}/tcp`;
    const writePorts = (ports: string[]) => writeFileSync(file, JSON.stringify({ ports }));
    const reload = () => runCli(['reload', world.name], world.env);
    const reloadEvents = () => tunnel.events.filter((e) => e.type === 'reload');
    const statusJson = () =>
      JSON.parse(readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'status.json'), 'utf8')) as Record<
        string,
        // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the test reads fields of its choosing
        any
      >;

    const none = await reload();
    assert.is(none.code, 10, `reload without a running up: ${none.stderr}`);
    assert.match(
      none.stderr,
      /^innisfree: no innisfree up is running for tunnel "[^"]+", so there is nothing to reload/,
    );
    assert.is(none.stderr.trim().split('\n').length, 1, none.stderr);

    writePorts([A]);
    const tunnel = startUp(['--provider', 'local', '--name', world.name, '--file', file], {
      ...world.env,
      INNISFREE_LOCAL_FAIL_ACTIVATION_FILE: failFile,
    });
    world.processes.push(tunnel);
    const ready = await tunnel.ready();
    const ipv4 = String(ready.ipv4);
    const local = await world.provider.localEdge(world.name);
    const edgeId = statusJson().edge.id as string;
    const held = holdConnection(local!.layout.namespaces.client, ipv4, 7000);
    try {
      assert.ok(await held.connected(), `held connection: ${held.output()}`);
      assert.ok(await held.alive(), `held connection echoes: ${held.output()}`);

      // Add B.
      writePorts([A, `8080:${world.httpPort}/tcp`]);
      const added = await reload();
      assert.is(added.code, 0, added.stderr);
      assert.match(added.stdout, /reloaded: config [0-9a-f]{12}, ports \+8080\/tcp/);
      assert.equal(reloadEvents().at(-1)?.status, 'reloaded');
      assert.equal(reloadEvents().at(-1)?.added, ['8080/tcp']);
      assert.is(await clientGet(ipv4, 8080), `${world.token} /\n`, 'B answers after the reload');
      assert.ok(await held.alive(), `A survives adding B: ${held.output()}`);

      // Remove B.
      writePorts([A]);
      const removed = await reload();
      assert.is(removed.code, 0, removed.stderr);
      assert.equal(reloadEvents().at(-1)?.removed, ['8080/tcp']);
      const gone = await clientGet(ipv4, 8080);
      // Refused by the edge, or dropped by its firewall (NixOS drops by default): either way B no longer answers.
      assert.match(gone, /^curl failed \((7|28)\)/, `B is refused once removed: ${gone}`);
      assert.ok(await held.alive(), `A survives removing B: ${held.output()}`);

      // An invalid file: one clear line, the old config keeps serving.
      writeFileSync(file, JSON.stringify({ ports: ['not-a-port'] }));
      const invalid = await reload();
      assert.is(invalid.code, 2, invalid.stderr);
      assert.is(invalid.stderr.trim().split('\n').length, 1, invalid.stderr);
      assert.match(
        invalid.stderr,
        /reload of tunnel "[^"]+" failed, the previous configuration keeps serving: .*not-a-port/,
      );
      assert.is(reloadEvents().at(-1)?.status, 'reload-failed');
      assert.is(tunnel.child.exitCode, null, 'up still runs');
      assert.ok(await held.alive(), `A survives an invalid reload: ${held.output()}`);

      // A deploy the edge rolls back: reported, home stays on the old plan, status says so.
      writePorts([A, `8081:${world.httpPort}/tcp`]);
      writeFileSync(failFile, '');
      const servedBefore = statusJson().deployedConfigHash as string;
      const rolled = await reload();
      rmSync(failFile);
      assert.is(rolled.code, 6, rolled.stderr);
      assert.match(rolled.stderr, /rolled back/);
      assert.is(tunnel.child.exitCode, null, 'up still runs after a rollback');
      assert.ok(await held.alive(), `A survives a rolled-back reload: ${held.output()}`);
      const refused = await clientGet(ipv4, 8081);
      assert.match(refused, /^curl failed \((7|28)\)/, `the port of the rolled-back config does not serve: ${refused}`);
      const after = statusJson();
      assert.is(after.lastReload.outcome, 'failed');
      assert.match(after.lastReload.message, /rolled back/);
      assert.is(after.deployedConfigHash, servedBefore, 'status.json names the config that serves');
      assert.is(after.plannedConfigHash, servedBefore);
      const status = await runCli(['status', world.name], world.env);
      assert.match(status.stdout, /last reload .*FAILED.*rolled back/);

      // The same edge and address after all of it.
      assert.is(statusJson().edge.id, edgeId);
      assert.is(statusJson().edge.ipv4, ipv4);
    } finally {
      held.close();
    }
    assert.is(await tunnel.stop('SIGTERM'), 0, tunnel.stderr());
  },
);

R.run();
