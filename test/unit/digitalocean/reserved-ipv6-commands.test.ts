// down and list with a reserved IPv6, in-process against the fake API with a virtual clock: down keeps the address
// (kept-reserved-ipv6.json) and says how to use it again, a later down --release-ip releases it; list marks it.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { downCommand } from '../../../src/commands/down.js';
import { listCommand } from '../../../src/commands/list.js';
import { recorder, testIdentity, virtualClock } from '../../helpers/do.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { FakeDigitalOcean } from '../../fake-do/server.js';

async function withCommands(
  run: (e: { fake: FakeDigitalOcean; root: string; ctx: Parameters<typeof downCommand>[0] }) => Promise<void>,
): Promise<void> {
  const clock = virtualClock();
  const fake = await FakeDigitalOcean.start({ now: clock.now, activation: { afterPolls: 0 }, checkResponses: true });
  const tmp = makeTempDir('innisfree-do-v6-');
  const events = recorder();
  const root = join(tmp.path, 'state');
  const env = {
    DIGITALOCEAN_API_URL: fake.url,
    DIGITALOCEAN_TOKEN: fake.token,
    INNISFREE_STATE_DIR: root,
    XDG_CONFIG_HOME: join(tmp.path, 'config'),
  };
  try {
    await run({
      fake,
      root,
      ctx: { clock, emit: events.emit, env, signal: new AbortController().signal } as Parameters<typeof downCommand>[0],
    });
    assert.equal(fake.violations, []);
    assert.equal(fake.responseViolations, []);
  } finally {
    await fake.stop();
    tmp.remove();
  }
}

/** A kept IPv6 edge holding a reserved IPv6, with local state, as `up --reserved-ipv6 new --keep` leaves it. */
async function edgeWithReservedIpv6(
  fake: FakeDigitalOcean,
  root: string,
): Promise<{ id: number; ip6: string; own6: string }> {
  const { sshPublicKey } = testIdentity('web');
  const key = fake.state.addSshKey('innisfree-web', sshPublicKey);
  const droplet = await fake.state.createDroplet({
    name: 'innisfree-web',
    region: 'nyc3',
    size: 's-1vcpu-2gb',
    image: 'debian-12-x64',
    ipv6: true,
    ssh_keys: [key.fingerprint],
    tags: ['innisfree', 'innisfree:web'],
  });
  fake.state.advance(droplet);
  const ip6 = fake.state.addReservedIpv6('nyc3', undefined, droplet.id).ip;
  mkdirSync(join(root, 'web', 'ssh'), { recursive: true });
  writeFileSync(join(root, 'web', 'tunnel.json'), '{}\n');
  writeFileSync(join(root, 'web', 'ssh', 'id_ed25519.pub'), `${sshPublicKey}\n`);
  return { id: droplet.id, ip6, own6: droplet.publicIpv6! };
}

const R = suite('reserved IPv6: down and list');

R('list shows the reserved IPv6 as the edge address, marked reserved', () =>
  withCommands(async (e) => {
    const { ip6 } = await edgeWithReservedIpv6(e.fake, e.root);
    const text = (await listCommand(e.ctx, { flags: {}, json: false })).output ?? '';
    assert.match(text, `${ip6} (reserved)`);
    const json = JSON.parse((await listCommand(e.ctx, { flags: {}, json: true })).output ?? '') as
      Array<{ ipv6?: string; directIpv6?: string }> | { edges: Array<{ ipv6?: string; directIpv6?: string }> };
    const edges = Array.isArray(json) ? json : json.edges;
    assert.is(edges[0]?.ipv6, ip6);
    assert.match(edges[0]?.directIpv6 ?? '', /^2001:db8:10::/);
  }),
);

