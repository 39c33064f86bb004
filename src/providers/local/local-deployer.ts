// The local provider's Deployer: renders edge.json with the same Nix renderer the NixOS module uses, ships it over
// SSH (pinned host key) to the local edge's agent, which applies it in the edge namespace as a new generation;
// then confirms over a new SSH connection within the confirmation timeout, as deploy-rs's magic rollback does,
// and reads the edge's own status to check the config hash. NixOS activation itself is not reproduced.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeployRequest, DeployResult, Deployer } from '../../edge/deployer-port.js';
import { assertEdgeServes, plannedEdgePorts, readEdgeStatus } from '../../edge/edge-status.js';
import type { SshRunner } from '../../edge/ssh.js';
import type { Env, Exec } from '../../lib/context.js';
import { DeployError, RolledBackError } from '../../lib/errors.js';
import { AGENT_COMMAND } from './edge-runtime-files.js';
import { type RenderedEdge, renderEdge } from './rendered-edge.js';

export const FAIL_ACTIVATION_ENV = 'INNISFREE_LOCAL_FAIL_ACTIVATION';
/** Tests of a running up (reload): activations fail while the file this names exists (the env is read at start). */
export const FAIL_ACTIVATION_FILE_ENV = 'INNISFREE_LOCAL_FAIL_ACTIVATION_FILE';

export interface LocalDeployerOptions {
  exec: Exec;
  env: Env;
  ssh: SshRunner;
  /** Seconds the edge waits for confirmation before rolling back (default 30, deploy-rs's default). */
  confirmTimeoutSeconds?: number;
  /** Replaces nix-instantiate (tests of everything around the renderer). */
  render?: (edgeJsonPath: string) => Promise<RenderedEdge>;
}

export class LocalDeployer implements Deployer {
  constructor(private readonly options: LocalDeployerOptions) {}

  async apply(request: DeployRequest): Promise<DeployResult> {
    const { emit, signal, target, tunnel } = request;
    emit({
      type: 'log',
      level: 'info',
      message:
        'local provider: NixOS activation is the one thing it does not reproduce; the Nix-rendered ' +
        'nginx/nftables, firewall and WireGuard settings are applied directly in the edge namespace',
    });
    const edgeJsonPath = join(request.edgeDir, 'edge.json');
    const edgeJson = await readFile(edgeJsonPath, 'utf8');
    const rendered = await (this.options.render ?? ((path: string) => renderEdge(this.options.exec, path)))(
      edgeJsonPath,
    );
    const timeout = this.options.confirmTimeoutSeconds ?? 30;
    const failFile = this.options.env[FAIL_ACTIVATION_FILE_ENV];
    const fail =
      this.options.env[FAIL_ACTIVATION_ENV] === '1' ||
      (failFile !== undefined && failFile !== '' && existsSync(failFile));
    const onStderrLine = (line: string): void => {
      if (line.trim() !== '') emit({ type: 'log', level: 'info', message: line, source: 'local-edge' });
    };

    const activation = await this.options.ssh(
      target,
      `${AGENT_COMMAND} activate --confirm-timeout ${timeout}${fail ? ' --fail' : ''}`,
      {
        input: JSON.stringify({ edgeJson, rendered, configHash: request.configHash }),
        timeoutMs: 120_000,
        signal,
        onStderrLine,
      },
    );
    const reply = parseReply(activation.stdout);
    if (activation.exitCode === 3) {
      throw new RolledBackError(
        `the local edge of "${tunnel}" rolled back: ${reply.error ?? 'activation failed'}; the previous ` +
          `configuration is still serving`,
        {
          hint: fail
            ? `unset ${FAIL_ACTIVATION_ENV} (or remove the file ${FAIL_ACTIVATION_FILE_ENV} names) to let ` +
              `activations succeed`
            : `fix the cause and run innisfree deploy ${tunnel} again`,
        },
      );
    }
    if (activation.exitCode !== 0 || typeof reply.generation !== 'number') {
      const detail = reply.error ?? (activation.stderr.trim().split('\n').pop() || `exit ${activation.exitCode}`);
      throw new DeployError(`activating the local edge of "${tunnel}" failed: ${detail}`, {
        hint:
          activation.exitCode === 127
            ? 'the local edge is from another innisfree build; run innisfree down and up again'
            : `look at the edge with innisfree ssh ${tunnel}`,
      });
    }

    // Like deploy-rs: the confirmation travels over a new connection, proving the edge is still reachable.
    const confirmation = await this.options
      .ssh(target, `${AGENT_COMMAND} confirm --generation ${reply.generation}`, {
        timeoutMs: timeout * 1000,
        signal,
        onStderrLine,
      })
      .catch((error: Error) => ({ exitCode: -1, stdout: '', stderr: error.message }));
    if (confirmation.exitCode !== 0) {
      throw new RolledBackError(
        `could not confirm the deployment to the local edge of "${tunnel}" (` +
          `${parseReply(confirmation.stdout).error ?? confirmation.stderr.trim()}); the edge rolls back within ` +
          `${timeout} s and the previous configuration is still serving`,
        { hint: `run innisfree deploy ${tunnel} again` },
      );
    }

    const status = await readEdgeStatus(this.options.ssh, target, { signal });
    if (status.configHash !== request.configHash) {
      throw new DeployError(
        `the local edge of "${tunnel}" reports config ${status.configHash?.slice(0, 12) ?? 'none'} instead of ` +
          `${request.configHash.slice(0, 12)}`,
        {
          hint: `run innisfree deploy ${tunnel} again`,
        },
      );
    }
    assertEdgeServes(status, { ports: await plannedEdgePorts(request.edgeDir) }, tunnel);
    return { configHash: status.configHash };
  }
}

function parseReply(stdout: string): { generation?: number; error?: string } {
  const line = stdout.trim().split('\n').pop();
  if (!line) return {};
  try {
    return JSON.parse(line) as { generation?: number; error?: string };
  } catch {
    return {};
  }
}
