// Issue 10 cases 6 and 8 and the SIGKILL test: down, clean and list against the fake API, run in-process with a
// virtual clock (the waits take no time).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanCommand } from '../../../src/commands/clean.js';
import { downCommand } from '../../../src/commands/down.js';
import { listCommand } from '../../../src/commands/list.js';
import { makeEdge, testIdentity, recorder, virtualClock } from '../../helpers/do.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { FakeDigitalOcean } from '../../fake-do/server.js';
import { ResourceLedger } from '../../../src/state/resources.js';
import { UsageError } from '../../../src/lib/errors.js';

export interface CommandEnv {
  fake: FakeDigitalOcean;
  root: string;
  ctx: {
    clock: ReturnType<typeof virtualClock>;
    emit: ReturnType<typeof recorder>['emit'];
    env: Record<string, string>;
    signal: AbortSignal;
  };
  events: ReturnType<typeof recorder>;
}

export async function withCommands(run: (e: CommandEnv) => Promise<void>, dropletLimit = 25): Promise<void> {
  const clock = virtualClock();
  const fake = await FakeDigitalOcean.start({
    now: clock.now,
    activation: { afterPolls: 0 },
    checkResponses: true,
    dropletLimit,
  });
  const tmp = makeTempDir('innisfree-do-cmd-');
  const events = recorder();
  const root = join(tmp.path, 'state');
  const env = {
    DIGITALOCEAN_API_URL: fake.url,
    DIGITALOCEAN_TOKEN: fake.token,
    INNISFREE_STATE_DIR: root,
    XDG_CONFIG_HOME: join(tmp.path, 'config'),
  };
  try {
    await run({ fake, root, ctx: { clock, emit: events.emit, env, signal: new AbortController().signal }, events });
    assert.equal(fake.violations, []);
    assert.equal(fake.responseViolations, []);
    assert.not.ok(events.text().includes(fake.token));
  } finally {
    await fake.stop();
    tmp.remove();
  }
}

/** An active edge for `tunnel` in the fake account, made as a previous `up --keep` would have. */
export function tunnelState(root: string, tunnel: string, publicKey?: string): string {
  const dir = join(root, tunnel);
  mkdirSync(join(dir, 'ssh'), { recursive: true });
  writeFileSync(join(dir, 'tunnel.json'), '{}\n');
  if (publicKey) writeFileSync(join(dir, 'ssh', 'id_ed25519.pub'), `${publicKey}\n`);
  return dir;
}

const R = suite('issue 10 case 6: down --release-ip after an earlier down');

R('down keeps the reserved IP and says how to release it; down NAME --release-ip then releases it', () =>
  withCommands(async (e) => {
    const { id, publicKey } = await makeEdge(e.fake, 'web');
    e.fake.state.addReservedIp('198.51.100.7', 'nyc3', id);
    tunnelState(e.root, 'web', publicKey);
    const first = (await downCommand(e.ctx, { name: 'web', flags: {}, json: false })).output ?? '';
    assert.match(first, /Kept reserved IP 198\.51\.100\.7 \(innisfree down web --release-ip releases it\)\./);
    assert.is(e.fake.state.droplets.size, 0);
    assert.ok(e.fake.state.reservedIps.has('198.51.100.7'), 'kept');
    const second = (await downCommand(e.ctx, { name: 'web', flags: { releaseIp: true }, json: false })).output ?? '';
    assert.match(second, /Tunnel web had no edge at digitalocean\./);
    assert.match(second, /Released reserved IP 198\.51\.100\.7\./);
    assert.is(e.fake.state.reservedIps.size, 0, 'released');
    assert.not.ok(existsSync(join(e.root, 'kept-reserved-ips.json')));
    // Now nothing is left anywhere: a third down is told so (exit 2), as for a mistyped name.
    const third = await downCommand(e.ctx, { name: 'web', flags: { releaseIp: true }, json: false }).catch(
      (x: unknown) => x as Error,
    );
    assert.instance(third, UsageError);
    assert.match((third as Error).message, /no tunnel named "web"/);
  }),
);

R('a kept IP taken over by a foreign droplet is not released', () =>
  withCommands(async (e) => {
    const { id } = await makeEdge(e.fake, 'web');
    e.fake.state.addReservedIp('198.51.100.8', 'nyc3', id);
    await downCommand(e.ctx, { name: 'web', flags: {}, json: false });
    const other = await e.fake.state.createDroplet({
      name: 'someone-else',
      region: 'nyc3',
      size: 's-1vcpu-1gb',
      image: 'debian-12-x64',
      tags: [],
    });
    e.fake.state.advance(other);
    e.fake.state.reservedIps.get('198.51.100.8')!.dropletId = other.id;
    const error = await downCommand(e.ctx, { name: 'web', flags: { releaseIp: true }, json: false }).catch(
      (x: unknown) => x as Error,
    );
    assert.instance(error, Error);
    assert.match((error as Error).message, /reserved IP 198\.51\.100\.8 is now assigned to droplet someone-else/);
    assert.ok(e.fake.state.reservedIps.has('198.51.100.8'));
  }),
);

const C = suite('issue 10 case 8: clean fetches account-wide lists once and removes stray keys and firewalls');

