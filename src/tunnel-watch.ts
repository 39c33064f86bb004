// The watch of a ready tunnel until a signal or a fatal fault: data-plane samples into status.json, a lost tunnel
// (no handshake), a look at the edge and the link over SSH every interval with repairs and re-checks, and the
// reloads, applied between watch rounds.
import { DataPlaneError, InterruptedError } from './lib/errors.js';
import { mapLimit } from './lib/map-limit.js';
import type { ReloadRequests } from './lib/reload-requests.js';
import type { DeployedConfig } from './edge/deployed-config.js';
import { type HealthProblem, checkTunnelHealth, describeProblems, hintFor } from './edge/edge-health.js';
import type { EdgeSession } from './edge/edge-session.js';
import type { HomeDataPlane } from './home/data-plane.js';
import type { EdgeInfo } from './providers/provider.js';
import type { TunnelSpec } from './spec/tunnel.js';
import type { ReloadOutcome } from './reload.js';
import {
  LOCAL_PROBE_PARALLELISM,
  type RunTunnelContext,
  type RunTunnelTiming,
  type TunnelDeps,
  checkAborted,
} from './run-tunnel-context.js';
import { type StatusRecorder, sampleFor } from './status-recorder.js';

/** What the watch of a ready tunnel needs; `session` is replaced when the edge had to be reached again. */
export interface Watch {
  deps: TunnelDeps;
  edge: EdgeInfo;
  active: DeployedConfig;
  spec: TunnelSpec;
  session: EdgeSession;
  /** status.json's message while healthy (a rollback notice, or none). */
  readyMessage: string | null;
  edgeKept(): boolean;
  /** The edge config hash serving now (changes with a reload). */
  configHash: string;
  /** Where the next round of public-port probes starts (a large port set is probed a slice per round). */
  offset: number;
}

export interface Reloading {
  requests: ReloadRequests;
  apply(): Promise<ReloadOutcome>;
}

export async function serve(
  ctx: RunTunnelContext,
  dataPlane: HomeDataPlane,
  status: StatusRecorder,
  timing: RunTunnelTiming,
  watch: Watch,
  reloading?: Reloading,
): Promise<void> {
  const stopped = new Promise<never>((_, reject) => {
    const stop = () => reject(ctx.signal.reason ?? new InterruptedError());
    if (ctx.signal.aborted) stop();
    ctx.signal.addEventListener('abort', stop, { once: true });
  });
  stopped.catch(() => {});
  let lastHandshakeSeenAt = ctx.clock.now();
  let nextWatchAt = ctx.clock.now() + timing.watchIntervalMs;
  // Cancels the pending tick when serving ends, so no timer outlives the tunnel.
  const ticks = new AbortController();
  const hint = (problems: HealthProblem[]) =>
    hintFor(problems, {
      tunnel: watch.spec.name,
      edgeKept: watch.edgeKept(),
      wireguardPort: watch.active.edge.wireguard.listenPort,
    });
  // A reload request wakes the loop; it is applied between watch rounds, never during one.
  let reloadDue = false;
  let reloadAsked: Promise<void> | undefined;
  const awaitReload = () => (reloadAsked = reloading?.requests.next().then(() => void (reloadDue = true)));
  awaitReload();
  try {
    for (;;) {
      const watching = timing.watchIntervalMs > 0;
      const wait = watching
        ? Math.max(0, Math.min(timing.sampleIntervalMs, nextWatchAt - ctx.clock.now()))
        : timing.sampleIntervalMs;
      const tick = new AbortController();
      const stopTick = () => tick.abort();
      ticks.signal.addEventListener('abort', stopTick, { once: true });
      await Promise.race([
        stopped,
        ctx.clock.sleep(wait, tick.signal).catch(() => {}),
        dataPlane.failure,
        ...(reloadAsked ? [reloadAsked] : []),
      ]);
      tick.abort();
      ticks.signal.removeEventListener('abort', stopTick);
      if (reloadDue && reloading) {
        reloadDue = false;
        const applying = reloading.apply();
        applying.catch(() => {});
        await Promise.race([stopped, dataPlane.failure, applying]);
        awaitReload();
      }
      const sample = await sampleFor(dataPlane, ctx.clock);
      await status.update({ dataPlane: sample });
      const handshakeAt = sample.latestHandshake * 1000;
      if (handshakeAt > 0) lastHandshakeSeenAt = Math.max(lastHandshakeSeenAt, handshakeAt);
      if (ctx.clock.now() - lastHandshakeSeenAt > timing.lostAfterMs) {
        const problems: HealthProblem[] = [
          {
            component: 'handshake',
            detail:
              `no WireGuard handshake with the edge for ` +
              `${Math.round((ctx.clock.now() - lastHandshakeSeenAt) / 1000)} s`,
          },
        ];
        throw new DataPlaneError(`tunnel lost: ${describeProblems(problems)}`, { hint: hint(problems) });
      }
      if (watching && ctx.clock.now() >= nextWatchAt) {
        // A signal or a home-side fault ends the watch round at once, whatever it is waiting for.
        const round = watchRound(ctx, dataPlane, status, timing, watch, hint);
        round.catch(() => {});
        await Promise.race([stopped, dataPlane.failure, round]);
        nextWatchAt = ctx.clock.now() + timing.watchIntervalMs;
      }
    }
  } finally {
    ticks.abort();
  }
}

