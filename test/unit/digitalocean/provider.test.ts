import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ProviderError } from '../../../src/lib/errors.js';
import { md5Fingerprint } from '../../../src/providers/digitalocean/fingerprint.js';
import type { EdgeIdentity } from '../../../src/providers/provider.js';
import type { TunnelSpec } from '../../../src/spec/tunnel.js';
import { type Harness, testIdentity, testSpec, withFake } from '../../helpers/do.js';

async function ensure(h: Harness, spec: TunnelSpec, identity: EdgeIdentity = testIdentity()) {
  return h.provider.ensureEdge({ spec, identity, emit: h.events.emit, signal: h.signal });
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

const C = suite('digitalocean provider: ensureEdge');

C('creates the droplet by tag, waits until active, reports its addresses', () =>
  withFake({ activation: { afterPolls: 3 } }, async (h) => {
    const identity = testIdentity();
    const { edge, created } = await ensure(h, testSpec(), identity);
    assert.is(created, true);
    assert.is(edge.status, 'active');
    assert.match(edge.ipv4, /^203\.0\.113\.\d+$/);
    assert.is(edge.ipv6, undefined);
    assert.is(edge.name, 'innisfree-web');
    assert.is(edge.tunnel, 'web');
    assert.is(edge.region, 'nyc3');
    assert.is(edge.size, 's-1vcpu-2gb');
    assert.is(edge.priceMonthly, 12);
    const [post] = h.fake.calls('POST /v2/droplets');
    const body = post!.body as Record<string, unknown>;
    assert.is(body.name, 'innisfree-web');
    assert.is(body.image, 'debian-12-x64');
    assert.equal(body.tags, ['innisfree', 'innisfree:web']);
    assert.equal(body.ssh_keys, [md5Fingerprint(identity.sshPublicKey)]);
    assert.is(body.ipv6, false);
    assert.match(
      String(body.user_data),
      /^#cloud-config\n\{"ssh_keys":\{"ed25519_private":"-----BEGIN OPENSSH PRIVATE KEY-----/,
    );
    const key = [...h.fake.state.sshKeys.values()];
    assert.equal(
      key.map((k) => k.name),
      ['innisfree-web'],
    );
    const steps = h.events.events
      .filter((e) => e.type === 'step' && e.status === 'done')
      .map((e) => (e as { id: string }).id);
    assert.equal(steps, ['edge.ssh-key', 'edge.create', 'edge.active']);
    // Polls start at 2 s and rise towards 5 s.
    assert.equal(h.clock.sleeps.slice(0, 3), [2000, 3000, 4000]);
  }),
);

C('asks for IPv6 only with --ipv6, and reports it', () =>
  withFake({}, async (h) => {
    const { edge } = await ensure(h, testSpec({ ipv6: true }));
    assert.match(edge.ipv6 ?? '', /^2001:db8:/);
    assert.is((h.fake.calls('POST /v2/droplets')[0]!.body as { ipv6: boolean }).ipv6, true);
  }),
);

C('a 404 right after the create is tolerated', () =>
  withFake({ activation: { notFoundPolls: 3 } }, async (h) => {
    const { edge } = await ensure(h, testSpec());
    assert.is(edge.status, 'active');
    assert.ok(h.fake.requests.filter((r) => r.status === 404).length >= 3);
  }),
);

C('re-running after a crash finds the same droplet: one droplet, not two', () =>
  withFake({}, async (h) => {
    const first = await ensure(h, testSpec());
    const again = await ensure(h, testSpec());
    assert.is(again.created, false);
    assert.is(again.edge.id, first.edge.id);
    assert.is(h.fake.state.droplets.size, 1);
    assert.is(h.fake.calls('POST /v2/droplets').length, 1);
  }),
);

C('a droplet left "new" by a process that died is waited for, not created again', () =>
  withFake({ activation: { afterPolls: 2 } }, async (h) => {
    const identity = testIdentity();
    const key = h.fake.state.addSshKey('innisfree-web', identity.sshPublicKey);
    const orphan = await h.fake.state.createDroplet({
      name: 'innisfree-web',
      region: 'nyc3',
      size: 's-1vcpu-2gb',
      image: 'debian-12-x64',
      ssh_keys: [key.fingerprint],
      tags: ['innisfree', 'innisfree:web'],
    });
    const { edge, created } = await ensure(h, testSpec(), identity);
    assert.is(created, false);
    assert.is(edge.id, String(orphan.id));
    assert.is(edge.status, 'active');
    assert.is(h.fake.calls('POST /v2/droplets').length, 0);
  }),
);

C('a create answered 500 after it went through is found again by tag, not posted twice', () =>
  withFake({}, async (h) => {
    h.fake.inject({ method: 'POST', path: '/v2/droplets', when: 'after', response: { kind: 'server-error' } });
    const { edge, created } = await ensure(h, testSpec());
    assert.is(created, true);
    assert.is(h.fake.calls('POST /v2/droplets').length, 1);
    assert.is(h.fake.state.droplets.size, 1);
    assert.is(edge.id, String([...h.fake.state.droplets.keys()][0]));
    assert.ok(h.events.warnings().some((w) => /may have gone through/.test(w)));
  }),
);

C('a create whose connection dropped after it went through is found again too', () =>
  withFake({}, async (h) => {
    h.fake.inject({ method: 'POST', path: '/v2/droplets', when: 'after', response: { kind: 'drop-connection' } });
    await ensure(h, testSpec());
    assert.is(h.fake.calls('POST /v2/droplets').length, 1);
    assert.is(h.fake.state.droplets.size, 1);
  }),
);

C('a create that failed with a 502 before anything was made is posted again, once', () =>
  withFake({}, async (h) => {
    h.fake.inject({ method: 'POST', path: '/v2/droplets', response: { kind: 'html-bad-gateway' } });
    await ensure(h, testSpec());
    assert.is(h.fake.calls('POST /v2/droplets').length, 2);
    assert.is(h.fake.state.droplets.size, 1);
  }),
);

C('persistent 5xx on create end with a clear error and no droplet', () =>
  withFake({}, async (h) => {
    h.fake.inject({ method: 'POST', path: '/v2/droplets', times: Infinity, response: { kind: 'server-error' } });
    const error = await rejection(ensure(h, testSpec()));
    assert.instance(error, ProviderError);
    assert.match(error.message, /POST \/v2\/droplets failed with 500/);
    assert.is(h.fake.calls('POST /v2/droplets').length, 3);
    assert.is(h.fake.state.droplets.size, 0);
  }),
);

C('"Please try again" on create is retried', () =>
  withFake({}, async (h) => {
    h.fake.inject({ method: 'POST', path: '/v2/droplets', response: { kind: 'please-try-again' } });
    await ensure(h, testSpec());
    assert.is(h.fake.calls('POST /v2/droplets').length, 2);
    assert.is(h.fake.state.droplets.size, 1);
  }),
);

C('a droplet limit refusal says what to do', () =>
  withFake({ dropletLimit: 0 }, async (h) => {
    const error = await rejection(ensure(h, testSpec()));
    assert.match(error.message, /exceed your droplet limit/);
    assert.match((error as ProviderError).hint ?? '', /innisfree clean/);
  }),
);

C('a droplet that never becomes active times out and is not left behind', () =>
  withFake({ activation: { afterPolls: 1_000_000 } }, async (h) => {
    const error = await rejection(ensure(h, testSpec()));
    assert.instance(error, ProviderError);
    assert.match(error.message, /did not become active .* within 600 s/);
    assert.is(h.fake.state.droplets.size, 0);
    assert.is(h.fake.calls('DELETE /v2/droplets/{droplet_id}').length, 1);
  }),
);

C('duplicates by tag: the active one is kept, the other destroyed', () =>
  withFake({ activation: { afterPolls: 0 } }, async (h) => {
    const identity = testIdentity();
    const key = h.fake.state.addSshKey('innisfree-web', identity.sshPublicKey);
    const make = () =>
      h.fake.state.createDroplet({
        name: 'innisfree-web',
        region: 'nyc3',
        size: 's-1vcpu-2gb',
        image: 'debian-12-x64',
        ssh_keys: [key.fingerprint],
        tags: ['innisfree', 'innisfree:web'],
      });
    const a = await make();
    h.clock.advance(1000);
    const b = await make();
    h.fake.state.advance(a);
    h.fake.state.advance(b);
    const { edge } = await ensure(h, testSpec(), identity);
    assert.is(edge.id, String(a.id));
    assert.equal([...h.fake.state.droplets.keys()], [a.id]);
  }),
);

C('custom image: resolved by name, booted by id, and no IPv6 (with a warning)', () =>
  withFake({}, async (h) => {
    const image = h.fake.state.addCustomImage({ name: 'innisfree-edge', region: 'nyc3', status: 'available' });
    const { edge } = await ensure(h, testSpec({ image: 'innisfree-edge', ipv6: true, size: 's-1vcpu-1gb' }));
    const body = h.fake.calls('POST /v2/droplets')[0]!.body as Record<string, unknown>;
    assert.is(body.image, image.id);
    assert.is(body.ipv6, false);
    assert.is(edge.ipv6, undefined);
    assert.ok(h.events.warnings().some((w) => /custom images no IPv6/.test(w)));
  }),
);

C('custom image in another region is refused before anything is created', () =>
  withFake({}, async (h) => {
    h.fake.state.addCustomImage({ name: 'innisfree-edge', region: 'ams3', status: 'available' });
    const error = await rejection(ensure(h, testSpec({ image: 'innisfree-edge', size: 's-1vcpu-1gb' })));
    assert.match(error.message, /not in region nyc3/);
    assert.is(h.fake.state.droplets.size, 0);
  }),
);

C("the fake's onDropletCreated hook chooses the addresses a new droplet reports", () =>
  withFake(
    {
      onDropletCreated: (droplet) => {
        assert.match(droplet.userData ?? '', /^#cloud-config\n/);
        return { ipv4: '192.0.2.44', ipv6: '2001:db8:ffff::44' };
      },
    },
    async (h) => {
      const { edge } = await ensure(h, testSpec({ ipv6: true }));
      assert.is(edge.ipv4, '192.0.2.44');
      assert.is(edge.ipv6, '2001:db8:ffff::44');
    },
  ),
);

const K = suite('digitalocean provider: SSH key, reserved IP, DNS, firewall');

K('an SSH key already registered (under any name) is found by fingerprint, not posted', () =>
  withFake({}, async (h) => {
    const identity = testIdentity();
    h.fake.state.addSshKey('my laptop', identity.sshPublicKey);
    await ensure(h, testSpec(), identity);
    assert.is(h.fake.calls('POST /v2/account/keys').length, 0);
    assert.is(h.fake.calls('GET /v2/account/keys').length, 0, 'never lists all keys');
    assert.is(h.fake.state.sshKeys.size, 1);
  }),
);

K('"SSH Key is already in use" on register (a race) is resolved by looking again', () =>
  withFake({}, async (h) => {
    const identity = testIdentity();
    const fingerprint = md5Fingerprint(identity.sshPublicKey);
    h.fake.state.addSshKey('registered meanwhile', identity.sshPublicKey);
    h.fake.inject({
      method: 'GET',
      path: `/v2/account/keys/${fingerprint}`,
      response: {
        kind: 'raw',
        status: 404,
        body: '{"id":"not_found","message":"The resource you requested could not be found."}',
      },
    });
    await ensure(h, testSpec(), identity);
    const posts = h.fake.calls('POST /v2/account/keys');
    assert.is(posts.length, 1);
    assert.is(posts[0]!.status, 422);
    assert.is(h.fake.state.sshKeys.size, 1);
    assert.is(h.fake.state.droplets.size, 1);
  }),
);

K("the reserved IP is assigned after the droplet's pending action finished", () =>
  withFake({ activation: { pendingActionPolls: 3 } }, async (h) => {
    h.fake.state.addReservedIp('198.51.100.7', 'nyc3');
    h.fake.state.reservedIpActionPolls = 2;
    const { edge } = await ensure(h, testSpec({ reservedIp: '198.51.100.7' }));
    assert.is(edge.ipv4, '198.51.100.7');
    assert.match(edge.directIpv4 ?? '', /^203\.0\.113\./);
    assert.is(h.fake.state.reservedIps.get('198.51.100.7')!.dropletId, Number(edge.id));
    const order = h.fake.requests.map((r) => `${r.operation}:${r.status}`);
    const assign = order.findIndex((o) => o.startsWith('POST /v2/reserved_ips/{reserved_ip}/actions'));
    assert.is(order[assign], 'POST /v2/reserved_ips/{reserved_ip}/actions:201');
    assert.ok(h.fake.calls('GET /v2/droplets/{droplet_id}/actions').length >= 3, 'waited on the droplet actions');
    assert.ok(!h.fake.requests.some((r) => r.status === 422), 'no "pending event" refusal');
    // Found again later: the edge reports the reserved IP.
    assert.is((await h.provider.findEdge('web'))!.ipv4, '198.51.100.7');
  }),
);

K('a reserved IP held by a foreign droplet is not taken', () =>
  withFake({}, async (h) => {
    const key = h.fake.state.addSshKey('other', testIdentity('other').sshPublicKey);
    const foreign = await h.fake.state.createDroplet({
      name: 'db',
      region: 'nyc3',
      size: 's-1vcpu-1gb',
      image: 'debian-12-x64',
      ssh_keys: [key.fingerprint],
    });
    h.fake.state.addReservedIp('198.51.100.8', 'nyc3', foreign.id);
    const error = await rejection(ensure(h, testSpec({ reservedIp: '198.51.100.8' })));
    assert.match(error.message, /assigned to droplet db/);
    assert.is(h.fake.state.reservedIps.get('198.51.100.8')!.dropletId, foreign.id);
  }),
);

K('a reserved IP from another region, or not in the account, is refused with what to do; nothing is left', () =>
  withFake({}, async (h) => {
    h.fake.state.addReservedIp('198.51.100.11', 'fra1');
    let error = await rejection(ensure(h, testSpec({ reservedIp: '198.51.100.11' })));
    assert.instance(error, ProviderError);
    assert.match(error.message, /^reserved IP 198\.51\.100\.11 belongs to region fra1, but the edge is in nyc3$/);
    assert.match((error as ProviderError).hint ?? '', /--region fra1, or a reserved IP from nyc3/);
    assert.is(h.fake.state.reservedIps.get('198.51.100.11')!.dropletId, null);
    error = await rejection(ensure(h, testSpec({ reservedIp: '198.51.100.12' })));
    assert.match(error.message, /^reserved IP 198\.51\.100\.12 is not in this DigitalOcean account$/);
    assert.match((error as ProviderError).hint ?? '', /--region nyc3\), or drop --reserved-ip$/);
    assert.is(h.fake.state.droplets.size, 0, 'the refused runs left no droplet');
  }),
);

K('DNS: the A record is created, then updated in place on the next run (never duplicated)', () =>
  withFake({}, async (h) => {
    h.fake.state.addDomain('example.com');
    const spec = testSpec({ dns: 'web.example.com' });
    const first = await ensure(h, spec);
    const records = () => h.fake.state.domainRecords('example.com').filter((r) => r.type === 'A');
    assert.equal(
      records().map((r) => [r.name, r.data]),
      [['web', first.edge.ipv4]],
    );
    const id = records()[0]!.id;
    // Someone pointed it elsewhere; the next run puts it back, in the same record.
    records()[0]!.data = '192.0.2.99';
    await ensure(h, spec);
    assert.equal(
      records().map((r) => [r.id, r.name, r.data]),
      [[id, 'web', first.edge.ipv4]],
    );
    await ensure(h, spec);
    assert.is(h.fake.calls('POST /v2/domains/{domain_name}/records').length, 1);
    assert.is(h.fake.calls('PUT /v2/domains/{domain_name}/records/{domain_record_id}').length, 1);
    assert.ok(h.fake.state.droplets.values().next().value!.tags.includes('innisfree-dns:web_example_com'));
  }),
);

K('DNS: --dns added on a later run tags the existing edge and creates the record', () =>
  withFake({}, async (h) => {
    h.fake.state.addDomain('example.com');
    const first = await ensure(h, testSpec());
    await ensure(h, testSpec({ dns: 'www.example.com' }));
    const droplet = h.fake.state.droplets.get(Number(first.edge.id))!;
    assert.ok(droplet.tags.includes('innisfree-dns:www_example_com'));
    assert.equal(
      h.fake.state.domainRecords('example.com').map((r) => [r.type, r.name, r.data]),
      [['A', 'www', first.edge.ipv4]],
    );
    await h.provider.destroyEdge('web', { emit: h.events.emit, signal: h.signal });
    assert.equal(h.fake.state.domainRecords('example.com'), []);
  }),
);

K('DNS: an AAAA record comes with IPv6; a name outside the account is refused clearly', () =>
  withFake({}, async (h) => {
    h.fake.state.addDomain('example.com');
    const { edge } = await ensure(h, testSpec({ dns: 'example.com', ipv6: true }));
    const records = h.fake.state.domainRecords('example.com');
    assert.equal(
      records.map((r) => [r.type, r.name, r.data]).sort(),
      [
        ['A', '@', edge.ipv4],
        ['AAAA', '@', edge.ipv6],
      ].sort(),
    );
    const error = await rejection(ensure(h, testSpec({ name: 'api', dns: 'api.example.net' })));
    assert.match(error.message, /no domain of this DigitalOcean account contains it/);
  }),
);

K('the cloud firewall opens exactly the edge ports and follows port changes', () =>
  withFake({ firewall: true }, async (h) => {
    await ensure(h, testSpec());
    const [firewall] = [...h.fake.state.firewalls.values()];
    assert.is(firewall!.name, 'innisfree-web');
    assert.equal(firewall!.tags, ['innisfree:web']);
    const rules = (firewall!.inbound_rules as Array<{ protocol: string; ports: string }>)
      .map((r) => `${r.protocol}/${r.ports}`)
      .sort();
    assert.equal(rules, ['icmp/0', 'tcp/22', 'tcp/443', 'tcp/80', 'udp/19132', 'udp/51820']);
    await ensure(h, testSpec({ ports: '443/tcp,27015-27030/udp' }));
    const updated = (firewall!.inbound_rules as Array<{ protocol: string; ports: string }>)
      .map((r) => `${r.protocol}/${r.ports}`)
      .sort();
    assert.equal(updated, ['icmp/0', 'tcp/22', 'tcp/443', 'udp/27015-27030', 'udp/51820']);
    assert.is(h.fake.state.firewalls.size, 1);
  }),
);

const D = suite('digitalocean provider: list and destroy');

D('listEdges shows every edge with price; findEdge by tunnel', () =>
  withFake({}, async (h) => {
    await ensure(h, testSpec());
    await ensure(h, testSpec({ name: 'game', ports: '27015/udp', size: 's-2vcpu-4gb' }), testIdentity('game'));
    const edges = await h.provider.listEdges();
    assert.equal(
      edges.map((e) => [e.tunnel, e.size, e.priceMonthly]),
      [
        ['game', 's-2vcpu-4gb', 24],
        ['web', 's-1vcpu-2gb', 12],
      ],
    );
    assert.is((await h.provider.findEdge('game'))!.name, 'innisfree-game');
    assert.is(await h.provider.findEdge('nothing'), undefined);
  }),
);

D('down leaves nothing tagged behind: droplet, SSH key, DNS record, firewall, tags; the reserved IP is kept', () =>
  withFake({ firewall: true }, async (h) => {
    h.fake.state.addDomain('example.com');
    h.fake.state.addReservedIp('198.51.100.9', 'nyc3');
    const identity = testIdentity();
    await ensure(h, testSpec({ dns: 'web.example.com', reservedIp: '198.51.100.9' }), identity);
    await ensure(h, testSpec({ name: 'other', ports: '25/tcp' }), testIdentity('other'));
    await h.provider.destroyEdge('web', { sshPublicKey: identity.sshPublicKey, emit: h.events.emit, signal: h.signal });
    const s = h.fake.state;
    assert.equal(
      [...s.droplets.values()].map((d) => d.name),
      ['innisfree-other'],
    );
    assert.equal(s.tagged('innisfree:web'), []);
    assert.equal(s.tagged('innisfree-dns:web_example_com'), []);
    assert.ok(![...s.tags].some((t) => t === 'innisfree:web' || t.startsWith('innisfree-dns:')));
    assert.equal(
      [...s.sshKeys.values()].map((k) => k.name),
      ['innisfree-other'],
    );
    assert.equal(s.domainRecords('example.com'), []);
    assert.equal(
      [...s.firewalls.values()].map((f) => f.name),
      ['innisfree-other'],
    );
    assert.is(s.reservedIps.get('198.51.100.9')!.dropletId, null);
    assert.is(await h.provider.findEdge('web'), undefined);
    // Destroying again is harmless.
    await h.provider.destroyEdge('web', { emit: h.events.emit, signal: h.signal });
  }),
);

D('down --release-ip releases the reserved IP; without local state the SSH key is found by name', () =>
  withFake({}, async (h) => {
    h.fake.state.addReservedIp('198.51.100.10', 'nyc3');
    await ensure(h, testSpec({ reservedIp: '198.51.100.10' }));
    await h.provider.destroyEdge('web', { releaseIp: true, emit: h.events.emit, signal: h.signal });
    assert.is(h.fake.state.reservedIps.size, 0);
    assert.is(h.fake.state.sshKeys.size, 0);
    assert.is(h.fake.state.droplets.size, 0);
    assert.is(h.fake.calls('GET /v2/account/keys').length, 1);
  }),
);

D('a "pending event" refusal of the droplet DELETE is retried', () =>
  withFake({}, async (h) => {
    await ensure(h, testSpec());
    h.fake.inject({ method: 'DELETE', path: /^\/v2\/droplets\/\d+$/, response: { kind: 'pending-event' } });
    await h.provider.destroyEdge('web', { emit: h.events.emit, signal: h.signal });
    assert.is(h.fake.state.droplets.size, 0);
    assert.is(h.fake.calls('DELETE /v2/droplets/{droplet_id}').length, 2);
  }),
);

C.run();
K.run();
D.run();
