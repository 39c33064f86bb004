// The edge's own report (config hash deployed, WireGuard and forwarder state), read over SSH. Real edges get the
// command from nixosModules.innisfree; the local provider's edge has the same command on its PATH.
import { DeployError } from '../lib/errors.js';
import { EdgeStatus } from '../spec/edge-config.js';
import type { SshTarget } from './deployer.js';
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
    throw new DeployError(`${EDGE_STATUS_COMMAND} on ${where} printed an unexpected status (${issue?.path.join('.') || 'value'}: ${issue?.message})`, {
      hint: 'the edge may run a different innisfree version; deploy again with innisfree deploy NAME',
    });
  }
  return parsed.data;
}

export async function readEdgeStatus(ssh: SshRunner, target: SshTarget, options: ReadEdgeStatusOptions = {}): Promise<EdgeStatus> {
  const where = `${target.host}:${target.port}`;
  const result = await ssh(target, EDGE_STATUS_COMMAND, { timeoutMs: options.timeoutMs ?? 30_000, ...(options.signal ? { signal: options.signal } : {}) });
  if (result.exitCode !== 0) {
    const detail = (result.stderr || result.stdout).trim().split('\n').pop() ?? '';
    throw new DeployError(`${EDGE_STATUS_COMMAND} failed on ${where} (exit ${result.exitCode})${detail ? `: ${detail}` : ''}`, {
      hint: result.exitCode === 127 ? 'the edge does not run the innisfree module yet; deploy it with innisfree deploy NAME' : 'look at the edge with innisfree ssh NAME',
    });
  }
  return parseEdgeStatus(result.stdout, where);
}