/** Tunnel ports probed through the tunnel per round: any reply proves the link, which every port shares. */
const WATCH_TUNNEL_PROBES = 16;
/** Public ports probed per round; a larger set is covered a slice per round, in turn. */
const WATCH_PUBLIC_PROBES = 64;

/** One look at the tunnel; on a problem: report it, repair what is obvious, and re-check until it settles. */
async function watchRound(
  ctx: RunTunnelContext,
  dataPlane: HomeDataPlane,
  status: StatusRecorder,
  timing: RunTunnelTiming,
  watch: Watch,
  hint: (problems: HealthProblem[]) => string,
): Promise<void> {
  const tunnel = watch.spec.name;
  const problems = await checkHealth(ctx, dataPlane, watch);
  if (problems.length === 0) return;
  const reason = describeProblems(problems);
  await status.update({ phase: 'degraded', message: `degraded: ${reason}` });
  ctx.emit({ type: 'health', tunnel, status: 'degraded', problems: problems.map((p) => p.detail) });

  let remaining = problems;
  let edgeRepaired = false;
  // First what the problems point at; if that does not settle it, everything that can be restarted.
  for (const stage of ['targeted', 'everything'] as const) {
    if (stage === 'everything' && edgeRepaired) break;
    const components = new Set(remaining.map((p) => p.component));
    const linkTrouble = components.has('link') || components.has('handshake') || components.has('edge-wireguard');
    const edgeTrouble = stage === 'everything' || [...components].some((c) => c !== 'link' && c !== 'handshake');
    const actions: string[] = [];
    if (components.has('edge')) {
      // The session may have died with the edge's sshd or a network blip: reach the edge again.
      await watch.session.close().catch(() => {});
      try {
        watch.session = await watch.deps.reconnectEdge(watch.session, ctx.signal);
        actions.push('reached the edge again over SSH');
      } catch (error) {
        checkAborted(ctx.signal);
        actions.push(`could not reach the edge over SSH (${error instanceof Error ? error.message : String(error)})`);
      }
    }
    if (edgeTrouble) {
      const repaired = await watch.session
        .repair()
        .catch((error: unknown) => ({ ok: false, detail: error instanceof Error ? error.message : String(error) }));
      checkAborted(ctx.signal);
      edgeRepaired = true;
      actions.push(
        repaired.ok
          ? `restarted the edge's forwarder and WireGuard (${repaired.detail})`
          : `innisfree-edge-repair failed: ${repaired.detail}`,
      );
    }
    if (linkTrouble || edgeTrouble) {
      await dataPlane.renewLink().then(
        () => actions.push('renewed the home link'),
        (error: unknown) =>
          actions.push(`renewing the home link failed (${error instanceof Error ? error.message : String(error)})`),
      );
    }
    ctx.emit({
      type: 'health',
      tunnel,
      status: 'repairing',
      problems: remaining.map((p) => p.detail),
      detail: actions.join('; '),
    });
    remaining = await settle(ctx, dataPlane, timing, watch, remaining);
    if (remaining.length === 0) {
      // status.json first: whoever reads it after seeing "repaired" must find it ready.
      await status.update({ phase: 'ready', message: watch.readyMessage });
      ctx.emit({
        type: 'health',
        tunnel,
        status: 'repaired',
        problems: problems.map((p) => p.detail),
        detail: actions.join('; '),
      });
      return;
    }
  }
  ctx.emit({ type: 'health', tunnel, status: 'failed', problems: remaining.map((p) => p.detail) });
  throw new DataPlaneError(`tunnel ${tunnel} is degraded and repair did not help: ${describeProblems(remaining)}`, {
    hint: hint(remaining),
  });
}

