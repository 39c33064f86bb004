// The deploy-rs adapter: argv, environment, log classification over realistic logs, and apply() with fakes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DeployRsDeployer, EDGE_SYSTEM, buildDeployArgs, deployEnv, nixSystemOf } from '../../src/edge/deploy-rs.js';
import { classifyDeployOutcome, deployLogEvent, parseDeployLogLine } from '../../src/edge/deploy-rs-log.js';
import type { DeployRequest } from '../../src/edge/deployer-port.js';
import type { SshRunner } from '../../src/edge/ssh.js';
import { DeployError, EnvironmentError, RolledBackError, UsageError } from '../../src/lib/errors.js';
import type { ProgressEvent } from '../../src/lib/events.js';
import type { StreamExec } from '../../src/lib/stream-exec.js';
import type { EdgeStatus } from '../../src/spec/edge-config.js';
import { fixturesDir } from '../helpers/fixtures.js';

const S = suite('deploy-rs');
const logDir = join(fixturesDir, 'deploy-rs');
const fixture = (name: string) => ({
  lines: readFileSync(join(logDir, `${name}.log`), 'utf8').split('\n'),
  exitCode: Number(readFileSync(join(logDir, `${name}.exit`), 'utf8').trim()),
});

const target = {
  host: '203.0.113.10',
  port: 2222,
  user: 'root',
  privateKeyPath: '/var/lib/innisfree/web/ssh/id_ed25519',
  knownHostsPath: '/var/lib/innisfree/web/ssh/known_hosts',
};
const HASH = 'a'.repeat(64);

S('argv: per-tunnel flake node edge.system, hostname, root, pinned ssh opts, magic rollback, confirm timeout', () => {
  const args = buildDeployArgs({
    edgeDir: '/var/lib/innisfree/web/edge',
    target,
    confirmTimeoutSeconds: 60,
    activationTimeoutSeconds: 240,
  });
  assert.equal(args, [
    'path:/var/lib/innisfree/web/edge#edge.system',
    '--hostname',
    '203.0.113.10',
    '--ssh-user',
    'root',
    '--ssh-opts',
    '-p 2222 -i /var/lib/innisfree/web/ssh/id_ed25519 -o IdentitiesOnly=yes -o ' +
      'UserKnownHostsFile=/var/lib/innisfree/web/ssh/known_hosts -o GlobalKnownHostsFile=/dev/null -o ' +
      'StrictHostKeyChecking=yes',
    '--magic-rollback',
    'true',
    '--auto-rollback',
    'true',
    '--confirm-timeout',
    '60',
    '--activation-timeout',
    '240',
    '--skip-checks',
  ]);
});

S('paths with whitespace are refused (deploy-rs splits --ssh-opts on spaces)', () => {
  for (const bad of [{ privateKeyPath: '/home/me/My State/id' }, { knownHostsPath: '/tmp/a\tb' }]) {
    try {
      buildDeployArgs({
        edgeDir: '/e',
        target: { ...target, ...bad },
        confirmTimeoutSeconds: 30,
        activationTimeoutSeconds: 240,
      });
      assert.unreachable('must refuse');
    } catch (error) {
      assert.instance(error, UsageError);
      assert.match((error as UsageError).hint ?? '', /INNISFREE_STATE_DIR/);
    }
  }
});

S('a home host of another system than the edge builds on the edge, and says so', async () => {
  assert.is(nixSystemOf('linux', 'x64'), EDGE_SYSTEM);
  assert.is(nixSystemOf('linux', 'arm64'), 'aarch64-linux');
  for (const [hostSystem, remote] of [
    ['aarch64-linux', true],
    ['x86_64-linux', false],
  ] as const) {
    const h = harness('success', HASH, { hostSystem });
    await h.deployer.apply(h.request);
    assert.is(h.calls[0]!.args.includes('--remote-build'), remote, hostSystem);
    const said = h.events.some((e) => e.type === 'log' && /builds its own x86_64-linux system/.test(e.message));
    assert.is(said, remote, `progress says so on ${hostSystem}`);
  }
});

S("flakes are enabled through NIX_CONFIG, keeping the user's own settings", () => {
  assert.equal(deployEnv({}), { NIX_CONFIG: 'extra-experimental-features = nix-command flakes' });
  assert.equal(deployEnv({ NIX_CONFIG: 'substituters = https://example.invalid' }), {
    NIX_CONFIG: 'substituters = https://example.invalid\nextra-experimental-features = nix-command flakes',
  });
});

S("the user's own experimental features survive, as nix itself reads NIX_CONFIG", () => {
  const { NIX_CONFIG } = deployEnv({ NIX_CONFIG: 'experimental-features = ca-derivations' });
  const shown = spawnSync('nix', ['show-config'], { env: { PATH: process.env.PATH, NIX_CONFIG }, encoding: 'utf8' });
  if (shown.error) return console.log('  SKIPPED: nix show-config: nix is not installed');
  const line = shown.stdout.split('\n').find((l) => l.startsWith('experimental-features ='));
  assert.ok(line, shown.stderr);
  assert.equal(line!.split('=')[1]!.trim().split(/\s+/).sort(), ['ca-derivations', 'flakes', 'nix-command']);
});

