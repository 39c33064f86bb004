// A real OpenSSH server for tests: its own config, host key and authorized key in a temp directory, listening on
// 127.0.0.1 at a free port (or inside a network namespace), stopped by pid.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { generateSshKeyPair, type SshKeyPair } from '../../src/lib/keys.js';
import { parsePid } from '../../src/lib/pid.js';
import { makeTempDir } from './tmp.js';

export const SSHD = '/usr/sbin/sshd';

/** Why sshd tests cannot run here, or undefined when they can. */
export function sshdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (sshd logs in as root)';
  if (!existsSync(SSHD)) return `${SSHD} is not installed (apt-get install openssh-server)`;
  return undefined;
}

export interface TestSshd {
  host: string;
  port: number;
  dir: string;
  hostKey: SshKeyPair;
  clientKeyPath: string;
  clientPublicKey: string;
  pid: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false; // kill(0) or kill(-1) would be about other processes
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function startSshd(options: { hostKey?: SshKeyPair; port?: number } = {}): Promise<TestSshd> {
  const tmp = makeTempDir('innisfree-sshd-');
  const dir = tmp.path;
  const hostKey = options.hostKey ?? generateSshKeyPair('test-host');
  const client = generateSshKeyPair('test-client');
  writeFileSync(join(dir, 'host_key'), hostKey.privateKey, { mode: 0o600 });
  writeFileSync(join(dir, 'client_key'), client.privateKey, { mode: 0o600 });
  writeFileSync(join(dir, 'client_key.pub'), `${client.publicKey}\n`);
  writeFileSync(join(dir, 'authorized_keys'), `${client.publicKey}\n`);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  mkdirSync(join(dir, 'home'), { mode: 0o700 });
  const pidFile = join(dir, 'sshd.pid');
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = options.port ?? (await freePort());
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_key')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        `PidFile ${pidFile}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'StrictModes no',
        'UsePAM no',
        'LogLevel VERBOSE',
        // Sessions must not source this host's ~/.bashrc (it can change PATH or block): an empty home of their own.
        `SetEnv HOME=${join(dir, 'home')}`,
        '',
      ].join('\n'),
    );
    try {
      execFileSync(SSHD, ['-f', join(dir, 'sshd_config'), '-E', join(dir, 'sshd.log')], { stdio: 'pipe' });
    } catch {
      continue;
    }
    // sshd creates the pid file before it writes the pid: wait for a pid, never read '' as 0 (our process group).
    let pid: number | undefined;
    for (let i = 0; i < 100 && pid === undefined; i++) {
      pid = existsSync(pidFile) ? parsePid(readFileSync(pidFile, 'utf8')) : undefined;
      if (pid === undefined) await delay(20);
    }
    if (pid === undefined) continue;
    const sshdPid = pid;
    return {
      host: '127.0.0.1',
      port,
      dir,
      hostKey,
      clientKeyPath: join(dir, 'client_key'),
      clientPublicKey: client.publicKey,
      pid: sshdPid,
      stop: async () => {
        if (processAlive(sshdPid)) process.kill(sshdPid, 'SIGTERM');
        for (let i = 0; i < 100 && processAlive(sshdPid); i++) await delay(20);
        rmSync(dir, { recursive: true, force: true });
        if (processAlive(sshdPid)) throw new Error(`sshd ${sshdPid} did not stop`);
      },
    };
  }
  tmp.remove();
  throw new Error('could not start a test sshd');
}
