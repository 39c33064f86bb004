import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BusyError } from '../../src/lib/errors.js';
import { writeFileAtomic } from '../../src/state/files.js';
import { acquireLock, processStartTime } from '../../src/state/lock.js';
import { stateRoot, tunnelPaths } from '../../src/state/paths.js';
import {
  ensureTunnelKeys,
  listTunnelDirs,
  listTunnelNames,
  listTunnelRecords,
  writeTunnelRecord,
} from '../../src/state/tunnel-record.js';
import { makeTempDir } from '../helpers/tmp.js';

// ---
const paths = suite('state: paths');

paths('XDG_STATE_HOME is respected, ~/.local/state is the default, INNISFREE_STATE_DIR wins', () => {
  assert.is(stateRoot({ XDG_STATE_HOME: '/x/state', HOME: '/home/u' }), '/x/state/innisfree');
  assert.is(stateRoot({ HOME: '/home/u' }), '/home/u/.local/state/innisfree');
  assert.is(stateRoot({ INNISFREE_STATE_DIR: '/var/lib/innisfree', XDG_STATE_HOME: '/x' }), '/var/lib/innisfree');
  const p = tunnelPaths('/r', 'web');
  assert.is(p.wireguardPrivate, '/r/web/wireguard/private');
  assert.is(p.sshPrivate, '/r/web/ssh/id_ed25519');
  assert.is(p.edgeJson, '/r/web/edge/edge.json');
});

paths.run();

// ---
const files = suite('state: atomic writes and modes');

files('writes replace the file whole and leave no temporary files', async () => {
  const dir = makeTempDir();
  try {
    const path = join(dir.path, 'a', 'b.json');
    await writeFileAtomic(path, 'one');
    await writeFileAtomic(path, 'two');
    assert.is(readFileSync(path, 'utf8'), 'two');
    assert.equal(readdirSync(join(dir.path, 'a')), ['b.json']);
  } finally {
    dir.remove();
  }
});

files('keys are 0600, public halves 0644, and stable across calls', async () => {
  const dir = makeTempDir();
  try {
    const p = tunnelPaths(dir.path, 'web');
    const first = await ensureTunnelKeys(p, 'web');
    const second = await ensureTunnelKeys(p, 'web');
    assert.equal(first, second);
    for (const secret of [p.wireguardPrivate, p.sshPrivate, p.hostKeyPrivate]) {
      assert.is(statSync(secret).mode & 0o777, 0o600, secret);
    }
    for (const pub of [p.wireguardPublic, p.sshPublic, p.hostKeyPublic])
      assert.is(statSync(pub).mode & 0o777, 0o644, pub);
    assert.is(statSync(p.dir).mode & 0o777, 0o700);
    assert.match(first.sshPublicKey, /^ssh-ed25519 \S+ innisfree-web$/);
    assert.is.not(first.sshPublicKey.split(' ')[1], first.hostPublicKey.split(' ')[1]);
  } finally {
    dir.remove();
  }
});

files('listing tunnels reads every tunnel.json and skips junk', async () => {
  const dir = makeTempDir();
  try {
    const allocation = {
      index: 1,
      pool: '10.50.0.0/16',
      interface: 'isf-a',
      edgeInterface: 'ise-a',
      homeAddress: '10.50.0.6/30',
      edgeAddress: '10.50.0.5/30',
    };
    await writeTunnelRecord(tunnelPaths(dir.path, 'a'), 'a', allocation, new Date(0));
    await writeTunnelRecord(
      tunnelPaths(dir.path, 'b'),
      'b',
      { ...allocation, index: 2, interface: 'isf-b' },
      new Date(0),
    );
    writeFileSync(join(dir.path, 'README'), 'not a tunnel');
    writeFileSync(join(dir.path, 'file'), 'a file named like a tunnel');
    mkdirSync(join(dir.path, 'Not_A_Name'));
    mkdirSync(join(dir.path, 'empty'));
    mkdirSync(join(dir.path, 'elsewhere'));
    await writeTunnelRecord(
      tunnelPaths(join(dir.path, 'elsewhere'), 'c'),
      'c',
      { ...allocation, index: 3 },
      new Date(0),
    );
    symlinkSync(join(dir.path, 'elsewhere', 'c'), join(dir.path, 'c'));
    const records = await listTunnelRecords(dir.path);
    assert.equal(
      records.map((r) => r.name),
      ['a', 'b', 'c'],
    );
    // A directory named like a tunnel is local state (list, clean) even before its files exist; status wants them.
    assert.equal(await listTunnelDirs(dir.path), ['a', 'b', 'c', 'elsewhere', 'empty']);
    assert.equal(await listTunnelNames(dir.path), ['a', 'b', 'c']);
    assert.equal(await listTunnelRecords(join(dir.path, 'missing')), []);
    assert.equal(await listTunnelDirs(join(dir.path, 'missing')), []);
  } finally {
    dir.remove();
  }
});

files.run();

// ---
const lock = suite('state: the tunnel lock');

lock('a second holder is refused with the first holder pid', async () => {
  const dir = makeTempDir();
  try {
    const path = join(dir.path, 'web', 'lock');
    const held = await acquireLock(path, 'tunnel "web"', 'up');
    try {
      await acquireLock(path, 'tunnel "web"', 'up');
      assert.unreachable('the second acquire must fail');
    } catch (error) {
      assert.instance(error, BusyError);
      assert.match((error as Error).message, new RegExp(`tunnel "web" is already in use by pid ${process.pid}`));
      assert.is((error as BusyError).exitCode, 8);
    }
    await held.release();
    const again = await acquireLock(path, 'tunnel "web"', 'up');
    await again.release();
  } finally {
    dir.remove();
  }
});

lock('a lock left by a killed process is recovered', async () => {
  const dir = makeTempDir();
  try {
    const path = join(dir.path, 'web', 'lock');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    await new Promise((resolve) => child.once('spawn', resolve));
    const pid = child.pid!;
    const startTime = processStartTime(pid);
    await writeFileAtomic(
      path,
      JSON.stringify({ pid, startTime, hostname: (await import('node:os')).hostname(), command: 'up', since: 'x' }),
    );
    try {
      await acquireLock(path, 'tunnel "web"', 'up');
      assert.unreachable('live holder');
    } catch (error) {
      assert.instance(error, BusyError);
    }
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const taken = await acquireLock(path, 'tunnel "web"', 'up');
    assert.is(JSON.parse(readFileSync(path, 'utf8')).pid, process.pid);
    await taken.release();
  } finally {
    dir.remove();
  }
});

lock('a recycled pid with another start time does not keep a stale lock', async () => {
  const dir = makeTempDir();
  try {
    const path = join(dir.path, 'web', 'lock');
    // Our own pid is alive, but the recorded start time is not ours: the holder is gone.
    await writeFileAtomic(
      path,
      JSON.stringify({
        pid: process.pid,
        startTime: '1',
        hostname: (await import('node:os')).hostname(),
        command: 'up',
        since: 'x',
      }),
    );
    const taken = await acquireLock(path, 'tunnel "web"', 'up');
    await taken.release();
  } finally {
    dir.remove();
  }
});

lock.run();
