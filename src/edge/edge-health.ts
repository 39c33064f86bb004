// Is a running tunnel still serving? `up` asks this every watch interval, over the SSH session it keeps to the
// edge: the home link's handshake age against the keepalive, the edge's own report (forwarder active, every planned
// listener bound, WireGuard up), and a probe of each port from the edge — through the tunnel to the home side and,
// with nginx, of each public listener. The answer is a list of problems in words a user can act on; empty: healthy.
import type { EdgeConfig, EdgeStatus } from '../spec/edge-config.js';
import type { EdgeSession, ProbeResult, ProbeTarget } from './edge-session.js';
import { portsNotListening } from './edge-status.js';

export type HealthComponent =
  'edge' | 'edge-wireguard' | 'forwarder' | 'listeners' | 'public-ports' | 'link' | 'handshake';

export interface HealthProblem {
  component: HealthComponent;
  /** One clause, e.g. "the edge's forwarder (nginx) is not running". */
  detail: string;
  /** The edge did not answer over SSH at all: down, rebooting, or cut off, rather than misconfigured. */
  unreachable?: true;
}

export interface HealthInput {
  edge: Pick<EdgeConfig, 'ports' | 'forwarding' | 'wireguard'>;
  /** Home listen ports (TCP) to probe through the tunnel; ports whose destination is known to be down are left out. */
  tunnelPorts: number[];
  /** Public TCP ports to probe on the edge (nginx); default all. The edge's report is checked for every port. */
  publicPorts?: number[];
  /** Unix seconds of the home link's latest handshake (0: none). */
  latestHandshake: number;
  /** The home side's persistent keepalive, seconds (0: off). */
  keepaliveSeconds: number;
  nowMs: number;
  signal?: AbortSignal;
  /** Per probe; default 3 s. */
  probeTimeoutMs?: number;
}

/** WireGuard renews the session every 120 s while packets flow (REKEY_AFTER_TIME); keepalives keep them flowing. */
const REKEY_AFTER_SECONDS = 120;
const HANDSHAKE_SLACK_SECONDS = 30;

/**
 * A handshake older than this means the link is gone. It is the backstop only (about three minutes with the
 * default keepalive): the edge's report and the probes see a dead edge process or link within one interval.
 */
export function staleHandshakeSeconds(keepaliveSeconds: number): number {
  return REKEY_AFTER_SECONDS + 2 * Math.max(keepaliveSeconds, 0) + HANDSHAKE_SLACK_SECONDS;
}

