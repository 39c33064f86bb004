// The edge's own report (config hash deployed, WireGuard and forwarder state), read over SSH. Real edges get the
// command from nixosModules.innisfree; the local provider's edge has the same command on its PATH.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeployError } from '../lib/errors.js';
import { EdgeConfig, EdgeStatus } from '../spec/edge-config.js';
import type { SshTarget } from './deployer-port.js';
import type { SshRunner } from './ssh.js';

export const EDGE_STATUS_COMMAND = 'innisfree-edge-status';

export interface ReadEdgeStatusOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export function parseEdgeStatus(stdout: string, where: string): EdgeStatus {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    throw new DeployError(`${EDGE_STATUS_COMMAND} on ${where} did not print JSON`, {
      hint: 'the edge may run an older innisfree module; deploy again with innisfree deploy NAME',
    });
  }
  const parsed = EdgeStatus.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DeployError(
      `${EDGE_STATUS_COMMAND} on ${where} printed an unexpected status (${issue?.path.join('.') || 'value'}: ` +
        `${issue?.message})`,
      {
        hint: 'the edge may run a different innisfree version; deploy again with innisfree deploy NAME',
      },
    );
  }
  return parsed.data;
}

export async function readEdgeStatus(
  ssh: SshRunner,
  target: SshTarget,
  options: ReadEdgeStatusOptions = {},
): Promise<EdgeStatus> {
  const where = `${target.host}:${target.port}`;
  const result = await ssh(target, EDGE_STATUS_COMMAND, {
    timeoutMs: options.timeoutMs ?? 30_000,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (result.exitCode !== 0) {
    const detail = (result.stderr || result.stdout).trim().split('\n').pop() ?? '';
    throw new DeployError(
      `${EDGE_STATUS_COMMAND} failed on ${where} (exit ${result.exitCode})${detail ? `: ${detail}` : ''}`,
      {
        hint:
          result.exitCode === 127
            ? 'the edge does not run the innisfree module yet; deploy it with innisfree deploy NAME'
            : 'look at the edge with innisfree ssh NAME',
      },
    );
  }
  return parseEdgeStatus(result.stdout, where);
}

/** Planned public ports the edge's forwarder has not bound, as "443/tcp"; empty when it cannot tell (nftables). */
export function portsNotListening(status: EdgeStatus, ports: EdgeConfig['ports']): string[] {
  const listening = status.forwarder.listening;
  if (!listening) return [];
  const bound = new Set(listening.map((l) => `${l.port}/${l.protocol}`));
  return ports.map((p) => `${p.publicPort}/${p.protocol}`).filter((p) => !bound.has(p));
}

/** After a deploy: the edge serves the new config only when every planned public port is bound. */
export function assertEdgeServes(status: EdgeStatus, edge: Pick<EdgeConfig, 'ports'>, tunnel: string): void {
  const missing = portsNotListening(status, edge.ports);
  if (missing.length === 0) return;
  const shown =
    missing.length > 5 ? `${missing.slice(0, 5).join(', ')} and ${missing.length - 5} more` : missing.join(', ');
  throw new DeployError(`the edge of "${tunnel}" took the new config, but nginx has not bound ${shown}`, {
    hint:
      `another program on the edge may hold the port, or nginx could not reload; look with innisfree ssh ` +
      `${tunnel} -- journalctl -u nginx`,
  });
}

/** The public ports a deploy plans: the ports of edge.json in the tunnel's rendered edge directory. */
export async function plannedEdgePorts(edgeDir: string): Promise<EdgeConfig['ports']> {
  const parsed = EdgeConfig.shape.ports.safeParse(
    (JSON.parse(await readFile(join(edgeDir, 'edge.json'), 'utf8')) as { ports?: unknown }).ports,
  );
  if (!parsed.success)
    throw new DeployError(`${join(edgeDir, 'edge.json')} has no valid port list`, {
      hint: 'this is a bug in innisfree; run up again',
    });
  return parsed.data;
}
