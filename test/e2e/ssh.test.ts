// src/edge/ssh.ts against a real sshd on 127.0.0.1: login, exec, stdin, timeouts, host key pinning.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openEdgeSession, probeCommand } from '../../src/edge/edge-session.js';
import { pinHostKey } from '../../src/edge/known-hosts.js';
import { SshConnectError, connectSsh, runSsh, waitReady } from '../../src/edge/ssh.js';
import type { SshTarget } from '../../src/edge/deployer-port.js';
import { generateSshKeyPair } from '../../src/lib/keys.js';
import { systemClock } from '../../src/lib/context.js';
import { SshError } from '../../src/lib/errors.js';
import type { ProgressEvent } from '../../src/lib/events.js';
import { type TestSshd, freePort, processAlive, sshdUnavailable, startSshd } from '../helpers/sshd.js';
import { makeTempDir } from '../helpers/tmp.js';

const S = suite('ssh: a real sshd');
const skip = sshdUnavailable();

let sshd: TestSshd;
let state: { path: string; remove(): void };

function target(overrides: Partial<SshTarget> = {}): SshTarget {
  return {
    host: sshd.host,
    port: sshd.port,
    user: 'root',
    privateKeyPath: sshd.clientKeyPath,
    knownHostsPath: join(state.path, 'known_hosts'),
    ...overrides,
  };
}

function ready(t: SshTarget, timeoutMs = 10_000, events: ProgressEvent[] = []) {
  return waitReady(t, {
    timeoutMs,
    clock: systemClock,
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
    initialDelayMs: 50,
  });
}

S.before(async () => {
  if (skip) return;
  sshd = await startSshd();
});

let stopped = false;
S.after(async () => {
  if (!skip && !stopped) await sshd.stop();
});

S.before.each(() => {
  state = makeTempDir('innisfree-ssh-state-');
});
S.after.each(() => state.remove());