/**
 * Re-checks after a repair until the tunnel is healthy or repairSettleMs has passed; returns what remains. An edge
 * that does not answer over SSH at all is waited for longer — up to lostAfterMs, as a tunnel without handshakes is —
 * logging in again at every re-check: a droplet that reboots is gone for a minute or two, then serves again.
 */
async function settle(
  ctx: RunTunnelContext,
  dataPlane: HomeDataPlane,
  timing: RunTunnelTiming,
  watch: Watch,
  before: HealthProblem[],
): Promise<HealthProblem[]> {
  const start = ctx.clock.now();
  const deadline = start + timing.repairSettleMs;
  const outageDeadline = start + Math.max(timing.repairSettleMs, timing.lostAfterMs);
  let problems = before;
  for (;;) {
    const until = problems.some((p) => p.unreachable) ? outageDeadline : deadline;
    const wait = Math.min(REPAIR_RECHECK_MS, Math.max(0, until - ctx.clock.now()));
    await ctx.clock.sleep(wait, ctx.signal);
    if (problems.some((p) => p.unreachable)) {
      await watch.session.close().catch(() => {});
      watch.session = await watch.deps.reconnectEdge(watch.session, ctx.signal).catch(() => {
        checkAborted(ctx.signal);
        return watch.session;
      });
    }
    problems = await checkHealth(ctx, dataPlane, watch);
    if (problems.length === 0) return problems;
    if (ctx.clock.now() >= (problems.some((p) => p.unreachable) ? outageDeadline : deadline)) return problems;
  }
}

const REPAIR_RECHECK_MS = 5_000;

async function checkHealth(ctx: RunTunnelContext, dataPlane: HomeDataPlane, watch: Watch): Promise<HealthProblem[]> {
  const { active } = watch;
  const sample = await dataPlane.sample();
  const tcpForwards = active.home.forwards.filter((f) => f.protocol === 'tcp');
  let tunnelPorts = [...new Set(active.edge.ports.filter((p) => p.protocol === 'tcp').map((p) => p.localPort))];
  if (active.home.forwarding === 'kernel') {
    // Kernel forwarding passes the probe to the destination: one that is down says nothing about the tunnel.
    const candidates = tunnelPorts.slice(0, WATCH_TUNNEL_PROBES * 2);
    const answering = await mapLimit(
      candidates,
      LOCAL_PROBE_PARALLELISM,
      async (port) => {
        const forward = tcpForwards.find((f) => f.listenPort === port);
        return !forward || (await watch.deps.probeLocal(forward.targetHost, forward.targetPort));
      },
      ctx.signal,
    );
    tunnelPorts = candidates.filter((_, i) => answering[i]);
  }
  const tcpPublic = active.edge.ports.filter((p) => p.protocol === 'tcp');
  const slice =
    tcpPublic.length <= WATCH_PUBLIC_PROBES
      ? tcpPublic
      : Array.from({ length: WATCH_PUBLIC_PROBES }, (_, i) => tcpPublic[(watch.offset + i) % tcpPublic.length]!);
  watch.offset = (watch.offset + WATCH_PUBLIC_PROBES) % Math.max(tcpPublic.length, 1);
  return checkTunnelHealth(watch.session, {
    edge: active.edge,
    publicPorts: slice.map((p) => p.publicPort),
    tunnelPorts: tunnelPorts.slice(0, WATCH_TUNNEL_PROBES),
    latestHandshake: sample.latestHandshake,
    keepaliveSeconds: active.home.persistentKeepalive ?? 0,
    nowMs: ctx.clock.now(),
    signal: ctx.signal,
  });
}
