// up --replace-edge against the fake API: a new droplet is made and served (deployed) first, then the reserved
// IPv4/IPv6 and the DNS records move to it and the old droplet goes; a failed replacement leaves the old edge
// serving its addresses and removes what the attempt made.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { replaceEdge } from '../../../src/commands/replace-edge.js';
import { DeployError } from '../../../src/lib/errors.js';
import { plan as makePlan } from '../../../src/plan.js';
import type { EdgeInfo } from '../../../src/providers/provider.js';
import type { TunnelDeps } from '../../../src/run-tunnel-context.js';
import { fileLayer, resolveTunnelSpec } from '../../../src/spec/sources.js';
import { tunnelPaths } from '../../../src/state/paths.js';
import { ResourceLedger } from '../../../src/state/resources.js';
import type { TunnelSpec } from '../../../src/spec/tunnel.js';
import { type Harness, testIdentity, testSpec, withFake } from '../../helpers/do.js';
import { readPlanFixture } from '../../helpers/fixtures.js';
import { makeTempDir } from '../../helpers/tmp.js';

const identity = testIdentity();

function replace(h: Harness, spec: TunnelSpec, serve: (edge: EdgeInfo) => Promise<void>, ledger?: ResourceLedger) {
  return h.provider.replaceEdge({
    spec,
    identity,
    emit: h.events.emit,
    signal: h.signal,
    serve,
    ...(ledger ? { ledger } : {}),
  });
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

const ASSIGN_V4 = /^\/v2\/reserved_ips\/[^/]+\/actions$/;
const ASSIGN_V6 = /^\/v2\/reserved_ipv6\/[^/]+\/actions$/;

/** A kept edge with a reserved IPv4, a new reserved IPv6 and --dns. */
async function keptEdge(h: Harness) {
  h.fake.state.addDomain('example.com');
  h.fake.state.addReservedIp('198.51.100.20', 'nyc3');
  const spec = testSpec({ reservedIp: '198.51.100.20', reservedIpv6: 'new', dns: 'web.example.com', keep: true });
  const { edge } = await h.provider.ensureEdge({ spec, identity, emit: h.events.emit, signal: h.signal });
  return { spec, edge, ip6: edge.ipv6! };
}

function dns(h: Harness): string[] {
  return h.fake.state
    .domainRecords('example.com')
    .map((r) => `${r.type} ${r.data}`)
    .sort();
}

const R = suite('up --replace-edge');

R('moves the reserved IPv4 and IPv6 to the new droplet only once it serves, then destroys the old one', () =>
  withFake({}, async (h) => {
    const { spec, edge: old, ip6 } = await keptEdge(h);
    const recordsBefore = dns(h);
    const served: EdgeInfo[] = [];
    // Each move goes through a 429 and a 5xx.
    h.fake.inject({ method: 'POST', path: ASSIGN_V4, response: { kind: 'rate-limit', retryAfterSeconds: 1 } });
    h.fake.inject({ method: 'POST', path: ASSIGN_V6, response: { kind: 'server-error', status: 503 } });
    const { edge, created } = await replace(h, spec, async (next) => {
      // While the new droplet is deployed the old one still holds both addresses, and the tunnel's tag.
      assert.is(h.fake.state.reservedIps.get('198.51.100.20')!.dropletId, Number(old.id));
      assert.is(h.fake.state.reservedIpv6s.get(ip6)!.dropletId, Number(old.id));
      assert.not.equal(next.id, old.id);
      assert.match(next.ipv4, /^203\.0\.113\./, 'deployed at its own address, not the reserved one');
      assert.is((await h.provider.findEdge('web'))?.id, old.id);
      served.push(next);
    });
    assert.is(created, true);
    assert.is(served.length, 1);
    assert.is(edge.id, served[0]!.id);
    assert.is(edge.ipv4, '198.51.100.20');
    assert.is(edge.ipv6, ip6);
    assert.is(h.fake.state.reservedIps.get('198.51.100.20')!.dropletId, Number(edge.id));
    assert.is(h.fake.state.reservedIpv6s.get(ip6)!.dropletId, Number(edge.id));
    assert.is(h.fake.state.reservedIpv6s.size, 1, 'no second reservation');
    assert.equal([...h.fake.state.droplets.keys()], [Number(edge.id)], 'the old droplet is gone');
    assert.ok(h.fake.state.droplets.get(Number(edge.id))!.tags.includes('innisfree:web'));
    assert.not.ok(h.fake.state.droplets.get(Number(edge.id))!.tags.some((t) => t.startsWith('innisfree-replacement:')));
    assert.not.ok([...h.fake.state.tags].some((t) => t.startsWith('innisfree-replacement:')));
    // The names pointed at the reserved addresses already: unchanged.
    assert.equal(dns(h), recordsBefore);
    assert.is((await h.provider.findEdge('web'))?.id, edge.id);
  }),
);

R('without reserved addresses the DNS records move to the new droplet', () =>
  withFake({}, async (h) => {
    h.fake.state.addDomain('example.com');
    const spec = testSpec({ ipv6: true, dns: 'web.example.com', keep: true });
    const { edge: old } = await h.provider.ensureEdge({ spec, identity, emit: h.events.emit, signal: h.signal });
    assert.equal(dns(h), [`A ${old.ipv4}`, `AAAA ${old.ipv6}`].sort());
    const { edge } = await replace(h, spec, async () => {
      assert.equal(dns(h), [`A ${old.ipv4}`, `AAAA ${old.ipv6}`].sort(), 'DNS moves only after the new edge serves');
    });
    assert.not.equal(edge.ipv4, old.ipv4);
    assert.equal(dns(h), [`A ${edge.ipv4}`, `AAAA ${edge.ipv6}`].sort());
    assert.is(h.fake.state.domainRecords('example.com').length, 2);
  }),
);

R('a deploy that fails leaves the old edge serving and removes the new droplet', () =>
  withFake({}, async (h) => {
    const { spec, edge: old, ip6 } = await keptEdge(h);
    const recordsBefore = dns(h);
    const ledger = await ResourceLedger.open(undefined, 'web');
    const error = await rejection(
      replace(
        h,
        spec,
        async () => {
          throw new Error('deploy failed');
        },
        ledger,
      ),
    );
    assert.is(error.message, 'deploy failed');
    assert.equal([...h.fake.state.droplets.keys()], [Number(old.id)]);
    assert.is(h.fake.state.reservedIps.get('198.51.100.20')!.dropletId, Number(old.id));
    assert.is(h.fake.state.reservedIpv6s.get(ip6)!.dropletId, Number(old.id));
    assert.equal(dns(h), recordsBefore);
    assert.ok(ledger.empty);
    assert.not.ok([...h.fake.state.tags].some((t) => t.startsWith('innisfree-replacement:')));
    assert.ok(
      h.events
        .warnings()
        .some((w) => w.includes(`edge innisfree-web (droplet ${old.id}) still serves 198.51.100.20 and ${ip6}`)),
    );
  }),
);

R('a move that fails half way moves the reserved IPv4 back and the old edge keeps both addresses and its DNS', () =>
  withFake({}, async (h) => {
    h.fake.state.addDomain('example.com');
    h.fake.state.addReservedIp('198.51.100.21', 'nyc3');
    const spec = testSpec({ reservedIp: '198.51.100.21', ipv6: true, dns: 'web.example.com', keep: true });
    const { edge: old } = await h.provider.ensureEdge({ spec, identity, emit: h.events.emit, signal: h.signal });
    const ip6 = h.fake.state.addReservedIpv6('nyc3').ip;
    await h.provider.ensureEdge({
      spec: testSpec({ reservedIp: '198.51.100.21', reservedIpv6: ip6, dns: 'web.example.com', keep: true }),
      identity,
      emit: h.events.emit,
      signal: h.signal,
    });
    const recordsBefore = dns(h);
    h.fake.inject({
      method: 'POST',
      path: ASSIGN_V6,
      times: Infinity,
      response: {
        kind: 'raw',
        status: 422,
        body: '{"id":"unprocessable_entity","message":"Something is wrong."}',
        headers: { 'content-type': 'application/json' },
      },
    });
    const error = await rejection(replace(h, spec, async () => {}));
    assert.match(error.message, /Something is wrong/);
    assert.equal([...h.fake.state.droplets.keys()], [Number(old.id)]);
    assert.is(h.fake.state.reservedIps.get('198.51.100.21')!.dropletId, Number(old.id), 'moved back');
    assert.is(h.fake.state.reservedIpv6s.get(ip6)!.dropletId, Number(old.id));
    assert.equal(dns(h), recordsBefore);
  }),
);

R('the run that follows (ensureEdge with the same ledger) keeps what the replacement made', () =>
  withFake({}, async (h) => {
    h.fake.state.addDomain('example.com');
    const kept = testSpec({ ipv6: true, dns: 'web.example.com', keep: true });
    await h.provider.ensureEdge({ spec: kept, identity, emit: h.events.emit, signal: h.signal });
    h.fake.state.domains.get('example.com')!.records.clear();
    const spec = testSpec({ reservedIpv6: 'new', dns: 'web.example.com' });
    const ledger = await ResourceLedger.open(undefined, 'web');
    const { edge } = await replace(h, spec, async () => {}, ledger);
    assert.ok(ledger.empty);
    const again = await h.provider.ensureEdge({ spec, identity, emit: h.events.emit, signal: h.signal, ledger });
    assert.is(again.edge.id, edge.id);
    assert.is(again.created, false);
    assert.is(h.fake.state.reservedIpv6s.get(edge.ipv6!)?.dropletId, Number(edge.id));
    assert.equal(dns(h), [`A ${edge.ipv4}`, `AAAA ${edge.ipv6}`].sort());
  }),
);

R('with no edge to replace it creates one', () =>
  withFake({}, async (h) => {
    let served = 0;
    const { edge, created } = await replace(h, testSpec({ keep: true }), async () => {
      served++;
    });
    assert.is(created, true);
    assert.is(served, 0, 'a plain create is deployed by up as usual');
    assert.is((await h.provider.findEdge('web'))?.id, edge.id);
  }),
);

R.run();

const U = suite('up --replace-edge: the command side');

async function commandRun(
  h: Harness,
  configHashReported: (hash: string) => string,
  flags: Record<string, unknown> = {},
) {
  const dir = makeTempDir('innisfree-replace-');
  try {
    const { input } = readPlanFixture('web-basic');
    const spec = resolveTunnelSpec([
      fileLayer('t.json', { ...input.tunnel, provider: 'digitalocean', keep: true, ...flags }),
    ]);
    const plan = makePlan({ spec, allocation: input.allocation, keys: input.keys });
    const paths = tunnelPaths(dir.path, spec.name);
    const tunnelIdentity = testIdentity(spec.name);
    const { edge: old } = await h.provider.ensureEdge({
      spec,
      identity: tunnelIdentity,
      emit: h.events.emit,
      signal: h.signal,
    });
    const calls: string[] = [];
    const unused = async (): Promise<never> => {
      throw new Error('not reached in this test');
    };
    const deps: TunnelDeps = {
      provider: h.provider,
      deployer: {
        apply: async (request) => {
          calls.push(`deploy ${request.target.host} ${request.configHash}`);
          return { configHash: request.configHash } as Awaited<ReturnType<TunnelDeps['deployer']['apply']>>;
        },
      },
      reachEdge: async (edge, created) => {
        calls.push(`reach ${edge.ipv4} created=${created}`);
        return {
          status: async () => ({ configHash: configHashReported(plan.configHash) }),
          close: async () => {
            calls.push('close');
          },
        } as unknown as Awaited<ReturnType<TunnelDeps['reachEdge']>>;
      },
      writeEdgeFiles: async () => {
        calls.push('write');
      },
      restoreEdgeFiles: unused,
      startDataPlane: unused,
      probeLocal: async () => true,
      reconnectEdge: unused,
    };
    const ledger = await ResourceLedger.open(paths.resources, spec.name, h.clock.now);
    const ctx = { clock: h.clock, emit: h.events.emit, signal: h.signal } as unknown as Parameters<
      typeof replaceEdge
    >[0];
    const refresh = async (edge: EdgeInfo) => {
      calls.push(`refresh ${edge.directIpv4 ?? edge.ipv4} holding ${edge.ipv6}`);
    };
    const error = await replaceEdge(
      ctx,
      deps,
      { spec, plan, paths, identity: tunnelIdentity, ledger, recordedEdgeId: old.id },
      refresh,
    ).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    return { old, calls, error, plan };
  } finally {
    dir.remove();
  }
}

U('writes the edge files, bootstraps and deploys the new droplet at its own address, then it is the edge', () =>
  withFake({}, async (h) => {
    const { old, calls, error, plan } = await commandRun(h, (hash) => hash);
    assert.is(error, undefined);
    const edge = (await h.provider.findEdge('web'))!;
    assert.not.equal(edge.id, old.id);
    assert.equal(
      calls,
      ['write', `reach ${edge.ipv4} created=true`, `deploy ${edge.ipv4} ${plan.configHash}`, 'close'],
      'no refresh without a reserved IPv6',
    );
    assert.is(h.fake.state.droplets.size, 1);
  }),
);

U('with a reserved IPv6 the new edge reads its addresses again once the address is its own', () =>
  withFake({}, async (h) => {
    const { calls, error } = await commandRun(h, (hash) => hash, { reservedIpv6: 'new' });
    assert.is(error, undefined);
    const edge = (await h.provider.findEdge('web'))!;
    assert.is(h.fake.state.reservedIpv6s.get(edge.ipv6!)!.dropletId, Number(edge.id));
    assert.is(calls.at(-1), `refresh ${edge.ipv4} holding ${edge.ipv6}`);
    assert.is(calls.filter((c) => c.startsWith('refresh')).length, 1);
  }),
);

U('a new edge that does not report the deployed configuration is not switched to', () =>
  withFake({}, async (h) => {
    const { old, error } = await commandRun(h, () => 'something-else');
    assert.instance(error, DeployError);
    assert.match(error!.message, /does not report the deployed configuration/);
    assert.is((await h.provider.findEdge('web'))?.id, old.id);
    assert.equal([...h.fake.state.droplets.keys()], [Number(old.id)]);
  }),
);

U.run();
