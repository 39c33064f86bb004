// Signals and `innisfree up`, end to end with the local provider: SIGINT while the tunnel is being verified stops
// at once with 130 and never reports the tunnel up, leaving nothing behind; one signal delivered twice at once (a
// terminal and a wrapper both forwarding Ctrl-C) is one orderly stop; a second signal during teardown exits at once.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import {
  type EdgeFootprint,
  assertNothingLeft,
  footprintOf,
  localProviderUnavailable,
  randomTunnelName,
} from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';
import { type UpProcess, startUp } from '../helpers/up-process.js';

const unavailable = localProviderUnavailable();

interface World {
  dir: ReturnType<typeof makeTempDir>;
  env: Record<string, string>;
  provider: LocalProvider;
  names: string[];
  processes: UpProcess[];
}
const world = {} as World;
const S = suite('up: signals');

function up(name: string): UpProcess {
  world.names.push(name);
  const process = startUp(
    ['--provider', 'local', '--name', name, '--ports', '8080/tcp', '--home-forwarding', 'proxy'],
    world.env,
  );
  world.processes.push(process);
  return process;
}

function waitForEvent(
  tunnel: UpProcess,
  match: (e: { type: string; [k: string]: unknown }) => boolean,
  timeoutMs = 120_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = (): void => {
      if (tunnel.events.some(match)) return resolve();
      if (tunnel.child.exitCode !== null || Date.now() > deadline)
        return reject(new Error(`event not seen; stderr: ${tunnel.stderr()}`));
      setTimeout(check, 5);
    };
    check();
  });
}

async function footprint(name: string): Promise<EdgeFootprint> {
  const home = JSON.parse(readFileSync(join(world.env.INNISFREE_STATE_DIR!, name, 'home.json'), 'utf8')) as {
    interface: string;
  };
  return footprintOf((await world.provider.localEdge(name))!, [home.interface]);
}

S.before(() => {
  if (unavailable) return;
  world.dir = makeTempDir('innisfree-signals-');
  world.env = {
    INNISFREE_STATE_DIR: join(world.dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(world.dir.path, 'local'),
    XDG_CONFIG_HOME: join(world.dir.path, 'config'),
  };
  world.provider = new LocalProvider({ env: world.env, runtimeDir: world.env.INNISFREE_LOCAL_DIR });
  world.names = [];
  world.processes = [];
});

S.after(async () => {
  if (unavailable) return;
  for (const process of world.processes) await process.stop('SIGKILL');
  for (const name of world.names) {
    await world.provider.destroyEdge(name, { emit: () => {}, signal: new AbortController().signal }).catch(() => {});
    try {
      execFileSync('ip', ['link', 'del', `isf-${name}`], { stdio: 'ignore' });
    } catch {
      // removed by its up
    }
  }
  world.dir.remove();
});

S('SIGINT during "Verifying": exit 130 at once, the tunnel is never reported up, nothing is left', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const name = randomTunnelName();
  const tunnel = up(name);
  await waitForEvent(tunnel, (e) => e.type === 'step' && e.id === 'verify' && e.status === 'start');
  const left = await footprint(name);
  const sentAt = Date.now();
  tunnel.child.kill('SIGINT');
  const code = await tunnel.exited;
  console.log(`  exited ${code} ${((Date.now() - sentAt) / 1000).toFixed(1)} s after SIGINT`);
  assert.is(code, 130, tunnel.stderr());
  assert.not.ok(
    tunnel.events.some((e) => e.type === 'ready'),
    'no ready event',
  );
  assert.not.match(tunnel.stderr(), /is up/);
  assert.match(tunnel.stderr(), /interrupted by SIGINT/);
  assertNothingLeft(left);
});

S('the same signal twice within a few milliseconds is one Ctrl-C: an orderly stop, exit 0, nothing left', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const name = randomTunnelName();
  const tunnel = up(name);
  await tunnel.ready();
  const left = await footprint(name);
  tunnel.child.kill('SIGTERM');
  tunnel.child.kill('SIGTERM');
  assert.is(await tunnel.exited, 0, tunnel.stderr());
  assert.not.match(tunnel.stderr(), /again/);
  assertNothingLeft(left);
});

S('a second signal during teardown exits at once with 130', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const name = randomTunnelName();
  const tunnel = up(name);
  await tunnel.ready();
  tunnel.child.kill('SIGTERM');
  await waitForEvent(tunnel, (e) => e.type === 'step' && e.id === 'home.down' && e.status === 'start', 10_000);
  // Past the duplicate window (50 ms), while the teardown is still running.
  await new Promise((r) => setTimeout(r, 60));
  tunnel.child.kill('SIGTERM');
  const code = await tunnel.exited;
  assert.is(code, 130, tunnel.stderr());
  assert.match(tunnel.stderr(), /SIGTERM again, exiting without teardown/);
});

S.run();