S('log lines parse with colours stripped; levels map to events', () => {
  assert.equal(parseDeployLogLine('🚀 ❌ [deploy] [\x1b[1;31mERROR\x1b[0m] boom'), {
    component: 'deploy',
    level: 'ERROR',
    message: 'boom',
  });
  assert.equal(parseDeployLogLine('⭐ ⚠️ [activate] [WARN] De-activating due to error'), {
    component: 'activate',
    level: 'WARN',
    message: 'De-activating due to error',
  });
  assert.is(parseDeployLogLine('copying path …'), undefined);
  assert.equal(deployLogEvent('👀 ℹ️ [wait] [\x1b[32mINFO\x1b[0m] Found canary file, done waiting!'), {
    type: 'log',
    level: 'info',
    message: '[wait] Found canary file, done waiting!',
    source: 'deploy-rs',
  });
  assert.is(deployLogEvent("error: builder for '/nix/store/x.drv' failed")?.level, 'warn');
  assert.is(deployLogEvent("copying path '/nix/store/x' to 'ssh://root@h'...")?.level, 'debug');
  assert.is(deployLogEvent('   '), undefined);
});

S('classification of realistic logs', () => {
  const cases: Array<[string, string, RegExp?]> = [
    ['success', 'success'],
    [
      'rolled-back-confirm',
      'rolledBack',
      new RegExp(
        /^Error confirming deployment: Confirming activation over SSH resulted in a bad exit code /.source +
          /\(the server should roll back\): Some\(255\)$/.source,
      ),
    ],
    [
      'rolled-back-timeout',
      'rolledBack',
      /^Failed to get activation confirmation: Error waiting for confirmation event: Timeout elapsed for confirmation$/,
    ],
    ['activation-failed', 'rolledBack', /^The activation script resulted in a bad exit code: Some\(4\)$/],
    // The pinned deploy-rs names the node twice on a build failure; the cause is nix's own error line.
    [
      'build-failed',
      'failed',
      /^error: builder for '\/nix\/store\/[a-z0-9]+-nginx\.conf\.drv' failed with exit code 1;$/,
    ],
    // --auto-rollback prints "rolled back" even when de-activating failed: that is no rollback.
    [
      'deactivation-failed',
      'rollbackFailed',
      /^Command for re-activating the last generation resulted in a bad exit code: Some\(4\)$/,
    ],
    ['failed-no-rollback', 'failed', /^Activating over SSH resulted in a bad exit code: Some\(1\)$/],
  ];
  for (const [name, kind, reason] of cases) {
    const { lines, exitCode } = fixture(name);
    const outcome = classifyDeployOutcome(lines, exitCode);
    assert.is(outcome.kind, kind, name);
    if (reason && outcome.kind !== 'success') assert.match(outcome.reason, reason, name);
  }
  assert.equal(classifyDeployOutcome([], 1), { kind: 'failed', reason: 'deploy exited with 1 and printed nothing' });
  assert.equal(classifyDeployOutcome(['error: flake has no attribute deploy'], 1), {
    kind: 'failed',
    reason: 'error: flake has no attribute deploy',
  });
});

const LISTENING = [
  { protocol: 'tcp', port: 443 },
  { protocol: 'udp', port: 19132 },
] as const;

function statusWith(
  configHash: string | null,
  listening: EdgeStatus['forwarder']['listening'] = [...LISTENING],
): EdgeStatus {
  return {
    name: 'web',
    configHash,
    wireguard: { interface: 'ise-web', publicKey: null, up: true, peers: [] },
    forwarder: { kind: 'nginx', active: true, listening },
  };
}

// The rendered edge directory a deploy reads its planned ports from.
const edgeDir = mkdtempSync(join(tmpdir(), 'innisfree-deploy-rs-'));
writeFileSync(
  join(edgeDir, 'edge.json'),
  JSON.stringify({
    ports: LISTENING.map((l) => ({
      protocol: l.protocol,
      publicPort: l.port,
      localPort: l.port,
      proxyProtocol: false,
    })),
  }),
);
S.after(() => rmSync(edgeDir, { recursive: true, force: true }));