R('down keeps it and says so; down NAME --release-ip then releases it', () =>
  withCommands(async (e) => {
    const { ip6 } = await edgeWithReservedIpv6(e.fake, e.root);
    const first = (await downCommand(e.ctx, { name: 'web', flags: {}, json: false })).output ?? '';
    assert.match(
      first,
      `Kept reserved IPv6 ${ip6} (up --reserved-ipv6 ${ip6} uses it again; innisfree down web --release-ip ` +
        `releases it).`,
    );
    assert.is(e.fake.state.droplets.size, 0);
    assert.is(e.fake.state.reservedIpv6s.get(ip6)?.dropletId, null, 'kept, unassigned');
    assert.equal(JSON.parse(readFileSync(join(e.root, 'kept-reserved-ipv6.json'), 'utf8')), { web: ip6 });
    const second = JSON.parse(
      (await downCommand(e.ctx, { name: 'web', flags: { releaseIp: true }, json: true })).output ?? '',
    ) as Record<string, unknown>;
    assert.is(second.reservedIpv6, ip6);
    assert.is(second.reservedIpv6Released, true);
    assert.is(e.fake.state.reservedIpv6s.size, 0, 'released');
    assert.not.ok(existsSync(join(e.root, 'kept-reserved-ipv6.json')));
  }),
);

R('down --release-ip releases an assigned reserved IPv6 at once', () =>
  withCommands(async (e) => {
    const { ip6 } = await edgeWithReservedIpv6(e.fake, e.root);
    const text = (await downCommand(e.ctx, { name: 'web', flags: { releaseIp: true }, json: false })).output ?? '';
    assert.match(text, `Released reserved IPv6 ${ip6}.`);
    assert.is(e.fake.state.reservedIpv6s.size, 0);
  }),
);

R('a kept IPv6 taken over by a foreign droplet is not released, as a kept reserved IP is not', () =>
  withCommands(async (e) => {
    const { ip6 } = await edgeWithReservedIpv6(e.fake, e.root);
    await downCommand(e.ctx, { name: 'web', flags: {}, json: false });
    const other = await e.fake.state.createDroplet({
      name: 'someone-else',
      region: 'nyc3',
      size: 's-1vcpu-1gb',
      image: 'debian-12-x64',
      ipv6: true,
      tags: [],
    });
    e.fake.state.advance(other);
    e.fake.state.reservedIpv6s.get(ip6)!.dropletId = other.id;
    const error = await downCommand(e.ctx, { name: 'web', flags: { releaseIp: true }, json: false }).catch(
      (x: unknown) => x as Error,
    );
    assert.instance(error, Error);
    assert.match((error as Error).message, `reserved IPv6 ${ip6} is now assigned to droplet someone-else`);
    assert.is(e.fake.state.reservedIpv6s.get(ip6)?.dropletId, other.id, "still the other droplet's");
  }),
);

R('a kept IPv6 is released by down --release-ip while a new edge of the tunnel (with its own IPv6) runs', () =>
  withCommands(async (e) => {
    const { ip6 } = await edgeWithReservedIpv6(e.fake, e.root);
    await downCommand(e.ctx, { name: 'web', flags: {}, json: false });
    // up again without --reserved-ipv6: a new droplet of the tunnel, IPv6 on, the kept address unassigned.
    const again = await e.fake.state.createDroplet({
      name: 'innisfree-web',
      region: 'nyc3',
      size: 's-1vcpu-2gb',
      image: 'debian-12-x64',
      ipv6: true,
      tags: ['innisfree', 'innisfree:web'],
    });
    e.fake.state.advance(again);
    mkdirSync(join(e.root, 'web', 'ssh'), { recursive: true });
    writeFileSync(join(e.root, 'web', 'tunnel.json'), '{}\n');
    writeFileSync(join(e.root, 'web', 'ssh', 'id_ed25519.pub'), `${testIdentity('web').sshPublicKey}\n`);
    const summary = JSON.parse(
      (await downCommand(e.ctx, { name: 'web', flags: { releaseIp: true }, json: true })).output ?? '',
    ) as Record<string, unknown>;
    assert.is(summary.reservedIpv6, ip6);
    assert.is(summary.reservedIpv6Released, true);
    assert.is(e.fake.state.reservedIpv6s.has(ip6), false, 'released, as the summary says');
    assert.is(e.fake.state.droplets.size, 0);
  }),
);

R.run();
