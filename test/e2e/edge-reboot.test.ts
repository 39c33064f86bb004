// An edge that reboots while `up` runs (issue 16): everything on the local edge stops as at a power cut — every
// process in its namespace, its WireGuard link, its nftables state — and after a while comes back the way a NixOS
// edge boots: sshd, then the serving generation activated again. `up` notices, waits, re-establishes, and the same
// edge serves again; no new edge is made.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import { EDGE_REPAIR_COMMAND } from '../../src/edge/edge-session.js';
import { SSHD } from '../../src/providers/local/local-edge-builder.js';
import { runCli } from '../helpers/cli.js';
import { localProviderUnavailable, randomTunnelName } from '../helpers/local-edge.js';
import { run } from '../helpers/netns.js';
import { makeTempDir } from '../helpers/tmp.js';
import { type UpProcess, startUp } from '../helpers/up-process.js';

const unavailable = localProviderUnavailable();
const DOWN_MS = 40_000;
const B = suite('an edge that reboots while up runs (local provider)');

const world = {} as {
  dir: ReturnType<typeof makeTempDir>;
  env: Record<string, string>;
  name: string;
  http: Server;
  port: number;
  provider: LocalProvider;
  tunnel?: UpProcess;
};

async function clientGet(ipv4: string): Promise<string> {
  const result = await world.provider.runInClient(
    world.name,
    ['curl', '-sS', '--max-time', '5', `http://${ipv4}:8080/`],
    { timeoutMs: 15_000 },
  );
  return result.exitCode === 0 ? result.stdout : `curl failed (${result.exitCode})`;
}

/** Power cut: every process of the edge namespace killed, its links' kernel state and firewall gone with them. */
async function powerCut(namespace: string, wireguardInterface: string): Promise<void> {
  const pids = (await run('ip', ['netns', 'pids', namespace])).stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => p > 1);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await run('ip', ['-n', namespace, 'link', 'del', 'dev', wireguardInterface]);
  await run('ip', ['netns', 'exec', namespace, 'nft', 'flush', 'ruleset']);
}

/** Boot: sshd starts, then the system activates the generation it last switched to (what NixOS does at boot). */
async function boot(
  namespace: string,
  paths: { sshdConfig: string; sshdLog: string; bin: string; dir: string },
): Promise<void> {
  execFileSync('ip', ['netns', 'exec', namespace, SSHD, '-f', paths.sshdConfig, '-E', paths.sshdLog]);
  execFileSync(
    'ip',
    ['netns', 'exec', namespace, 'env', `INNISFREE_LOCAL_EDGE_DIR=${paths.dir}`, join(paths.bin, EDGE_REPAIR_COMMAND)],
    { stdio: 'pipe' },
  );
}

B.before(async () => {
  if (unavailable) return;
  world.dir = makeTempDir('innisfree-reboot-');
  world.env = {
    INNISFREE_STATE_DIR: join(world.dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(world.dir.path, 'local'),
    XDG_CONFIG_HOME: join(world.dir.path, 'config'),
  };
  world.name = randomTunnelName();
  world.provider = new LocalProvider({ env: world.env, runtimeDir: world.env.INNISFREE_LOCAL_DIR });
  world.http = createServer((req, res) => res.end(`alive ${req.url}\n`));
  await new Promise<void>((resolve) => world.http.listen(0, '127.0.0.1', resolve));
  world.port = (world.http.address() as AddressInfo).port;
});

B.after(async () => {
  if (unavailable) return;
  await world.tunnel?.stop('SIGKILL');
  await world.provider
    .destroyEdge(world.name, { emit: () => {}, signal: new AbortController().signal })
    .catch(() => {});
  world.http.close();
  world.dir.remove();
});

B(`the edge is down ${DOWN_MS / 1000} s and boots again: up waits, re-establishes, the same edge serves`, async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  world.tunnel = startUp(['--provider', 'local', '--name', world.name, '--ports', `8080:${world.port}/tcp`], world.env);
  const ready = await world.tunnel.ready();
  const ipv4 = String(ready.ipv4);
  assert.is(await clientGet(ipv4), 'alive /\n');
  const edge = (await world.provider.localEdge(world.name))!;
  const edgeId = (await world.provider.findEdge(world.name))!.id;
  const edgeJson = JSON.parse(
    readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'edge', 'edge.json'), 'utf8'),
  ) as { wireguard: { interface: string } };
  const namespace = edge.layout.namespaces.edge!;

  const from = world.tunnel.events.length;
  await powerCut(namespace, edgeJson.wireguard.interface);
  const cutAt = Date.now();
  assert.match(await clientGet(ipv4), /curl failed/, 'nothing answers while the edge is down');
  await new Promise((r) => setTimeout(r, DOWN_MS));
  assert.is(world.tunnel.child.exitCode, null, `up gave up while the edge rebooted: ${world.tunnel.stderr()}`);
  const noticed = world.tunnel.events.slice(from).find((e) => e.type === 'health' && e.status === 'degraded');
  assert.ok(noticed, `up noticed the edge was gone: ${JSON.stringify(world.tunnel.events.slice(from))}`);
  await boot(namespace, edge.paths);

  let answer = '';
  for (let i = 0; i < 120 && answer !== 'alive /\n'; i++) {
    answer = await clientGet(ipv4);
    if (answer !== 'alive /\n') await new Promise((r) => setTimeout(r, 1000));
    assert.is(world.tunnel.child.exitCode, null, `up exited after the edge came back: ${world.tunnel.stderr()}`);
  }
  assert.is(answer, 'alive /\n', 'the same public address serves again');
  console.log(
    `  served again ${((Date.now() - cutAt) / 1000).toFixed(0)} s after the power cut (down ${DOWN_MS / 1000} s)`,
  );
  assert.is((await world.provider.findEdge(world.name))!.id, edgeId, 'no new edge');
  const status = JSON.parse((await runCli(['status', world.name, '--json'], world.env)).stdout) as { phase: string };
  for (let i = 0; i < 60 && status.phase !== 'ready'; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    status.phase = (
      JSON.parse((await runCli(['status', world.name, '--json'], world.env)).stdout) as { phase: string }
    ).phase;
  }
  assert.is(status.phase, 'ready');
  assert.is(await world.tunnel.stop('SIGTERM'), 0, world.tunnel.stderr());
});

B.run();
