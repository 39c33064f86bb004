// Secrets never reach a child process: with a DigitalOcean token in the environment of `up`, no process `up`
// starts — directly or through the local edge's sshd and agent, long-lived (wireguard-go, sshd, nginx) or gone in
// a moment (ip, wg, nft, nix-instantiate, ssh) — has the token or a private key (the home and edge WireGuard keys,
// the tunnel's SSH key, the edge's host key) in its environment or argv.
// Two views: /proc/PID/environ and /proc/PID/cmdline of every process on the machine while the tunnel serves, and
// every execve of up's whole process tree for its whole life, traced with strace (argv and environment in full).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import { tunnelPaths } from '../../src/state/paths.js';
import { runtimePaths } from '../../src/providers/local/layout.js';
import { cliPath } from '../helpers/cli.js';
import { localProviderUnavailable, randomTunnelName } from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startUp } from '../helpers/up-process.js';

const unavailable = localProviderUnavailable();
const S = suite('secrets: no child of up holds the API token or a private key');

interface Secret {
  what: string;
  needle: string;
}

/** Pids whose environment or command line contains `needle`. */
function processesHolding(needle: string): Array<{ pid: number; comm: string }> {
  const found: Array<{ pid: number; comm: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(join('/proc', entry, 'environ'));
      const cmdline = readFileSync(join('/proc', entry, 'cmdline'));
      if (environ.includes(needle) || cmdline.includes(needle)) {
        found.push({ pid: Number(entry), comm: readFileSync(join('/proc', entry, 'comm'), 'utf8').trim() });
      }
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/**
 * The private keys of the tunnel, as strings that would show up in argv or an environment if one leaked: a
 * WireGuard key whole, an OpenSSH key by each line of its base64 body.
 */
function privateKeys(stateDir: string, localDir: string, name: string): Secret[] {
  const paths = tunnelPaths(stateDir, name);
  const secrets: Secret[] = [
    { what: 'the home WireGuard private key', needle: readFileSync(paths.wireguardPrivate, 'utf8').trim() },
    {
      what: "the edge's WireGuard private key",
      needle: readFileSync(runtimePaths(localDir, name).wireguardPrivate, 'utf8').trim(),
    },
  ];
  for (const [what, file] of [
    ['the tunnel SSH key', paths.sshPrivate],
    ["the edge's SSH host key", paths.hostKeyPrivate],
  ] as const) {
    const body = readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.length >= 40 && !line.startsWith('-----'));
    assert.ok(body.length > 0, `${file} has a key body`);
    body.forEach((line, i) => secrets.push({ what: `${what} (line ${i + 1})`, needle: line }));
  }
  for (const secret of secrets) assert.ok(secret.needle.length >= 40, `${secret.what} is a real key`);
  return secrets;
}

function tokens(): { token: string; accessToken: string; secrets: Secret[] } {
  const token = `dop_v1_${randomBytes(24).toString('hex')}`;
  const accessToken = `dop_v1_${randomBytes(24).toString('hex')}`;
  return {
    token,
    accessToken,
    secrets: [
      { what: 'DIGITALOCEAN_TOKEN', needle: token },
      { what: 'DIGITALOCEAN_ACCESS_TOKEN', needle: accessToken },
    ],
  };
}

function envFor(dir: string): Record<string, string> {
  return {
    INNISFREE_STATE_DIR: join(dir, 'state'),
    INNISFREE_LOCAL_DIR: join(dir, 'local'),
    XDG_CONFIG_HOME: join(dir, 'config'),
  };
}

S('while up --provider local serves: only up itself holds the token; no process holds a private key', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const dir = makeTempDir('innisfree-secrets-');
  const env = envFor(dir.path);
  const name = randomTunnelName();
  const { token, accessToken, secrets } = tokens();
  const provider = new LocalProvider({ env, runtimeDir: env.INNISFREE_LOCAL_DIR });
  const up = startUp(['--provider', 'local', '--name', name, '--ports', '18080/tcp,18053/udp'], {
    ...env,
    DIGITALOCEAN_TOKEN: token,
    DIGITALOCEAN_ACCESS_TOKEN: accessToken,
  });
  try {
    await up.ready();
    for (const secret of secrets) {
      const holders = processesHolding(secret.needle).filter((p) => p.pid !== up.child.pid);
      assert.equal(
        holders,
        [],
        `processes holding ${secret.what}: ${holders.map((p) => `${p.comm}(${p.pid})`).join(', ')}`,
      );
    }
    for (const secret of privateKeys(env.INNISFREE_STATE_DIR!, env.INNISFREE_LOCAL_DIR!, name)) {
      const holders = processesHolding(secret.needle);
      assert.equal(
        holders,
        [],
        `processes holding ${secret.what}: ${holders.map((p) => `${p.comm}(${p.pid})`).join(', ')}`,
      );
    }
    assert.is(await up.stop('SIGTERM'), 0, up.stderr());
  } finally {
    await up.stop('SIGKILL');
    await provider.destroyEdge(name, { emit: () => {}, signal: new AbortController().signal }).catch(() => {});
    dir.remove();
  }
});