function harness(
  logName: string | 'enoent',
  reportedHash: string | null = HASH,
  options: { hostSystem?: string; listening?: EdgeStatus['forwarder']['listening'] } = {},
) {
  const calls: Array<{
    file: string;
    args: readonly string[];
    env?: Record<string, string | undefined>;
    cwd?: string;
  }> = [];
  const sshCommands: string[] = [];
  const events: ProgressEvent[] = [];
  const exec: StreamExec = async (file, args, options = {}) => {
    calls.push({ file, args, env: options.env, cwd: options.cwd });
    if (logName === 'enoent') throw Object.assign(new Error('spawn deploy ENOENT'), { code: 'ENOENT' });
    const { lines, exitCode } = fixture(logName);
    for (const line of lines) options.onStderrLine?.(line);
    return { exitCode };
  };
  const ssh: SshRunner = async (_t, command) => {
    sshCommands.push(command);
    return {
      stdout: JSON.stringify(statusWith(reportedHash, 'listening' in options ? options.listening : [...LISTENING])),
      stderr: '',
      exitCode: 0,
    };
  };
  const deployer = new DeployRsDeployer({ exec, ssh, env: {}, hostSystem: options.hostSystem ?? 'x86_64-linux' });
  const request: DeployRequest = {
    tunnel: 'web',
    edgeDir,
    configHash: HASH,
    target,
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
  };
  return { deployer, request, calls, sshCommands, events };
}

S('apply: success streams ANSI-free events and confirms the hash from the edge status', async () => {
  const h = harness('success');
  const result = await h.deployer.apply(h.request);
  assert.equal(result, { configHash: HASH });
  assert.is(h.calls[0]!.file, 'deploy');
  assert.is(h.calls[0]!.cwd, edgeDir);
  assert.is(h.calls[0]!.env?.NIX_CONFIG, 'extra-experimental-features = nix-command flakes');
  assert.equal(h.sshCommands, ['innisfree-edge-status']);
  const logs = h.events.filter((e) => e.type === 'log');
  assert.ok(logs.length > 10);
  assert.ok(logs.every((e) => e.type === 'log' && e.source === 'deploy-rs' && !e.message.includes('\x1b')));
  assert.ok(logs.some((e) => e.type === 'log' && e.message === '[deploy] Deployment confirmed.'));
});

S('apply: a rolled-back deploy is RolledBackError (exit 6) saying the previous config still serves', async () => {
  for (const name of ['rolled-back-confirm', 'rolled-back-timeout', 'activation-failed']) {
    const h = harness(name);
    try {
      await h.deployer.apply(h.request);
      assert.unreachable(name);
    } catch (error) {
      assert.instance(error, RolledBackError, name);
      assert.is((error as RolledBackError).exitCode, 6);
      assert.match((error as Error).message, /the previous configuration is still serving$/);
    }
    assert.equal(h.sshCommands, [], 'no status read after a failed deploy');
  }
});

S('apply: other failures are DeployError (exit 5) with the specific reason', async () => {
  const h = harness('build-failed');
  try {
    await h.deployer.apply(h.request);
    assert.unreachable();
  } catch (error) {
    assert.instance(error, DeployError);
    assert.is((error as DeployError).exitCode, 5);
    assert.match((error as Error).message, /error: builder for .*nginx\.conf\.drv' failed/);
    assert.not.match((error as Error).message, /on node edge: edge/);
  }
});

S('apply: a rollback that itself failed is a DeployError, never "still serving"', async () => {
  const h = harness('deactivation-failed');
  try {
    await h.deployer.apply(h.request);
    assert.unreachable();
  } catch (error) {
    assert.instance(error, DeployError);
    assert.not.instance(error, RolledBackError);
    assert.is((error as DeployError).exitCode, 5);
    assert.match(
      (error as Error).message,
      /rolling back failed too .*re-activating the last generation.*may serve neither configuration/,
    );
    assert.not.match((error as Error).message, /still serving/);
  }
});

S('apply: a planned port nginx has not bound (a reload that failed) is a DeployError, not a success', async () => {
  const h = harness('success', HASH, { listening: [{ protocol: 'tcp', port: 443 }] });
  try {
    await h.deployer.apply(h.request);
    assert.unreachable();
  } catch (error) {
    assert.instance(error, DeployError);
    assert.match((error as Error).message, /nginx has not bound 19132\/udp$/);
  }
  // Edges of older versions do not report listeners, and nftables has none: the hash alone decides.
  for (const listening of [undefined, null]) await harness('success', HASH, { listening }).deployer.apply(h.request);
});

S('apply: success whose edge reports another hash is a DeployError', async () => {
  const h = harness('success', 'b'.repeat(64));
  try {
    await h.deployer.apply(h.request);
    assert.unreachable();
  } catch (error) {
    assert.instance(error, DeployError);
    assert.match((error as Error).message, /reports config bbbbbbbbbbbb instead of aaaaaaaaaaaa/);
  }
});

S('apply: a missing deploy binary is an EnvironmentError', async () => {
  const h = harness('enoent');
  try {
    await h.deployer.apply(h.request);
    assert.unreachable();
  } catch (error) {
    assert.instance(error, EnvironmentError);
    assert.match((error as Error).message, /deploy \(deploy-rs\) is not installed/);
  }
});

S.run();
