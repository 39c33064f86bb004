// One SSH session to an edge (pinned host key) with the questions `up` asks it: its own status, whether it runs
// NixOS yet, and whether a TCP port answers from the edge's side (the end-to-end probe through the tunnel).
import { isIP } from 'node:net';
import { DeployError } from '../lib/errors.js';
import type { Emit } from '../lib/events.js';
import type { EdgeStatus } from '../spec/edge-config.js';
import type { SshTarget } from './deployer.js';
import { EDGE_STATUS_COMMAND, parseEdgeStatus } from './edge-status.js';
import { type SshConnection, connectSsh } from './ssh.js';

export interface EdgeSession {
  readonly target: SshTarget;
  /** The edge's `innisfree-edge-status`, or undefined when it has none yet (not NixOS yet, or never deployed). */
  status(): Promise<EdgeStatus | undefined>;
  /** Whether the edge runs NixOS (false on the stock Debian that nixos-anywhere replaces). */
  runsNixos(): Promise<boolean>;
  /** Whether host:port accepts a TCP connection made from the edge, within timeoutMs. */
  probeTcp(host: string, port: number, timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

/** bash's /dev/tcp, so the probe needs nothing beyond what NixOS and Debian both have. */
export function probeCommand(host: string, port: number, timeoutMs: number): string {
  if (isIP(host) === 0) throw new Error(`probeTcp takes an IP address, not "${host}"`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`probeTcp: bad port ${port}`);
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  return `timeout ${seconds} bash -c 'exec 3<>/dev/tcp/${host}/${port}'`;
}

export async function openEdgeSession(target: SshTarget, options: { signal?: AbortSignal; emit?: Emit } = {}): Promise<EdgeSession> {
  const connection: SshConnection = await connectSsh(target, options);
  const where = `${target.host}:${target.port}`;
  return {
    target,
    async status() {
      const result = await connection.exec(EDGE_STATUS_COMMAND, { timeoutMs: 30_000, ...(options.signal ? { signal: options.signal } : {}) });
      // 127: the command does not exist there yet.
      if (result.exitCode === 127) return undefined;
      if (result.exitCode !== 0) {
        const detail = result.stderr.trim().split('\n').pop() ?? '';
        throw new DeployError(`${EDGE_STATUS_COMMAND} failed on ${where} (exit ${result.exitCode})${detail ? `: ${detail}` : ''}`, {
          hint: 'look at the edge with innisfree ssh NAME',
        });
      }
      return parseEdgeStatus(result.stdout, where);
    },
    async runsNixos() {
      return (await connection.exec('test -e /etc/NIXOS', { timeoutMs: 30_000 })).exitCode === 0;
    },
    async probeTcp(host, port, timeoutMs = 5000) {
      const result = await connection.exec(probeCommand(host, port, timeoutMs), { timeoutMs: timeoutMs + 10_000 });
      return result.exitCode === 0;
    },
    async close() {
      connection.close();
    },
  };
}