/** One execve strace saw: the pid, the program, and the whole line (argv and environment, strace-escaped). */
interface Exec {
  pid: number;
  program: string;
  line: string;
}

function execsOf(log: string): Exec[] {
  return log
    .split('\n')
    .map(
      (line) =>
        /^(\d+)\s+execve\("((?:[^"\\]|\\.)*)"/.exec(line) && {
          line,
          match: /^(\d+)\s+execve\("((?:[^"\\]|\\.)*)"/.exec(line)!,
        },
    )
    .filter((entry): entry is { line: string; match: RegExpExecArray } => Boolean(entry))
    .map(({ line, match }) => ({ pid: Number(match[1]), program: match[2]!, line }));
}

S(
  'every process up starts, for its whole life (strace -f, execve with argv and environment): no token, no private key',
  async () => {
    if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
    if (!existsSync('/usr/bin/strace'))
      return console.log('  SKIPPED: strace is not installed (.ci/setup installs it)');
    const dir = makeTempDir('innisfree-secrets-trace-');
    const env = envFor(dir.path);
    const name = randomTunnelName();
    const { token, accessToken, secrets } = tokens();
    const provider = new LocalProvider({ env, runtimeDir: env.INNISFREE_LOCAL_DIR });
    const log = join(dir.path, 'execve.log');
    const child = spawn(
      '/usr/bin/strace',
      [
        '-f',
        '-qq',
        '-v',
        '-s',
        '65536',
        '-e',
        'trace=execve',
        '-e',
        'signal=none',
        '-o',
        log,
        process.execPath,
        cliPath,
        'up',
        '--json',
        '--provider',
        'local',
        '--name',
        name,
        '--ports',
        '18081/tcp',
      ],
      {
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          ...env,
          DIGITALOCEAN_TOKEN: token,
          DIGITALOCEAN_ACCESS_TOKEN: accessToken,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    /** up itself: strace's only child. */
    const upPid = (): number | undefined => {
      try {
        const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8')
          .trim()
          .split(/\s+/)
          .filter(Boolean)
          .map(Number);
        return children[0];
      } catch {
        return undefined;
      }
    };
    try {
      const deadline = Date.now() + 180_000;
      while (!stdout.split('\n').some((line) => line.includes('"type":"ready"'))) {
        if (child.exitCode !== null) assert.unreachable(`up exited before it was ready: ${stderr}`);
        if (Date.now() > deadline) assert.unreachable(`up was not ready within 180 s under strace: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      // Read while they exist: without --keep the edge (and its key) goes when up stops.
      const keys = privateKeys(env.INNISFREE_STATE_DIR!, env.INNISFREE_LOCAL_DIR!, name);
      const pid = upPid();
      assert.ok(pid, 'found up under strace');
      process.kill(pid!, 'SIGTERM');
      const code = await exited;
      assert.is(code, 0, `up (and strace) ended cleanly: ${stderr}`);

      const execs = execsOf(readFileSync(log, 'utf8'));
      // up's own exec carries the token the user gave it; every later one is a child's.
      const [own, ...children] = execs;
      assert.ok(
        own && own.program === process.execPath && own.line.includes(token),
        'the first exec is up itself, with the token',
      );
      const programs = new Set(children.map((e) => e.program.split('/').pop()));
      for (const expected of ['ip', 'sshd', 'wg', 'wireguard-go', 'nix-instantiate', 'nginx']) {
        assert.ok(programs.has(expected), `strace saw ${expected} start (saw ${[...programs].join(', ')})`);
      }
      for (const secret of [...secrets, ...keys]) {
        const leaks = children.filter((e) => e.line.includes(secret.needle));
        assert.equal(
          leaks.map((e) => `${e.program}(${e.pid})`),
          [],
          `${secret.what} in the argv or environment of ${leaks.length} exec(s)`,
        );
      }
      // And up's own exec holds no private key either (they are read from files, never passed in).
      for (const secret of keys) assert.not.ok(own!.line.includes(secret.needle), `${secret.what} in up's own exec`);
    } finally {
      const pid = upPid();
      if (pid) process.kill(pid, 'SIGKILL');
      child.kill('SIGKILL');
      await exited;
      await provider.destroyEdge(name, { emit: () => {}, signal: new AbortController().signal }).catch(() => {});
      dir.remove();
    }
  },
);

S.run();
