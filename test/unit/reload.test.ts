// A reload in isolation (reloadTunnel with fakes): the order of home and edge changes, and that every failure
// leaves the old configuration serving on both ends; `innisfree reload` with no running up; reload requests.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reloadCommand } from '../../src/commands/reload.js';
import type { EdgeSession } from '../../src/edge/edge-session.js';
import type { HomeDataPlane } from '../../src/home/data-plane.js';
import { DeployError, ExitCode, NotRunningError, RolledBackError, UsageError } from '../../src/lib/errors.js';
import type { ProgressEvent, ReloadEvent } from '../../src/lib/events.js';
import { ReloadRequests } from '../../src/lib/reload-requests.js';
import { plan as makePlan } from '../../src/plan.js';
import type { EdgeInfo } from '../../src/providers/provider.js';
import { reloadTunnel } from '../../src/reload.js';
import { fileLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import { tunnelPaths } from '../../src/state/paths.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { readPlanFixture } from '../helpers/fixtures.js';
import { makeTempDir } from '../helpers/tmp.js';

const { input: fixture } = readPlanFixture('web-basic');

function planFor(tunnel: Record<string, unknown>) {
  const spec = resolveTunnelSpec([fileLayer('t.json', { ...fixture.tunnel, ...tunnel })]);
  return { spec, plan: makePlan({ spec, allocation: fixture.allocation, keys: fixture.keys }) };
}

function world(
  next: () => ReturnType<typeof planFor>,
  deploy: () => Promise<void> = async () => {},
  servedPorts = ['443/tcp'],
) {
  const dir = makeTempDir();
  const current = planFor({ ports: servedPorts });
  const log: string[] = [];
  const events: ProgressEvent[] = [];
  const dataPlane = {
    updateForwards: async (home: { forwards: Array<{ listenPort: number }> }, grace: number) => {
      log.push(`home ${home.forwards.map((f) => f.listenPort).join(',')} grace ${grace}`);
    },
  } as unknown as HomeDataPlane;
  const session = { status: async () => ({ configHash: current.plan.configHash }) } as unknown as EdgeSession;
  const run = () =>
    reloadTunnel(
      { clock: new FakeClock(), emit: (e) => events.push(e), signal: new AbortController().signal },
      {
        deps: {
          deployer: {
            apply: async (request) => {
              log.push(`deploy ${request.configHash.slice(0, 6)}`);
              await deploy();
              return { configHash: request.configHash };
            },
          },
          writeEdgeFiles: async () => void log.push('files.write'),
          restoreEdgeFiles: async () => (log.push('files.restore'), undefined),
        },
        paths: tunnelPaths(dir.path, current.spec.name),
        edge: { ipv4: '203.0.113.7' } as EdgeInfo,
        session,
        dataPlane,
        served: {
          spec: current.spec,
          config: { edge: current.plan.edge, home: current.plan.home },
          configHash: current.plan.configHash,
        },
        replan: async () => next(),
        graceMs: 5000,
      },
    );
  const reloads = () => events.filter((e): e is ReloadEvent => e.type === 'reload');
  return { run, log, reloads, current, cleanup: () => dir.remove() };
}

const R = suite('reload');

R(
  'adding a port: new listener next to the old ones, then the edge, then the final set with the removal grace',
  async () => {
    const next = planFor({ ports: ['443/tcp', '8443/tcp'] });
    const w = world(() => next);
    const outcome = await w.run();
    assert.ok(outcome.applied);
    assert.equal(w.log, [
      'home 443,8443 grace 0',
      'files.write',
      `deploy ${next.plan.configHash.slice(0, 6)}`,
      'home 443,8443 grace 5000',
    ]);
    assert.equal(
      w.reloads().map((e) => [e.status, e.added, e.removed, e.configHash]),
      [['reloaded', ['8443/tcp'], [], next.plan.configHash]],
    );
    assert.is(outcome.status.deployedConfigHash, next.plan.configHash);
    assert.is(outcome.status.lastReload?.outcome, 'reloaded');
    w.cleanup();
  },
);

R('removing a port: the edge first, the home listener goes only after the grace', async () => {
  const next = planFor({ ports: ['443/tcp'] });
  const w = world(
    () => next,
    async () => {},
    ['443/tcp', '8443/tcp'],
  );
  const outcome = await w.run();
  assert.ok(outcome.applied);
  assert.equal(w.log, [
    'home 443,8443 grace 0',
    'files.write',
    `deploy ${next.plan.configHash.slice(0, 6)}`,
    'home 443 grace 5000',
  ]);
  assert.equal(
    w.reloads().map((e) => [e.status, e.added, e.removed]),
    [['reloaded', [], ['8443/tcp']]],
  );
  w.cleanup();
});

R('an invalid new config: reload-failed with the one-line reason, nothing touched', async () => {
  const w = world(() => {
    throw new UsageError('--ports: "x" is not a port', { hint: 'fix the tunnel file' });
  });
  const outcome = await w.run();
  assert.is(outcome.applied, undefined);
  assert.equal(w.log, []);
  assert.is(w.reloads()[0]?.status, 'reload-failed');
  assert.is(w.reloads()[0]?.detail, '--ports: "x" is not a port (hint: fix the tunnel file)');
  assert.is(outcome.status.lastReload?.kind, 'usage');
  assert.is(outcome.status.deployedConfigHash, undefined, 'status keeps naming the served config');
  w.cleanup();
});

R('a change that needs a new edge is refused before anything changes', async () => {
  const w = world(() => planFor({ ports: ['443/tcp'], wireguardPort: 51821 }));
  const outcome = await w.run();
  assert.is(outcome.applied, undefined);
  assert.equal(w.log, []);
  assert.match(w.reloads()[0]?.detail ?? '', /^wireguardPort changed, and a running tunnel cannot change it in place/);
  w.cleanup();
});

R('a new home interface needs a new link: refused, nothing changes', async () => {
  const w = world(() => planFor({ ports: ['443/tcp'], homeInterface: 'isf-house' }));
  const outcome = await w.run();
  assert.is(outcome.applied, undefined);
  assert.equal(w.log, []);
  assert.match(w.reloads()[0]?.detail ?? '', /^homeInterface changed, and a running tunnel cannot change it in place/);
  w.cleanup();
});

R('a rolled-back deploy: edge files restored, home back on the old set, reported as a rollback', async () => {
  const next = planFor({ ports: ['443/tcp', '8443/tcp'] });
  const w = world(
    () => next,
    async () => {
      throw new RolledBackError('the edge rolled back: activation failed; the previous configuration is still serving');
    },
  );
  const outcome = await w.run();
  assert.is(outcome.applied, undefined);
  assert.equal(w.log, [
    'home 443,8443 grace 0',
    'files.write',
    `deploy ${next.plan.configHash.slice(0, 6)}`,
    'files.restore',
    'home 443 grace 0',
  ]);
  assert.match(
    w.reloads()[0]?.detail ?? '',
    /^the edge rolled back the new configuration \(.*activation failed\); the previous configuration keeps serving/,
  );
  assert.is(outcome.status.lastReload?.kind, 'rolledBack');
  assert.is(outcome.status.lastReload?.configHash, w.current.plan.configHash);
  assert.is(outcome.status.deployedConfigHash, w.current.plan.configHash);
  w.cleanup();
});

R('another deploy failure is reported as such, the home side goes back too', async () => {
  const w = world(
    () => planFor({ ports: ['443/tcp', '8443/tcp'] }),
    async () => {
      throw new DeployError('deploy-rs exited 1');
    },
  );
  const outcome = await w.run();
  assert.is(outcome.status.lastReload?.kind, 'deploy');
  assert.equal(w.log.slice(-2), ['files.restore', 'home 443 grace 0']);
  w.cleanup();
});

R('a change of the home side only: no deploy, home.json rewritten, listeners switched', async () => {
  const w = world(() => planFor({ ports: ['443/tcp'], destination: '127.0.0.2' }));
  const outcome = await w.run();
  assert.ok(outcome.applied);
  assert.equal(w.log, ['home 443 grace 0', 'files.write', 'home 443 grace 5000']);
  w.cleanup();
});

R('the same config again: reloaded, nothing deployed', async () => {
  const w = world(() => planFor({ ports: ['443/tcp'] }));
  await w.run();
  assert.equal(w.log, []);
  assert.is(w.reloads()[0]?.detail, 'nothing changed');
  w.cleanup();
});

R('innisfree reload with no running up: exit 10, one line saying so', async () => {
  const dir = makeTempDir();
  const error = await reloadCommand(
    { env: { INNISFREE_STATE_DIR: dir.path }, clock: new FakeClock(), signal: new AbortController().signal },
    { name: 'web', json: false, kill: () => assert.unreachable('nothing to signal') },
  ).catch((e: unknown) => e);
  assert.instance(error, NotRunningError);
  assert.is((error as NotRunningError).exitCode, ExitCode.notRunning);
  assert.is(ExitCode.notRunning, 10);
  assert.match((error as Error).message, /^no innisfree up is running for tunnel "web"/);
  dir.remove();
});

R('reload requests: one pending request wakes next(), a burst folds into one', async () => {
  const requests = new ReloadRequests();
  requests.request();
  requests.request();
  await requests.next();
  assert.is(requests.isPending, false);
  let woke = false;
  const waiting = requests.next().then(() => (woke = true));
  await Promise.resolve();
  assert.is(woke, false);
  requests.request();
  await waiting;
  assert.is(woke, true);
});

R.run();
