// One SSH session to an edge (pinned host key) with the questions `up` asks it: its own status, whether it runs
// NixOS yet, and whether TCP ports answer from the edge's side (the end-to-end probe through the tunnel). Many
// ports are probed by one command that runs the probes in parallel on the edge: one SSH round trip, not N.
import { isIP } from 'node:net';
import { DeployError } from '../lib/errors.js';
import type { Emit } from '../lib/events.js';
import type { EdgeStatus } from '../spec/edge-config.js';
import type { SshTarget } from './deployer-port.js';
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
  /** innisfree-edge-repair: the edge restarts its forwarder and WireGuard with the configuration it serves. */
  repair(): Promise<RepairResult>;
  /** Every target at once, from the edge; one result per target, in order. */
  probeTcpAll(targets: readonly ProbeTarget[], options?: ProbeOptions): Promise<ProbeResult[]>;
  close(): Promise<void>;
}

export const EDGE_REPAIR_COMMAND = 'innisfree-edge-repair';

export interface RepairResult {
  ok: boolean;
  /** The command's last line of output (what it restarted, or why it could not). */
  detail: string;
}

export interface ProbeTarget {
  host: string;
  port: number;
}

/** open: connected; refused: the connection was refused or failed at once; silent: no answer within the timeout. */
export type ProbeResult = 'open' | 'refused' | 'silent';

export interface ProbeOptions {
  /** Per probe. Default 3 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Probes started at once on the edge: enough that thousands of ports take seconds, few enough for a 1 GB edge. */
export const PROBE_PARALLELISM = 128;

/**
 * The probe script: reads "HOST PORT" lines, starts a batch of PROBE_PARALLELISM connects in background subshells
 * (bash's /dev/tcp; one fork per probe, which matters on a small edge), waits for the batch up to the timeout and
 * ends the probes still connecting. Each probe prints "HOST PORT open|refused" as one short line (one atomic write:
 * parallel probes never interleave within a line); a probe that printed nothing got no answer (silent).
 */
const PROBE_SCRIPT = [
  't=$1 batch=$2',
  'reap() { local ticks=0; while [ -n "$(jobs -pr)" ] && [ "$ticks" -lt "$((t * 10))" ]; do sleep 0.1; ' +
    'ticks=$((ticks + 1)); done; kill $(jobs -pr) 2>/dev/null; wait 2>/dev/null; }',
  'n=0',
  'while read -r h p; do',
  '  { if : 3<>"/dev/tcp/$h/$p"; then echo "$h $p open"; else echo "$h $p refused"; fi; } 2>/dev/null &',
  '  n=$((n + 1)); if [ "$n" -ge "$batch" ]; then reap; n=0; fi',
  'done',
  'reap',
].join('\n');

/**
 * One shell command that probes the targets on its stdin. Needs bash and coreutils (sleep), which NixOS and Debian
 * both have; --norc: bash under sshd reads ~/.bashrc even with -c, and a slow one would slow every probe. Nothing
 * from the targets reaches the shell text: they arrive on stdin, validated.
 */
export function probeAllCommand(timeoutMs: number): string {
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  return `bash --norc --noprofile -c '${PROBE_SCRIPT}' innisfree-probe ${seconds} ${PROBE_PARALLELISM}`;
}

export function probeInput(targets: readonly ProbeTarget[]): string {
  return targets
    .map(({ host, port }) => {
      if (isIP(host) === 0) throw new Error(`probeTcpAll takes IP addresses, not "${host}"`);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`probeTcpAll: bad port ${port}`);
      return `${host} ${port}\n`;
    })
    .join('');
}

/** The results in the targets' order; a target with no line (the command cut short) counts as silent. */
export function parseProbeOutput(stdout: string, targets: readonly ProbeTarget[]): ProbeResult[] {
  const seen = new Map<string, ProbeResult>();
  for (const line of stdout.split('\n')) {
    const match = /^(\S+) (\d+) (open|refused|silent)$/.exec(line.trim());
    if (match) seen.set(`${match[1]} ${match[2]}`, match[3] as ProbeResult);
  }
  return targets.map((t) => seen.get(`${t.host} ${t.port}`) ?? 'silent');
}

/**
 * bash's /dev/tcp, so the probe needs nothing beyond what NixOS and Debian both have. --norc: bash started under
 * sshd reads ~/.bashrc even with -c, and a slow one (pyenv's rehash takes a lock) would make every probe slow.
 */
export function probeCommand(host: string, port: number, timeoutMs: number): string {
  if (isIP(host) === 0) throw new Error(`probeTcp takes an IP address, not "${host}"`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`probeTcp: bad port ${port}`);
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  return `timeout ${seconds} bash --norc --noprofile -c 'exec 3<>/dev/tcp/${host}/${port}'`;
}

export async function openEdgeSession(
  target: SshTarget,
  options: { signal?: AbortSignal; emit?: Emit } = {},
): Promise<EdgeSession> {
  const connection: SshConnection = await connectSsh(target, options);
  const where = `${target.host}:${target.port}`;
  return {
    target,
    async status() {
      const result = await connection.exec(EDGE_STATUS_COMMAND, {
        timeoutMs: 30_000,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      // 127: the command does not exist there yet.
      if (result.exitCode === 127) return undefined;
      if (result.exitCode !== 0) {
        const detail = result.stderr.trim().split('\n').pop() ?? '';
        throw new DeployError(
          `${EDGE_STATUS_COMMAND} failed on ${where} (exit ${result.exitCode})${detail ? `: ${detail}` : ''}`,
          {
            hint: 'look at the edge with innisfree ssh NAME',
          },
        );
      }
      return parseEdgeStatus(result.stdout, where);
    },
    async repair() {
      const result = await connection.exec(EDGE_REPAIR_COMMAND, {
        timeoutMs: 120_000,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const detail =
        (result.exitCode === 127 ? `${EDGE_REPAIR_COMMAND} is not on the edge (an older innisfree module)` : '') ||
        (result.stderr.trim() || result.stdout.trim()).split('\n').pop() ||
        `exit ${result.exitCode}`;
      return { ok: result.exitCode === 0, detail };
    },
    async runsNixos() {
      return (await connection.exec('test -e /etc/NIXOS', { timeoutMs: 30_000 })).exitCode === 0;
    },
    async probeTcp(host, port, timeoutMs = 5000) {
      const result = await connection.exec(probeCommand(host, port, timeoutMs), {
        timeoutMs: timeoutMs + 10_000,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return result.exitCode === 0;
    },
    async probeTcpAll(targets, probe = {}) {
      if (targets.length === 0) return [];
      const timeoutMs = probe.timeoutMs ?? 3000;
      const signal = probe.signal ?? options.signal;
      const unique = [...new Map(targets.map((t) => [`${t.host} ${t.port}`, t])).values()];
      // The whole batch is bounded: rounds of PROBE_PARALLELISM probes, each at most the timeout (plus a margin).
      const rounds = Math.ceil(unique.length / PROBE_PARALLELISM);
      const result = await connection.exec(probeAllCommand(timeoutMs), {
        input: probeInput(unique),
        timeoutMs: rounds * (Math.ceil(timeoutMs / 1000) * 1000 + 1000) + 15_000,
        ...(signal ? { signal } : {}),
      });
      if (result.exitCode === 127) {
        throw new DeployError(`the edge at ${where} cannot run the port probe (bash or sleep missing)`, {
          hint: 'deploy the innisfree module to the edge',
        });
      }
      return parseProbeOutput(result.stdout, targets);
    },
    async close() {
      connection.close();
    },
  };
}