export async function checkTunnelHealth(session: EdgeSession, input: HealthInput): Promise<HealthProblem[]> {
  const problems: HealthProblem[] = [];
  if (input.keepaliveSeconds > 0 && input.latestHandshake > 0) {
    const age = Math.round(input.nowMs / 1000 - input.latestHandshake);
    if (age > staleHandshakeSeconds(input.keepaliveSeconds)) {
      problems.push({ component: 'handshake', detail: `no WireGuard handshake with the edge for ${age} s` });
    }
  }

  let status: EdgeStatus | undefined;
  try {
    status = await session.status();
  } catch (error) {
    problems.push({
      component: 'edge',
      detail: `the edge did not report its status (${error instanceof Error ? error.message : String(error)})`,
      unreachable: true,
    });
    // Without a session the probes cannot run either; what is known is enough to act on.
    return problems;
  }
  if (status === undefined) {
    problems.push({ component: 'edge', detail: 'the edge no longer has innisfree-edge-status (it is not configured)' });
    return problems;
  }
  problems.push(...problemsInStatus(status, input.edge));

  const targets: Array<ProbeTarget & { kind: 'tunnel' | 'public' }> = input.tunnelPorts.map((port) => ({
    host: input.edge.wireguard.peer.address,
    port,
    kind: 'tunnel',
  }));
  if (input.edge.forwarding === 'nginx') {
    const publicPorts =
      input.publicPorts ?? input.edge.ports.filter((p) => p.protocol === 'tcp').map((p) => p.publicPort);
    for (const port of publicPorts) targets.push({ host: '127.0.0.1', port, kind: 'public' });
  }
  if (targets.length === 0) return problems;
  let results: ProbeResult[];
  try {
    results = await session.probeTcpAll(targets, {
      timeoutMs: input.probeTimeoutMs ?? 3000,
      ...(input.signal ? { signal: input.signal } : {}),
    });
  } catch (error) {
    if (input.signal?.aborted) throw error;
    problems.push({
      component: 'edge',
      detail: `probing the ports from the edge failed (${error instanceof Error ? error.message : String(error)})`,
      unreachable: true,
    });
    return problems;
  }
  // Through the tunnel, any reply (a connection, or a reset from the home side) proves the link; only silence is a
  // fault. A destination that refuses is the service's business, not the tunnel's.
  const tunnel = targets.map((t, i) => ({ t, r: results[i]! })).filter((x) => x.t.kind === 'tunnel');
  if (tunnel.length > 0 && tunnel.every((x) => x.r === 'silent')) {
    problems.push({
      component: 'link',
      detail: `nothing answers through the tunnel from the edge to ${input.edge.wireguard.peer.address}`,
    });
  }
  const closed = targets.filter((t, i) => t.kind === 'public' && results[i] !== 'open').map((t) => `${t.port}/tcp`);
  if (closed.length > 0)
    problems.push({
      component: 'public-ports',
      detail:
        `public port${closed.length > 1 ? 's' : ''} ${shortList(closed)} do${closed.length > 1 ? '' : 'es'} not ` +
        `accept connections on the edge`,
    });
  return problems;
}

/** What the edge's own report says is wrong, against the configuration it should serve. */
export function problemsInStatus(
  status: EdgeStatus,
  edge: Pick<EdgeConfig, 'ports' | 'forwarding' | 'wireguard'>,
): HealthProblem[] {
  const problems: HealthProblem[] = [];
  if (!status.wireguard.up || status.wireguard.publicKey === null) {
    problems.push({ component: 'edge-wireguard', detail: `WireGuard ${edge.wireguard.interface} on the edge is down` });
  }
  if (!status.forwarder.active) {
    problems.push({ component: 'forwarder', detail: `the edge's forwarder (${status.forwarder.kind}) is not running` });
  } else {
    const missing = portsNotListening(status, edge.ports);
    if (missing.length > 0)
      problems.push({ component: 'listeners', detail: `nginx on the edge has not bound ${shortList(missing)}` });
  }
  return problems;
}

export function describeProblems(problems: readonly HealthProblem[]): string {
  return problems.map((p) => p.detail).join('; ');
}

export interface HintContext {
  tunnel: string;
  /** Whether the edge survives this run's exit (--keep, or a rolled-back existing edge). */
  edgeKept: boolean;
  wireguardPort: number;
}

/** What to do once repair failed, matching the state left behind: a destroyed edge cannot be re-attached to. */
export function hintFor(problems: readonly HealthProblem[], context: HintContext): string {
  const components = new Set(problems.map((p) => p.component));
  const linkOnly = [...components].every((c) => c === 'link' || c === 'handshake');
  const cause = components.has('edge')
    ? 'the edge stopped answering over SSH (is it running?)'
    : linkOnly
      ? `the path between this host and the edge is broken; check that UDP ${context.wireguardPort} reaches the ` +
        `edge from here (firewall, NAT)`
      : "restarting the edge's services did not help";
  const next = context.edgeKept
    ? `the edge was kept: look at it with innisfree ssh ${context.tunnel} -- innisfree-edge-status, then run up ` +
      `again to re-attach`
    : 'the edge was removed on exit; run up again for a new one';
  return `${cause}; ${next}`;
}

function shortList(items: readonly string[]): string {
  return items.length > 5 ? `${items.slice(0, 5).join(', ')} and ${items.length - 5} more` : items.join(', ');
}