if (skip) {
  S('skipped', () => console.log(`  SKIPPED ssh tests: ${skip}`));
} else {
  S('a pre-pinned host key is accepted; exec returns stdout, stderr and the exit code', async () => {
    await pinHostKey(target().knownHostsPath, sshd.host, sshd.port, sshd.hostKey.publicKey);
    const pinnedBefore = readFileSync(target().knownHostsPath, 'utf8');
    assert.match(pinnedBefore, new RegExp(`^\\[127\\.0\\.0\\.1\\]:${sshd.port} ssh-ed25519 AAAA`));
    const events: ProgressEvent[] = [];
    const edge = await ready(target(), 10_000, events);
    assert.match(edge.hostKeyFingerprint, /^SHA256:/);
    assert.ok(events.some((e) => e.type === 'log' && /logged in/.test(e.message)));
    const result = await runSsh(target(), 'echo out; echo err >&2; exit 3');
    assert.is(result.stdout, 'out\n');
    assert.is(result.stderr, 'err\n');
    assert.is(result.exitCode, 3);
    assert.is(readFileSync(target().knownHostsPath, 'utf8'), pinnedBefore, 'the pin must not change');
  });

  S('stdin reaches the command (the only channel for secrets) and is closed after', async () => {
    const connection = await connectSsh(target());
    try {
      const secret = 'not-in-argv-0123456789';
      const result = await connection.exec('cat; echo done', { input: secret });
      assert.is(result.stdout, `${secret}done\n`);
      const noInput = await connection.exec('cat; echo eof');
      assert.is(noInput.stdout, 'eof\n');
      const lines: string[] = [];
      await connection.exec('echo one >&2; echo two >&2', { onStderrLine: (l) => lines.push(l) });
      assert.equal(lines, ['one', 'two']);
    } finally {
      connection.close();
    }
  });

  S('a command that runs too long fails with SshError', async () => {
    const started = Date.now();
    try {
      await runSsh(target(), 'sleep 10', { timeoutMs: 400 });
      assert.unreachable('should have timed out');
    } catch (error) {
      assert.instance(error, SshError);
      assert.match((error as Error).message, /did not finish within/);
    }
    assert.ok(Date.now() - started < 5000);
  });

  S('with no pin, the first contact pins the presented key', async () => {
    const events: ProgressEvent[] = [];
    await ready(target(), 10_000, events);
    const text = readFileSync(target().knownHostsPath, 'utf8');
    const blob = sshd.hostKey.publicKey.split(' ')[1];
    assert.is(text, `[127.0.0.1]:${sshd.port} ssh-ed25519 ${blob}\n`);
    assert.ok(events.some((e) => e.type === 'log' && /pinned the host key/.test(e.message)));
    // And the pin is then enforced like any other.
    await ready(target());
  });

  S('a changed host key is refused at once, with what/why/what to do', async () => {
    const other = generateSshKeyPair('impostor');
    await pinHostKey(target().knownHostsPath, sshd.host, sshd.port, other.publicKey);
    const before = readFileSync(target().knownHostsPath, 'utf8');
    const started = Date.now();
    try {
      await ready(target(), 20_000);
      assert.unreachable('a changed key must be refused');
    } catch (error) {
      assert.instance(error, SshConnectError);
      assert.is((error as SshConnectError).reason, 'hostKey');
      assert.is((error as SshConnectError).exitCode, 4);
      assert.match((error as Error).message, /presented host key ssh-ed25519 SHA256:.* pins ssh-ed25519 SHA256:/);
      assert.match((error as SshConnectError).hint ?? '', /ssh-keygen -R/);
    }
    assert.ok(Date.now() - started < 5000, 'a changed key must not be retried');
    assert.is(readFileSync(target().knownHostsPath, 'utf8'), before, 'the pin must be left alone');
  });

  S('another key for the same host on a different port is not a pin for this port', async () => {
    const other = generateSshKeyPair('other-port');
    writeFileSync(target().knownHostsPath, `127.0.0.1 ${other.publicKey}\n[127.0.0.1]:1 ${other.publicKey}\n`);
    await ready(target());
    const text = readFileSync(target().knownHostsPath, 'utf8');
    assert.match(text, /^127\.0\.0\.1 ssh-ed25519/m);
    assert.match(text, new RegExp(`^\\[127\\.0\\.0\\.1\\]:${sshd.port} ssh-ed25519`, 'm'));
  });

  S('a key the edge does not authorize fails with a clear SshError after the timeout', async () => {
    const stranger = generateSshKeyPair('stranger');
    const keyPath = join(state.path, 'stranger');
    writeFileSync(keyPath, stranger.privateKey, { mode: 0o600 });
    await pinHostKey(target().knownHostsPath, sshd.host, sshd.port, sshd.hostKey.publicKey);
    try {
      await ready(target({ privateKeyPath: keyPath }), 1500);
      assert.unreachable('login must fail');
    } catch (error) {
      assert.instance(error, SshError);
      assert.match(
        (error as Error).message,
        /did not accept an SSH login within 2 s \(last error: .*refused the tunnel's SSH key/,
      );
    }
  });

  S('waiting on a closed port times out with SshError', async () => {
    const port = await freePort();
    const started = Date.now();
    try {
      await ready(target({ port }), 1200);
      assert.unreachable('nothing listens there');
    } catch (error) {
      assert.instance(error, SshError);
      assert.match(
        (error as Error).message,
        new RegExp(`127\\.0\\.0\\.1:${port} did not accept an SSH login within 1 s \\(last error: .*refused`),
      );
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1100 && elapsed < 4000, `took ${elapsed} ms`);
  });

  S('an edge session: no status command yet, not NixOS, TCP probes made from the edge side', async () => {
    const session = await openEdgeSession(target());
    try {
      assert.is(await session.status(), undefined);
      assert.is(await session.runsNixos(), false);
      assert.is(await session.probeTcp('127.0.0.1', sshd.port), true);
      assert.is(await session.probeTcp('127.0.0.1', await freePort(), 2000), false);
      assert.throws(() => probeCommand('127.0.0.1; rm -rf /', 22, 1000));
    } finally {
      await session.close();
    }
  });

  S('an aborted wait stops promptly', async () => {
    const port = await freePort();
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('stop')), 200);
    const started = Date.now();
    try {
      await waitReady(target({ port }), {
        timeoutMs: 30_000,
        clock: systemClock,
        emit: () => {},
        signal: controller.signal,
      });
      assert.unreachable('aborted');
    } catch (error) {
      assert.is((error as Error).message, 'stop');
    }
    assert.ok(Date.now() - started < 3000);
  });

  S('the test sshd stops and leaves nothing behind', async () => {
    const { pid, dir } = sshd;
    stopped = true;
    await sshd.stop();
    assert.not.ok(processAlive(pid), 'the test sshd was left running');
    assert.not.ok(existsSync(dir), 'its directory was left behind');
  });
}

S.run();