C('clean --yes for 229 edges: about three requests per edge, nothing left', () =>
  withCommands(async (e) => {
    for (let i = 0; i < 229; i++) await makeEdge(e.fake, `t${i}`);
    const before = e.fake.requests.length;
    const out = (await cleanCommand(e.ctx, { flags: { yes: true }, json: false })).output ?? '';
    const used = e.fake.requests.length - before;
    assert.match(out, /^Destroyed 229 edges: /);
    assert.is(e.fake.state.droplets.size, 0);
    assert.is(e.fake.state.sshKeys.size, 0);
    assert.ok(used <= 229 * 3 + 20, `${used} requests`);
    for (const list of ['GET /v2/account/keys', 'GET /v2/firewalls', 'GET /v2/reserved_ips']) {
      assert.ok(e.fake.calls(list).length <= 2, `${list}: ${e.fake.calls(list).length} (one walk of its pages)`);
    }
  }, 250),
);

C('stray innisfree-* keys and firewalls are listed by list and clean, and removed by clean --yes; used ones stay', () =>
  withCommands(async (e) => {
    const kept = await makeEdge(e.fake, 'kept');
    tunnelState(e.root, 'kept', kept.publicKey);
    e.fake.state.addSshKey('innisfree-gone', testIdentity('gone').sshPublicKey);
    e.fake.state.addSshKey('laptop', testIdentity('laptop').sshPublicKey);
    e.fake.state.tags.add('innisfree:gone');
    e.fake.state.firewalls.set('fw-1', {
      id: 'fw-1',
      name: 'innisfree-gone',
      createdAt: e.ctx.clock.now(),
      inbound_rules: [],
      outbound_rules: [],
      droplet_ids: [],
      tags: ['innisfree:gone'],
    });
    const listed = (await listCommand(e.ctx, { flags: {}, json: false })).output ?? '';
    assert.match(
      listed,
      new RegExp(
        /Stray: SSH key innisfree-gone; cloud firewall innisfree-gone \(no edge or local state /.source +
          /uses them; innisfree clean --yes removes them\)/.source,
      ),
    );
    const pending = (await cleanCommand(e.ctx, { flags: {}, json: false })).output ?? '';
    assert.match(
      pending,
      new RegExp(
        /No edge or local state uses SSH key: innisfree-gone\.\nNo edge or local state uses cloud /.source +
          /firewall: innisfree-gone\./.source,
      ),
    );
    assert.is(e.fake.state.sshKeys.size, 3, 'nothing removed without --yes');
    const done = (await cleanCommand(e.ctx, { flags: { yes: true }, json: false })).output ?? '';
    assert.match(done, /Removed SSH key: innisfree-gone\.\nRemoved cloud firewall: innisfree-gone\./);
    assert.equal([...e.fake.state.sshKeys.values()].map((k) => k.name).sort(), ['innisfree-kept', 'laptop']);
    assert.is(e.fake.state.firewalls.size, 0);
    assert.is(e.fake.state.droplets.size, 1, 'the edge with local state stays');
    assert.match((await cleanCommand(e.ctx, { flags: {}, json: false })).output ?? '', /Nothing to clean/);
  }),
);

C('the DNS records of an orphaned edge go with it', () =>
  withCommands(async (e) => {
    e.fake.state.addDomain('example.com');
    const { id } = await makeEdge(e.fake, 'web');
    const droplet = e.fake.state.droplets.get(id)!;
    droplet.tags.push('innisfree-dns:web_example_com');
    e.fake.state.tags.add('innisfree-dns:web_example_com');
    const records = e.fake.state.domains.get('example.com')!.records;
    records.set(1, {
      id: 1,
      type: 'A',
      name: 'web',
      data: droplet.publicIpv4,
      ttl: 60,
      priority: null,
      port: null,
      weight: null,
      flags: null,
      tag: null,
    });
    records.set(2, {
      id: 2,
      type: 'A',
      name: 'www',
      data: '192.0.2.99',
      ttl: 60,
      priority: null,
      port: null,
      weight: null,
      flags: null,
      tag: null,
    });
    const done = (await cleanCommand(e.ctx, { flags: { yes: true }, json: false })).output ?? '';
    assert.match(done, /Removed the DNS records of web\.example\.com\./);
    assert.equal([...records.keys()], [2], "only the edge's record is removed");
  }),
);

C("a killed up's ledger in a tunnel that has local state: clean lists it and --yes removes what it lists", () =>
  withCommands(async (e) => {
    const { id, publicKey } = await makeEdge(e.fake, 'web');
    const dir = tunnelState(e.root, 'web', publicKey);
    const ledger = await ResourceLedger.open(join(dir, 'resources.json'), 'web');
    await ledger.intend('ssh-key', {
      fingerprint: [...e.fake.state.sshKeys.values()][0]!.fingerprint,
      name: 'innisfree-web',
    });
    await ledger.intend('droplet', { tag: 'innisfree:web', name: 'innisfree-web' });
    const pending = (await cleanCommand(e.ctx, { flags: {}, json: false })).output ?? '';
    assert.match(pending, /A run of up for web was killed and left: ssh-key, droplet\./);
    assert.is(e.fake.state.droplets.size, 1);
    const done = (await cleanCommand(e.ctx, { flags: { yes: true }, json: false })).output ?? '';
    assert.match(done, /Removed what a killed run of up for web left: ssh-key, droplet\./);
    assert.not.ok(e.fake.state.droplets.has(id));
    assert.is(e.fake.state.sshKeys.size, 0);
    assert.not.ok(existsSync(join(dir, 'resources.json')));
    assert.ok(existsSync(dir), 'the local state itself stays');
  }),
);

R.run();
C.run();
