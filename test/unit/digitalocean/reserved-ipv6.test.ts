// Reserved IPv6 (--reserved-ipv6 ADDR|new) against the fake API: create in the edge's region, assign after the
// droplet's actions, unassign and release, each through 429s, 5xx and lost answers; spec checks; AAAA records.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ProviderError, UsageError } from '../../../src/lib/errors.js';
import type { EdgeIdentity } from '../../../src/providers/provider.js';
import { ResourceLedger } from '../../../src/state/resources.js';
import type { TunnelSpec } from '../../../src/spec/tunnel.js';
import { type Harness, testIdentity, testSpec, withFake } from '../../helpers/do.js';

async function ensure(h: Harness, spec: TunnelSpec, identity: EdgeIdentity = testIdentity(), ledger?: ResourceLedger) {
  return h.provider.ensureEdge({
    spec,
    identity,
    emit: h.events.emit,
    signal: h.signal,
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

const S = suite('--reserved-ipv6: the spec');

S('implies --ipv6', () => {
  const spec = testSpec({ reservedIpv6: 'new' });
  assert.is(spec.ipv6, true);
  assert.is(spec.reservedIpv6, 'new');
  assert.is(testSpec({ reservedIpv6: '2001:db8:f00d::1' }).reservedIpv6, '2001:db8:f00d::1');
});

S('refused with a custom image, with --ipv6 off, with the local provider, and when not an IPv6 address', () => {
  const refused = (flags: Record<string, unknown>, pattern: RegExp) => {
    try {
      testSpec(flags);
    } catch (error) {
      assert.instance(error, UsageError);
      assert.match((error as Error).message, pattern);
      assert.not.match((error as Error).message, /\n/);
      return;
    }
    throw new Error(`accepted ${JSON.stringify(flags)}`);
  };
  refused(
    { reservedIpv6: 'new', image: '12345' },
    /^--reserved-ipv6: DigitalOcean gives droplets made from custom images no IPv6/,
  );
  refused({ reservedIpv6: 'new', ipv6: false }, /^--reserved-ipv6: a reserved IPv6 needs IPv6 on the edge/);
  refused({ reservedIpv6: 'new', provider: 'local' }, /--reserved-ipv6: only the digitalocean provider/);
  refused({ reservedIpv6: '198.51.100.1' }, /--reserved-ipv6: must be an IPv6 address or "new"/);
});

S.run();

const R = suite('--reserved-ipv6 against the fake API');

R('new: reserved in the edge region, assigned once the create action is over, shown as the edge IPv6', () =>
  withFake({ activation: { pendingActionPolls: 2 } }, async (h) => {
    const { edge } = await ensure(h, testSpec({ reservedIpv6: 'new', region: 'ams3' }));
    const [reserved, ...more] = [...h.fake.state.reservedIpv6s.values()];
    assert.is(more.length, 0);
    assert.is(reserved!.region, 'ams3');
    assert.is(reserved!.dropletId, Number(edge.id));
    assert.equal(
      h.fake.calls('POST /v2/reserved_ipv6').map((c) => c.body),
      [{ region_slug: 'ams3' }],
    );
    assert.equal(
      h.fake.calls('POST /v2/reserved_ipv6/{reserved_ipv6}/actions').map((c) => c.body),
      [{ type: 'assign', droplet_id: Number(edge.id) }],
    );
    // The assign came only after the droplet's own create action completed (no "pending event" refusal).
    assert.ok(h.fake.requests.every((r) => r.status !== 422));
    assert.is(edge.ipv6, reserved!.ip);
    assert.match(edge.directIpv6 ?? '', /^2001:db8:10::/);
    // Found again: the same address, no second reservation.
    const again = await ensure(h, testSpec({ reservedIpv6: 'new', region: 'ams3' }));
    assert.is(again.edge.ipv6, reserved!.ip);
    assert.is(h.fake.state.reservedIpv6s.size, 1);
    assert.is((await h.provider.findEdge('web'))?.ipv6, reserved!.ip);
    assert.is((await h.provider.listEdges())[0]?.directIpv6, edge.directIpv6);
  }),
);

R('every call survives 429 and 5xx, and a lost create answer does not reserve a second address', () =>
  withFake({}, async (h) => {
    h.fake.inject({ method: 'GET', path: '/v2/reserved_ipv6', response: { kind: 'rate-limit', retryAfterSeconds: 1 } });
    h.fake.inject({
      method: 'POST',
      path: '/v2/reserved_ipv6',
      when: 'after',
      response: { kind: 'server-error', status: 503 },
    });
    h.fake.inject({
      method: 'POST',
      path: /^\/v2\/reserved_ipv6\/[^/]+\/actions$/,
      response: { kind: 'server-error', status: 500 },
    });
    h.fake.inject({ method: 'GET', path: /^\/v2\/actions\/\d+$/, response: { kind: 'rate-limit' } });
    const { edge } = await ensure(h, testSpec({ reservedIpv6: 'new' }));
    assert.is(h.fake.state.reservedIpv6s.size, 1, 'the create whose answer was lost is found, not posted again');
    assert.is(h.fake.calls('POST /v2/reserved_ipv6').length, 1);
    const reserved = [...h.fake.state.reservedIpv6s.values()][0]!;
    assert.is(reserved.dropletId, Number(edge.id));
    assert.is(edge.ipv6, reserved.ip);

    // down --release-ip: unassign, then delete, through faults again.
    h.fake.inject({
      method: 'POST',
      path: /^\/v2\/reserved_ipv6\/[^/]+\/actions$/,
      response: { kind: 'rate-limit', retryAfterSeconds: 1 },
    });
    h.fake.inject({
      method: 'DELETE',
      path: `/v2/reserved_ipv6/${reserved.ip}`,
      response: { kind: 'drop-connection' },
    });
    await h.provider.destroyEdge('web', { releaseIp: true, emit: h.events.emit, signal: h.signal });
    assert.is(h.fake.state.reservedIpv6s.size, 0);
    assert.equal(h.fake.calls('POST /v2/reserved_ipv6/{reserved_ipv6}/actions').at(-1)!.body, { type: 'unassign' });
  }),
);

R('an existing reserved IPv6 is assigned; down keeps it, and releases it later as the kept one', () =>
  withFake({}, async (h) => {
    const ip = h.fake.state.addReservedIpv6('nyc3').ip;
    const { edge } = await ensure(h, testSpec({ reservedIpv6: ip, keep: true }));
    assert.is(edge.ipv6, ip);
    assert.is(h.fake.calls('POST /v2/reserved_ipv6').length, 0);
    await h.provider.destroyEdge('web', { emit: h.events.emit, signal: h.signal });
    assert.is(h.fake.state.reservedIpv6s.get(ip)?.dropletId, null, 'kept, unassigned by the droplet delete');
    assert.ok(h.events.events.some((e) => e.type === 'log' && /reserved IPv6 .* is kept/.test(e.message)));
    await h.provider.destroyEdge('web', {
      releaseIp: true,
      keptReservedIpv6: ip,
      emit: h.events.emit,
      signal: h.signal,
    });
    assert.is(h.fake.state.reservedIpv6s.size, 0);
  }),
);

R('refusals: another region, a foreign holder, an address not in the account', () =>
  withFake({}, async (h) => {
    const far = h.fake.state.addReservedIpv6('fra1').ip;
    let error = await rejection(ensure(h, testSpec({ reservedIpv6: far })));
    assert.instance(error, ProviderError);
    assert.match(error.message, /belongs to region fra1, but the edge is in nyc3/);
    const foreign = await h.fake.state.createDroplet({
      name: 'other',
      region: 'nyc3',
      size: 's-1vcpu-1gb',
      image: 'debian-12-x64',
      ipv6: true,
    });
    const held = h.fake.state.addReservedIpv6('nyc3', undefined, foreign.id).ip;
    error = await rejection(ensure(h, testSpec({ reservedIpv6: held })));
    assert.match(error.message, /is assigned to droplet other/);
    assert.is(h.fake.state.reservedIpv6s.get(held)!.dropletId, foreign.id);
    error = await rejection(ensure(h, testSpec({ reservedIpv6: '2001:db8:dead::1' })));
    assert.match(error.message, /is not in this DigitalOcean account/);
  }),
);

R('a run that fails after reserving releases what it reserved; --keep hands it to the tunnel', () =>
  withFake({}, async (h) => {
    const ledger = await ResourceLedger.open(undefined, 'web');
    // The assign is refused outright (a 422 that is no pending event): the run fails after the reservation.
    h.fake.inject({
      method: 'POST',
      path: /^\/v2\/reserved_ipv6\/[^/]+\/actions$/,
      times: Infinity,
      response: {
        kind: 'raw',
        status: 422,
        body: '{"id":"unprocessable_entity","message":"Something is wrong."}',
        headers: { 'content-type': 'application/json' },
      },
    });
    await rejection(ensure(h, testSpec({ reservedIpv6: 'new' }), testIdentity(), ledger));
    assert.is(h.fake.state.reservedIpv6s.size, 0, 'the failed run released the address it reserved');
    assert.is(h.fake.state.droplets.size, 0);
    assert.ok(ledger.empty);
    h.fake.faults.clear();
    await ensure(h, testSpec({ reservedIpv6: 'new', keep: true }), testIdentity(), ledger);
    assert.ok(ledger.empty, 'handed over with --keep');
    assert.is(h.fake.state.reservedIpv6s.size, 1);
  }),
);

R('--dns points AAAA at the reserved IPv6 and down removes it', () =>
  withFake({}, async (h) => {
    h.fake.state.addDomain('example.com');
    const { edge } = await ensure(h, testSpec({ reservedIpv6: 'new', dns: 'web.example.com' }));
    const records = h.fake.state.domainRecords('example.com');
    assert.equal(
      records.filter((r) => r.type === 'AAAA').map((r) => r.data),
      [edge.ipv6],
    );
    assert.equal(
      records.filter((r) => r.type === 'A').map((r) => r.data),
      [edge.ipv4],
    );
    await h.provider.destroyEdge('web', { emit: h.events.emit, signal: h.signal });
    assert.equal(h.fake.state.domainRecords('example.com'), []);
  }),
);

R.run();
