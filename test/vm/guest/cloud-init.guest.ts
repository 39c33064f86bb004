// Runs INSIDE the VM test bed (see test/vm/kernel-path.test.ts), never on the host: Debian's cloud-init, fed the
// user data innisfree sends to a stock DigitalOcean droplet (NoCloud seed instead of the metadata service), puts the
// host key the home side already pinned and the tunnel's key where sshd uses them, so the very first SSH login is
// verified against the pin: no trust on first use.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { pinHostKey } from '../../../src/edge/known-hosts.js';
import { runSsh } from '../../../src/edge/ssh.js';
import { generateSshKeyPair } from '../../../src/lib/keys.js';
import { renderUserData } from '../../../src/providers/digitalocean/user-data.js';
import { makeTempDir } from '../../helpers/tmp.js';

const C = suite("cloud-init with the CLI's user data (inside the VM)");

function sh(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 600_000 });
  assert.is(
    result.status,
    0,
    `${command} ${args.join(' ')} failed (${result.status}):\n${result.stdout}\n${result.stderr}`,
  );
  return result.stdout;
}

C('the pinned host key and the tunnel key land where sshd uses them; the first login is verified', async () => {
  const hostKey = generateSshKeyPair('innisfree-edge-host');
  const client = generateSshKeyPair('innisfree-web');
  const userData = renderUserData({ sshPublicKey: client.publicKey, hostKey });

  // A stock droplet boots with host keys of its image; cloud-init must replace them (ssh_deletekeys).
  const before = readFileSync('/etc/ssh/ssh_host_ed25519_key.pub', 'utf8').trim();
  mkdirSync('/var/lib/cloud/seed/nocloud', { recursive: true });
  writeFileSync('/var/lib/cloud/seed/nocloud/user-data', userData);
  writeFileSync(
    '/var/lib/cloud/seed/nocloud/meta-data',
    'instance-id: iid-innisfree-vm\nlocal-hostname: innisfree-web\n',
  );
  // Only the seed: probing cloud metadata services would wait for network timeouts.
  writeFileSync(
    '/etc/cloud/cloud.cfg.d/99-innisfree-test.cfg',
    'datasource_list: [ NoCloud, None ]\nnetwork: {config: disabled}\n',
  );
  // The boot's first two stages; the ssh module (keys, authorized keys, disable_root) runs in the second. The later
  // stages (locale, packages, ...) have nothing of innisfree's to apply.
  sh('cloud-init', ['init', '--local']);
  sh('cloud-init', ['init']);

  const installed = readFileSync('/etc/ssh/ssh_host_ed25519_key.pub', 'utf8').trim();
  assert.is(
    installed.split(' ').slice(0, 2).join(' '),
    hostKey.publicKey.split(' ').slice(0, 2).join(' '),
    'the pinned host key is installed',
  );
  assert.is.not(installed, before, "the image's own key is gone");
  assert.is(readFileSync('/etc/ssh/ssh_host_ed25519_key', 'utf8').trim(), hostKey.privateKey.trim());
  const authorized = readFileSync('/root/.ssh/authorized_keys', 'utf8');
  const line = authorized.split('\n').find((l) => l.includes(client.publicKey.split(' ')[1]!));
  assert.ok(line, `the tunnel key is authorized for root:\n${authorized}`);
  // disable_root: false — Debian's default would prefix the key with a command that refuses root logins.
  assert.ok(line!.startsWith('ssh-ed25519 '), `no forced command in front of the key: ${line}`);
  assert.ok(readdirSync('/etc/ssh').filter((f) => /^ssh_host_.*_key$/.test(f)).length >= 1);

  // The first contact: sshd with the installed keys, and innisfree's own client checking the pin.
  const state = makeTempDir('innisfree-vm-ci-');
  try {
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    sh('/usr/sbin/sshd', [
      '-o',
      'Port=2222',
      '-o',
      'ListenAddress=127.0.0.1',
      '-o',
      'PermitRootLogin=prohibit-password',
      '-o',
      'PidFile=/run/sshd-ci.pid',
    ]);
    const keyPath = join(state.path, 'id_ed25519');
    writeFileSync(keyPath, client.privateKey, { mode: 0o600 });
    const knownHosts = join(state.path, 'known_hosts');
    await pinHostKey(knownHosts, '127.0.0.1', 2222, hostKey.publicKey);
    const target = { host: '127.0.0.1', port: 2222, user: 'root', privateKeyPath: keyPath, knownHostsPath: knownHosts };
    const result = await runSsh(target, 'id -u; cat /etc/hostname', { timeoutMs: 60_000 });
    assert.is(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /^0\n/);
    // And a different pin is refused: the login above was verified, not trusted on first use.
    await pinHostKey(
      join(state.path, 'other_known_hosts'),
      '127.0.0.1',
      2222,
      generateSshKeyPair('impostor').publicKey,
    );
    const refused = await runSsh({ ...target, knownHostsPath: join(state.path, 'other_known_hosts') }, 'true', {
      timeoutMs: 60_000,
    }).then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    assert.ok(refused, 'a wrong pin must be refused');
    assert.match(refused!.message, /presented host key/);
  } finally {
    if (existsSync('/run/sshd-ci.pid')) spawnSync('sh', ['-c', 'kill $(cat /run/sshd-ci.pid)']);
    state.remove();
  }
});

C.run();
