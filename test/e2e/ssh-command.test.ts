// `innisfree ssh NAME` and `innisfree ip NAME` as a user runs them, against a tunnel state directory whose edge is a
// real sshd on 127.0.0.1.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildSshArgv } from '../../src/commands/ssh.js';
import { pinHostKey } from '../../src/edge/known-hosts.js';
import { generateSshKeyPair } from '../../src/lib/keys.js';
import { tunnelPaths } from '../../src/state/paths.js';
import type { TunnelStatus } from '../../src/state/status.js';
import { runCli } from '../helpers/cli.js';
import { type TestSshd, processAlive, sshdUnavailable, startSshd } from '../helpers/sshd.js';
import { makeTempDir } from '../helpers/tmp.js';

const S = suite('commands: ssh and ip');
const skip = sshdUnavailable();

function statusWithEdge(name: string, ipv4: string, ipv6?: string): TunnelStatus {
  return {
    version: 1,
    name,
    phase: 'ready',
    pid: null,
    provider: 'local',
    updatedAt: new Date().toISOString(),
    edge: {
      provider: 'local',
      id: 'test',
      name: `innisfree-${name}`,
      tunnel: name,
      ipv4,
      ...(ipv6 ? { ipv6 } : {}),
      region: 'local',
      size: 'netns',
      status: 'running',
      createdAt: new Date().toISOString(),
    },
    plannedConfigHash: null,
    deployedConfigHash: null,
    message: null,
    dataPlane: null,
  };
}

S('the ssh argv pins the host key strictly and passes the remote command through', () => {
  const argv = buildSshArgv(
    {
      host: '203.0.113.7',
      port: 2222,
      user: 'root',
      privateKeyPath: '/s/web/ssh/id_ed25519',
      knownHostsPath: '/state dir/web/ssh/known_hosts',
    },
    ['systemctl', 'status', '-n', '5'],
  );
  assert.equal(argv, [
    '-i',
    '/s/web/ssh/id_ed25519',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'UserKnownHostsFile="/state dir/web/ssh/known_hosts"',
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-p',
    '2222',
    'root@203.0.113.7',
    'systemctl',
    'status',
    '-n',
    '5',
  ]);
});

S('ip prints IPv4 and IPv6 (plain and --json); a tunnel without edge is a clear usage error', async () => {
  const state = makeTempDir();
  try {
    const env = { INNISFREE_STATE_DIR: state.path };
    const paths = tunnelPaths(state.path, 'web');
    mkdirSync(paths.dir, { recursive: true });
    let result = await runCli(['ip', 'web'], env);
    assert.is(result.code, 2);
    assert.match(result.stderr, /tunnel "web" has no edge/);
    writeFileSync(paths.status, JSON.stringify(statusWithEdge('web', '203.0.113.9', '2001:db8::9')));
    result = await runCli(['ip', 'web'], env);
    assert.is(result.code, 0);
    assert.is(result.stdout, '203.0.113.9\n2001:db8::9\n');
    result = await runCli(['ip', 'web', '--json'], env);
    assert.equal(JSON.parse(result.stdout), { name: 'web', ipv4: '203.0.113.9', ipv6: '2001:db8::9' });
    writeFileSync(paths.status, JSON.stringify(statusWithEdge('web', '203.0.113.9')));
    result = await runCli(['ip', 'web', '--json'], env);
    assert.equal(JSON.parse(result.stdout), { name: 'web', ipv4: '203.0.113.9', ipv6: null });
    result = await runCli(['ip', 'nope'], env);
    assert.is(result.code, 2);
    assert.match(result.stderr, /no tunnel named "nope"/);
  } finally {
    state.remove();
  }
});

if (skip) {
  S('ssh against a real sshd (skipped)', () => console.log(`  SKIPPED ssh command test: ${skip}`));
} else {
  S('ssh NAME -- COMMAND runs on the edge with the pinned key; a wrong pin is refused by ssh', async () => {
    const sshd: TestSshd = await startSshd();
    const state = makeTempDir();
    try {
      const env = { INNISFREE_STATE_DIR: state.path };
      const paths = tunnelPaths(state.path, 'web');
      mkdirSync(join(paths.dir, 'ssh'), { recursive: true, mode: 0o700 });
      mkdirSync(paths.edgeDir, { recursive: true });
      writeFileSync(paths.sshPrivate, readFileSync(sshd.clientKeyPath, 'utf8'), { mode: 0o600 });
      writeFileSync(paths.status, JSON.stringify(statusWithEdge('web', sshd.host)));
      writeFileSync(paths.edgeJson, JSON.stringify({ ssh: { port: sshd.port } }));

      let result = await runCli(['ssh', 'web', '--', 'echo', 'hello', 'from', '$((6*7))'], env);
      assert.is(result.code, 4, result.stderr);
      assert.match(result.stderr, /no host key is pinned/);

      await pinHostKey(paths.knownHosts, sshd.host, sshd.port, sshd.hostKey.publicKey);
      result = await runCli(['ssh', 'web', '--', 'echo', 'hello', 'from', '$((6*7))'], env);
      assert.is(result.stderr, '');
      assert.is(result.stdout, 'hello from 42\n');
      assert.is(result.code, 0);

      result = await runCli(['ssh', 'web', '--', 'exit', '7'], env);
      assert.is(result.code, 7, 'the remote exit code is passed through');

      await pinHostKey(paths.knownHosts, sshd.host, sshd.port, generateSshKeyPair('impostor').publicKey);
      result = await runCli(['ssh', 'web', '--', 'echo', 'should-not-run'], env);
      assert.is(result.code, 255);
      assert.not.match(result.stdout, /should-not-run/);
      assert.match(result.stderr, /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    } finally {
      const pid = sshd.pid;
      await sshd.stop();
      state.remove();
      assert.not.ok(processAlive(pid));
    }
  });
}

S.run();
