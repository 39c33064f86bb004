// The deploy-rs adapter of the Deployer port: `deploy` on the tunnel's per-tunnel flake (node "edge", profile
// "system") with magic rollback, the tunnel's key and pinned known_hosts; its log streamed as events; the outcome
// classified from the log (deploy-rs exits 1 for everything); then the edge's own status confirms the config hash.
import type { Env } from '../lib/context.js';
import { DeployError, EnvironmentError, RolledBackError } from '../lib/errors.js';
import { stripAnsi } from '../lib/lines.js';
import type { StreamExec } from '../lib/stream-exec.js';
import { classifyDeployOutcome, deployLogEvent } from './deploy-rs-log.js';
import type { DeployRequest, DeployResult, Deployer, SshTarget } from './deployer-port.js';
import { assertEdgeServes, plannedEdgePorts, readEdgeStatus } from './edge-status.js';
import { type SshRunner, pinnedSshClientOptions, refuseWhitespaceInSshPath } from './ssh.js';

export const DEPLOY_NODE = 'edge';
export const DEPLOY_PROFILE = 'system';
/** What every edge runs (DigitalOcean droplets; nix/flake-lib.nix builds for it). */
export const EDGE_SYSTEM = 'x86_64-linux';

/** The Nix system name of a Node platform/arch pair (process.platform, process.arch). */
export function nixSystemOf(platform: string, arch: string): string {
  const cpu =
    ({ x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7l', riscv64: 'riscv64' } as Record<string, string>)[
      arch
    ] ?? arch;
  return `${cpu}-${platform}`;
}

// `extra-`: added to the user's experimental features; a plain `experimental-features` line would replace them.
export const FLAKES_CONFIG = 'extra-experimental-features = nix-command flakes';

export interface DeployArgsInput {
  edgeDir: string;
  target: SshTarget;
  /** Seconds the edge waits for the confirmation over a new SSH connection before it rolls back. */
  confirmTimeoutSeconds: number;
  activationTimeoutSeconds: number;
  /** Build the edge's system on the edge (`--remote-build`): this host cannot build it. */
  remoteBuild?: boolean;
}

/** The ssh options deploy-rs gives every ssh (and nix copy) it runs: the tunnel's key and the pinned host key. */
export function deploySshOpts(target: SshTarget): string {
  // deploy-rs splits --ssh-opts on single spaces with no quoting: a path with whitespace cannot be passed.
  refuseWhitespaceInSshPath('SSH key', target.privateKeyPath, 'deploy-rs cannot pass to ssh');
  refuseWhitespaceInSshPath('known_hosts', target.knownHostsPath, 'deploy-rs cannot pass to ssh');
  return [
    '-p',
    String(target.port),
    // Whitespace is refused above, so nothing in here is quoted (deploy-rs would pass the quotes on literally).
    ...pinnedSshClientOptions(target),
  ].join(' ');
}

export function buildDeployArgs(input: DeployArgsInput): string[] {
  return [
    // path: keeps Nix from treating the state directory as part of an enclosing git repository.
    `path:${input.edgeDir}#${DEPLOY_NODE}.${DEPLOY_PROFILE}`,
    '--hostname',
    input.target.host,
    '--ssh-user',
    input.target.user,
    '--ssh-opts',
    deploySshOpts(input.target),
    '--magic-rollback',
    'true',
    '--auto-rollback',
    'true',
    '--confirm-timeout',
    String(input.confirmTimeoutSeconds),
    '--activation-timeout',
    String(input.activationTimeoutSeconds),
    // The innisfree flake carries deployChecks; re-running `nix flake check` (which builds) on every deploy only
    // costs time.
    '--skip-checks',
    ...(input.remoteBuild ? ['--remote-build'] : []),
  ];
}

/** The environment for deploy-rs: flakes enabled for every nix it runs, on top of the user's NIX_CONFIG. */
export function deployEnv(env: Env): Record<string, string> {
  const existing = env.NIX_CONFIG?.trim();
  return { NIX_CONFIG: existing ? `${existing}\n${FLAKES_CONFIG}` : FLAKES_CONFIG };
}

export interface DeployRsOptions {
  exec: StreamExec;
  env: Env;
  ssh: SshRunner;
  /** Default 60: a slow uplink must still manage a fresh SSH connection after activation. */
  confirmTimeoutSeconds?: number;
  /** Default 240 (deploy-rs's own default). */
  activationTimeoutSeconds?: number;
  /** The deploy-rs program; default "deploy" from PATH (the innisfree Nix package puts it there). */
  command?: string;
  /** This host's Nix system; default from process.platform/arch. Another system than the edge's builds remotely. */
  hostSystem?: string;
}

export class DeployRsDeployer implements Deployer {
  constructor(private readonly options: DeployRsOptions) {}

  async apply(request: DeployRequest): Promise<DeployResult> {
    const { emit, signal, target } = request;
    // deploy-rs builds locally unless told otherwise (src/push.rs): an aarch64 home host cannot build the
    // x86_64-linux edge, so the edge builds its own system from the copied derivations.
    const hostSystem = this.options.hostSystem ?? nixSystemOf(process.platform, process.arch);
    const remoteBuild = hostSystem !== EDGE_SYSTEM;
    if (remoteBuild) {
      emit({
        type: 'log',
        level: 'info',
        message: `this host is ${hostSystem}: the edge builds its own ${EDGE_SYSTEM} system (deploy-rs --remote-build)`,
      });
    }
    const args = buildDeployArgs({
      edgeDir: request.edgeDir,
      target,
      confirmTimeoutSeconds: this.options.confirmTimeoutSeconds ?? 60,
      activationTimeoutSeconds: this.options.activationTimeoutSeconds ?? 240,
      remoteBuild,
    });
    const command = this.options.command ?? 'deploy';
    const lines: string[] = [];
    const onLine = (raw: string): void => {
      lines.push(stripAnsi(raw));
      const event = deployLogEvent(raw);
      if (event) emit(event);
    };
    let exitCode: number;
    try {
      ({ exitCode } = await this.options.exec(command, args, {
        cwd: request.edgeDir,
        env: deployEnv(this.options.env),
        signal,
        onStdoutLine: onLine,
        onStderrLine: onLine,
      }));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new EnvironmentError(`${command} (deploy-rs) is not installed`, {
          hint:
            'run innisfree from its Nix package (nix run <innisfree flake>#innisfree), which brings deploy-rs, or ' +
            'install deploy-rs',
        });
      }
      throw error;
    }
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new DeployError('deploy interrupted');

    const outcome = classifyDeployOutcome(lines, exitCode);
    if (outcome.kind === 'rolledBack') {
      throw new RolledBackError(
        `deploy-rs rolled the edge of "${request.tunnel}" back: ${outcome.reason}; the previous configuration ` +
          `is still serving`,
        {
          hint:
            `fix the cause and run innisfree deploy ${request.tunnel} again; innisfree ssh ${request.tunnel} -- ` +
            `journalctl -b shows the edge's side`,
        },
      );
    }
    if (outcome.kind === 'rollbackFailed') {
      throw new DeployError(
        `the new configuration failed on the edge of "${request.tunnel}" and rolling back failed too (` +
          `${outcome.reason}): the edge may serve neither configuration`,
        {
          hint:
            `look at the edge with innisfree ssh ${request.tunnel} -- systemctl --failed, then run innisfree ` +
            `deploy ${request.tunnel} again`,
        },
      );
    }
    if (outcome.kind === 'failed') {
      throw new DeployError(`deploy-rs failed for "${request.tunnel}" (exit ${exitCode}): ${outcome.reason}`, {
        hint: 'run again with --verbose to see the full deploy-rs and nix log',
      });
    }

    const status = await readEdgeStatus(this.options.ssh, target, { signal });
    if (status.configHash !== request.configHash) {
      throw new DeployError(
        `deploy-rs reported success, but the edge of "${request.tunnel}" reports config ` +
          `${status.configHash?.slice(0, 12) ?? 'none'} instead of ${request.configHash.slice(0, 12)}`,
        {
          hint:
            `run innisfree deploy ${request.tunnel} again; if it persists, look at the edge with innisfree ssh ` +
            `${request.tunnel}`,
        },
      );
    }
    assertEdgeServes(status, { ports: await plannedEdgePorts(request.edgeDir) }, request.tunnel);
    return { configHash: status.configHash };
  }
}
