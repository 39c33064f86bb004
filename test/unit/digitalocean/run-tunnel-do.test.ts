// Issue 10 through runTunnel (what `up` runs) with the DigitalOcean provider against the fake API: an interrupt
// while the droplet activates and a failure at the SSH stage both leave the account and the ledger empty, and
// status.json without an edge.
import { existsSync, readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SshConnectError } from '../../../src/edge/ssh.js';
import { InterruptedError, SshError } from '../../../src/lib/errors.js';
import { plan as makePlan } from '../../../src/plan.js';
import type { TunnelDeps } from '../../../src/run-tunnel-context.js';
import { runTunnel } from '../../../src/run-tunnel.js';
import { fileLayer, resolveTunnelSpec } from '../../../src/spec/sources.js';
import { tunnelPaths } from '../../../src/state/paths.js';
import { ResourceLedger } from '../../../src/state/resources.js';
import { type Harness, accountOf, makeEdge, testIdentity, withFake } from '../../helpers/do.js';
import { readPlanFixture } from '../../helpers/fixtures.js';
import { makeTempDir } from '../../helpers/tmp.js';

async function run(h: Harness, reachEdge: TunnelDeps['reachEdge'], signal: AbortSignal) {
  const dir = makeTempDir('innisfree-rt-do-');
  const { input } = readPlanFixture('web-basic');
  const spec = resolveTunnelSpec([fileLayer('t.json', { ...input.tunnel, provider: 'digitalocean', keep: false })]);
  const plan = makePlan({ spec, allocation: input.allocation, keys: input.keys });
  const paths = tunnelPaths(dir.path, spec.name);
  const unused = async (): Promise<never> => {
    throw new Error('not reached in this test');
  };
  const deps: TunnelDeps = {
    provider: h.provider,
    deployer: { apply: unused },
    reachEdge,
    writeEdgeFiles: async () => {},
    restoreEdgeFiles: unused,
    startDataPlane: unused,
    probeLocal: async () => true,
    reconnectEdge: unused,
  };
  const ledger = await ResourceLedger.open(paths.resources, spec.name, h.clock.now);
  const error = await runTunnel({ clock: h.clock, emit: h.events.emit, signal }, deps, {
    spec,
    plan,
    paths,
    identity: testIdentity(spec.name),
    ledger,
    onReady: () => {},
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  const status = JSON.parse(readFileSync(paths.status, 'utf8')) as { phase: string; edge: unknown };
  const ledgerLeft = existsSync(paths.resources);
  dir.remove();
  return { error, status, ledgerLeft };
}

const U = suite('issue 10 through runTunnel: up leaves nothing billable');

for (const reason of ['SIGINT', 'SIGTERM']) {
  U(`${reason} while the droplet activates: exit 130, nothing in the account, status.json has no edge`, () =>
    withFake({ activation: { afterPolls: 1_000_000 } }, async (h) => {
      const controller = new AbortController();
      const pending = run(
        h,
        async () => {
          throw new Error('not reached');
        },
        controller.signal,
      );
      while (h.fake.calls('GET /v2/droplets/{droplet_id}').length < 2) await new Promise((r) => setTimeout(r, 1));
      controller.abort(new InterruptedError(`interrupted by ${reason}`));
      const { error, status, ledgerLeft } = await pending;
      assert.instance(error, InterruptedError);
      assert.is((error as InterruptedError).exitCode, 130);
      assert.equal(accountOf(h.fake), { droplets: 0, keys: 0, firewalls: 0, records: 0 });
      assert.is(status.edge, null);
      assert.not.ok(ledgerLeft);
    }),
  );
}

U('a failure at the SSH stage: the edge and key are destroyed, the ledger is gone', () =>
  withFake({}, async (h) => {
    const { error, status, ledgerLeft } = await run(
      h,
      async () => {
        throw new SshError('edge unreachable');
      },
      h.signal,
    );
    assert.instance(error, SshError);
    assert.equal(accountOf(h.fake), { droplets: 0, keys: 0, firewalls: 0, records: 0 });
    assert.is(status.phase, 'failed');
    assert.not.ok(ledgerLeft);
  }),
);

// Issue 11 item 1 on DigitalOcean: `up` of the same name from another state directory finds the droplet by its tag, and
// that droplet refuses this state directory's pin or key. It belongs to someone else's live tunnel: never destroy it.
for (const reason of ['hostKey', 'auth'] as const) {
  U(
    `a found edge that refuses our ${reason === 'hostKey' ? 'host-key pin' : 'SSH key'} is left alone (exit 4, ` +
      `one line)`,
    () =>
      withFake({}, async (h) => {
        const { id } = await makeEdge(h.fake, 'web');
        const { error, status } = await run(
          h,
          async () => {
            throw new SshConnectError('the edge at 203.0.113.7:22 refused us', reason, 'check the pin');
          },
          h.signal,
        );
        assert.instance(error, SshError);
        assert.is((error as SshError).exitCode, 4);
        assert.match(
          (error as Error).message,
          /was not made from this state directory|not made by this state directory/,
        );
        assert.ok(h.fake.state.droplets.has(id), "the other tunnel's droplet is still there");
        assert.is(h.fake.state.droplets.size, 1);
        assert.is(status.phase, 'failed');
        assert.is(status.edge, null, "not recorded as this state directory's edge");
        assert.not.ok(
          h.events.events.some((e) => e.type === 'log' && /kept edge/.test(String(e.message))),
          'no "kept edge … remove it with down" advice',
        );
      }),
  );
}

U.run();
