// The life of one tunnel, as `innisfree up` runs it (design.md, "The data flow of up"): find or create the edge,
// reach it over SSH with the pinned host key, bring NixOS onto it if needed, deploy the planned config unless the
// edge already runs it, bring the home side up, verify end to end, then serve until a signal or a fatal fault,
// and tear down in order. Effects come in through TunnelDeps, so tests drive this with fakes.
import type { Context } from './lib/context.js';
import {
  DataPlaneError,
  DeployError,
  InnisfreeError,
  InterruptedError,
  RolledBackError,
  SshError,
  formatError,
} from './lib/errors.js';
import { step } from './lib/events.js';
import { mapLimit } from './lib/map-limit.js';
import type { Deployer } from './edge/deployer-port.js';
import type { DeployedConfig } from './edge/deployed-config.js';
import { type HealthProblem, checkTunnelHealth, describeProblems, hintFor } from './edge/edge-health.js';
import type { EdgeSession, ProbeTarget } from './edge/edge-session.js';
import { SshConnectError, endpointOf, sshTargetFor } from './edge/ssh.js';
import type { HomeDataPlane } from './home/data-plane.js';
import type { HomeConfig, Plan } from './plan.js';
import type { EdgeIdentity, EdgeInfo, Provider } from './providers/provider.js';
import { isLoopback } from './spec/primitives.js';
import type { TunnelSpec } from './spec/tunnel.js';
import type { ResourceLedger } from './state/resources.js';
import type { TunnelPaths } from './state/paths.js';
import type { ReloadRequests } from './lib/reload-requests.js';
import { type ReloadOutcome, reloadTunnel } from './reload.js';
import { type Phase, type TunnelStatus, writeStatus } from './state/status.js';

export interface TunnelDeps {
  provider: Provider;
  deployer: Deployer;
  /**
   * Makes the edge run NixOS if it does not yet (nixos-anywhere over a stock image, calling `onBootstrap` first)
   * and opens an SSH session to it with the pinned host key.
   */
  reachEdge(
    edge: EdgeInfo,
    created: boolean,
    onBootstrap: () => Promise<void>,
    signal: AbortSignal,
  ): Promise<EdgeSession>;
  /** Writes the per-tunnel flake and edge.json into the tunnel's edge/ directory. */
  writeEdgeFiles(plan: Plan): Promise<void>;
  /** Puts back the files of the previous deployment (after a rollback) and returns that configuration, if complete. */
  restoreEdgeFiles(): Promise<DeployedConfig | undefined>;
  startDataPlane(
    home: HomeConfig,
    peer: { endpoint: string; publicKey: string },
    signal: AbortSignal,
  ): Promise<HomeDataPlane>;
  /** TCP connect test at home (is the destination service answering?). */
  probeLocal(host: string, port: number): Promise<boolean>;
  /**
   * A new SSH session to the edge a session was open to, for the watch: only a login (bounded in time), never the
   * bootstrap that reachEdge may start on an edge that does not answer.
   */
  reconnectEdge(session: EdgeSession, signal: AbortSignal): Promise<EdgeSession>;
}

export interface RunTunnelInput {
  spec: TunnelSpec;
  plan: Plan;
  paths: TunnelPaths;
  identity: EdgeIdentity;
  /** What this run registers at the provider (resources.json); see providers/provider.ts. */
  ledger?: ResourceLedger;
  /** The edge local state recorded before this run (status.json), if any. */
  recordedEdgeId?: string;
  /** Called once the tunnel is ready, with what the user needs to see. */
  onReady(ready: ReadyInfo): void;
  /** Reload requests (SIGHUP); each re-reads the sources through `replan` and applies the difference. */
  reloads?: ReloadRequests;
  /** Re-reads the tunnel's sources as at start and plans again; throws a typed error for bad input. */
  replan?: () => Promise<{ spec: TunnelSpec; plan: Plan }>;
}

export interface ReadyInfo {
  edge: EdgeInfo;
  created: boolean;
  deployed: boolean;
  /** The configuration serving now: the plan's, or the previous one after a rollback. */
  served: DeployedConfig;
  /** Ports whose destination did not answer when checked. */
  silentDestinations: string[];
}

export interface RunTunnelTiming {
  /** How long to wait for the first handshake after the home link comes up. */
  handshakeTimeoutMs: number;
  /** How often status.json gets a fresh data-plane sample. */
  sampleIntervalMs: number;
  /** A tunnel with no handshake for this long is lost (WireGuard re-handshakes every 2 minutes while in use). */
  lostAfterMs: number;
  /** How often the watch checks the edge and the link over SSH once the tunnel is ready; 0: no watch. */
  watchIntervalMs: number;
  /** After a repair, how long the watch re-checks before it gives up (exit 7). */
  repairSettleMs: number;
  /** A port a reload removed: how long its open connections may finish before they are closed. Default 5 s. */
  removedPortGraceMs?: number;
}

export const DEFAULT_TIMING: RunTunnelTiming = {
  handshakeTimeoutMs: 45_000,
  sampleIntervalMs: 5_000,
  lostAfterMs: 300_000,
  watchIntervalMs: 15_000,
  repairSettleMs: 30_000,
};

/** Connect tests from this host to destinations at once (verification and the destination checks). */
const LOCAL_PROBE_PARALLELISM = 64;

export type RunTunnelContext = Pick<Context, 'clock' | 'emit' | 'signal'>;

/**
 * Runs the tunnel until the signal aborts (resolves: orderly stop) or a fault (rejects with a typed error).
 * Whatever happens, it leaves no home link or forwarder behind, and destroys the edge unless `spec.keep` — or
 * unless the edge predates this run and a failed deploy rolled it back (it still serves its previous config).
 */
export async function runTunnel(
  ctx: RunTunnelContext,
  deps: TunnelDeps,
  input: RunTunnelInput,
  timing: RunTunnelTiming = DEFAULT_TIMING,
): Promise<void> {
  const { spec, plan, paths } = input;
  const status = new StatusRecorder(paths, spec, plan, ctx.clock);
  await status.update({ phase: 'provisioning', message: null });

  let edge: EdgeInfo | undefined;
  let created = false;
  let connection: EdgeSession | undefined;
  let dataPlane: HomeDataPlane | undefined;
  let keepEdge = spec.keep;
  /** The found edge turned out to be another state directory's: neither destroyed nor recorded as ours. */
  let foreign = false;
  let ready = false;
  let failure: unknown;
  /** Set when the edge refused the new config and this run serves the previous one. */
  let rolledBack: RolledBackError | undefined;

  try {
    const ensured = await step(ctx.emit, 'edge', `Finding or creating the ${spec.provider} edge`, () =>
      deps.provider.ensureEdge({
        spec,
        identity: input.identity,
        emit: ctx.emit,
        signal: ctx.signal,
        ...(input.ledger ? { ledger: input.ledger } : {}),
        ...(input.recordedEdgeId ? { recordedEdgeId: input.recordedEdgeId } : {}),
      }),
    );
    edge = ensured.edge;
    created = ensured.created;
    ctx.emit({
      type: 'log',
      level: 'info',
      message:
        `${created ? 'created' : 'found'} edge ${edge.name} (${edge.id}) at ${edge.ipv4}` +
        `${edge.ipv6 ? ` and ${edge.ipv6}` : ''}`,
    });
    await status.update({ edge });
    checkAborted(ctx.signal);

    await deps.writeEdgeFiles(plan);
    connection = await step(ctx.emit, 'ssh', 'Reaching the edge over SSH (pinned host key)', () =>
      deps.reachEdge(edge!, created, () => status.update({ phase: 'bootstrapping' }), ctx.signal),
    ).catch((error: unknown) => {
      throw created ? error : foreignEdgeError(edge!, error, () => (keepEdge = foreign = true));
    });
    checkAborted(ctx.signal);

    let edgeStatus = await connection.status();
    // What the edge serves once this step is over: the plan, or after a rollback the previous configuration.
    let active: DeployedConfig = { edge: plan.edge, home: plan.home };
    let deployed = false;
    if (edgeStatus?.configHash === plan.configHash) {
      ctx.emit({
        type: 'step',
        id: 'deploy',
        status: 'skipped',
        title: 'Deploying the edge configuration',
        detail: 'the edge already runs it',
      });
    } else {
      await status.update({ phase: 'deploying', deployedConfigHash: edgeStatus?.configHash ?? null });
      try {
        await step(ctx.emit, 'deploy', `Deploying the edge configuration (${plan.configHash.slice(0, 12)})`, () =>
          deps.deployer.apply({
            tunnel: spec.name,
            edgeDir: paths.edgeDir,
            configHash: plan.configHash,
            target: sshTargetFor(paths, edge!.ipv4, spec.edgeSshPort),
            emit: ctx.emit,
            signal: ctx.signal,
          }),
        );
        deployed = true;
      } catch (error) {
        if (!(error instanceof RolledBackError)) throw error;
        // An edge that never had a configuration has nothing to roll back to: saying the previous one still serves
        // would be false. It is a failed deploy (exit 5), and the edge made for it is removed as usual.
        if (!edgeStatus?.configHash) {
          throw new DeployError(
            `${withoutPreviousClaim(error.message)}; the edge had no earlier configuration, so nothing serves ` +
              `its ports`,
            {
              hint: error.hint ?? `fix the cause and run up again`,
              cause: error,
            },
          );
        }
        // The edge serves its previous config; local state goes back to describing it.
        const previous = await deps.restoreEdgeFiles();
        if (created || !previous) {
          if (!created) keepEdge = true;
          throw error;
        }
        // Keep that previous configuration working end to end, and say loudly that the new one was refused.
        rolledBack = error;
        active = previous;
        ctx.emit({
          type: 'log',
          level: 'warn',
          message: `${formatError(error)}; serving the previous configuration until stopped`,
        });
        await status.update({ message: formatError(error) });
      }
      edgeStatus = await connection.status();
    }
    await status.update({ deployedConfigHash: edgeStatus?.configHash ?? null });
    const edgePublicKey = edgeStatus?.wireguard.publicKey;
    if (!edgePublicKey) {
      throw new DataPlaneError('the edge did not report its WireGuard public key', {
        hint: `check the edge with: innisfree ssh ${spec.name} -- innisfree-edge-status`,
      });
    }
    checkAborted(ctx.signal);

    await status.update({ phase: 'connecting' });
    dataPlane = await step(ctx.emit, 'home', `Bringing up ${active.home.interface} and the forwarder`, () =>
      deps.startDataPlane(
        active.home,
        { endpoint: endpointOf(edge!.ipv4, spec.wireguardPort), publicKey: edgePublicKey },
        ctx.signal,
      ),
    );
    // A signal during a step stops the run as soon as the step returns: the tunnel must never be reported up after it.
    checkAborted(ctx.signal);
    const destinations = await checkDestinations(ctx, deps, active.home);
    checkAborted(ctx.signal);
    await step(ctx.emit, 'verify', 'Verifying the tunnel end to end', () =>
      verify(ctx, connection!, dataPlane!, active, timing, destinations),
    );
    checkAborted(ctx.signal);
    const silentDestinations = destinations.silent;
    for (const where of silentDestinations) {
      ctx.emit({
        type: 'log',
        level: 'warn',
        message: `nothing answers at ${where} yet; the tunnel is up and will reach it once the service listens`,
      });
    }
    await status.update({ phase: 'ready', dataPlane: await sampleFor(dataPlane, ctx.clock) });
    checkAborted(ctx.signal);
    ready = true;
    input.onReady({ edge, created, deployed, silentDestinations, served: active });
    // The SSH session stays open: the watch asks the edge how it is doing every interval.
    const watch: Watch = {
      deps,
      edge,
      active,
      spec,
      session: connection,
      readyMessage: rolledBack ? formatError(rolledBack) : null,
      edgeKept: () => keepEdge,
      offset: 0,
      configHash: edgeStatus?.configHash ?? plan.configHash,
    };
    const reloading =
      input.reloads && input.replan
        ? {
            requests: input.reloads,
            apply: async (): Promise<ReloadOutcome> => {
              const outcome = await reloadTunnel(ctx, {
                deps,
                paths,
                edge: edge!,
                session: watch.session,
                dataPlane: dataPlane!,
                served: { spec: watch.spec, config: watch.active, configHash: watch.configHash },
                replan: input.replan!,
                graceMs: timing.removedPortGraceMs ?? 5_000,
              });
              if (outcome.applied) {
                watch.spec = outcome.applied.spec;
                watch.active = outcome.applied.config;
                watch.configHash = outcome.applied.configHash;
                watch.readyMessage = null;
                keepEdge = outcome.applied.spec.keep;
                rolledBack = undefined;
              }
              await status.update({ ...outcome.status, ...(outcome.applied ? { message: null } : {}) });
              return outcome;
            },
          }
        : undefined;
    try {
      await serve(ctx, dataPlane, status, timing, watch, reloading);
    } finally {
      connection = watch.session;
    }
  } catch (error) {
    failure = error;
  }

  // Teardown, in order: forwarder and link, then the edge.
  await status.update({ phase: 'stopping' }).catch(() => {});
  if (connection) await connection.close().catch(() => {});
  if (dataPlane) {
    await step(ctx.emit, 'home.down', 'Stopping the forwarder and the home link', () => dataPlane!.stop()).catch(
      (error: unknown) => {
        failure ??= error;
      },
    );
  }
  if (edge && !keepEdge) {
    await step(ctx.emit, 'edge.destroy', `Destroying edge ${edge.name}`, () =>
      deps.provider.destroyEdge(spec.name, {
        emit: ctx.emit,
        signal: new AbortController().signal,
        sshPublicKey: input.identity.sshPublicKey,
        ...(input.ledger ? { ledger: input.ledger } : {}),
      }),
    ).catch((error: unknown) => {
      ctx.emit({
        type: 'log',
        level: 'warn',
        message: `could not destroy ${edge!.name}: ${formatError(error)}; run: innisfree down ${spec.name}`,
      });
      failure ??= error;
    });
  } else if (edge && foreign) {
    await input.ledger?.clear().catch(() => {});
  } else if (edge) {
    // The kept edge belongs to the tunnel now, not to this run: the next run must not clean it up as leftovers.
    await input.ledger?.clear().catch(() => {});
    ctx.emit({
      type: 'log',
      level: 'info',
      message: `kept edge ${edge.name} at ${edge.ipv4}; remove it with: innisfree down ${spec.name}`,
    });
  }

  const interrupted = failure === undefined || isAbort(failure, ctx.signal);
  await status
    .update({
      phase: interrupted ? 'stopped' : 'failed',
      pid: null,
      edge: edge && keepEdge && !foreign ? edge : null,
      dataPlane: null,
      message: interrupted ? (rolledBack ? formatError(rolledBack) : null) : formatError(failure),
    })
    .catch(() => {});

  if (failure === undefined) return;
  if (isAbort(failure, ctx.signal)) {
    // A signal after the tunnel was ready is the normal way to stop it; during setup it is an interruption. A run
    // that served the previous configuration because the new one was rolled back still ends as "rolled back".
    if (ready && rolledBack) throw rolledBack;
    if (ready) return;
    throw failure instanceof InterruptedError
      ? failure
      : new InterruptedError('interrupted before the tunnel was ready');
  }
  throw failure;
}

async function verify(
  ctx: RunTunnelContext,
  connection: EdgeSession,
  dataPlane: HomeDataPlane,
  plan: DeployedConfig,
  timing: RunTunnelTiming,
  destinations: DestinationCheck,
): Promise<void> {
  const deadline = ctx.clock.now() + timing.handshakeTimeoutMs;
  for (;;) {
    const sample = await Promise.race([dataPlane.sample(), dataPlane.failure]);
    checkAborted(ctx.signal);
    if (sample.latestHandshake > 0) break;
    if (ctx.clock.now() >= deadline) {
      throw new DataPlaneError(
        `no WireGuard handshake with the edge within ${Math.round(timing.handshakeTimeoutMs / 1000)} s`,
        {
          hint:
            `check that UDP ${plan.edge.wireguard.listenPort} reaches the edge from here (firewall, NAT), then ` +
            `run up again`,
        },
      );
    }
    await ctx.clock.sleep(500, ctx.signal);
  }
  const homeIp = plan.edge.wireguard.peer.address;
  const tcpPorts = plan.edge.ports.filter((p) => p.protocol === 'tcp');
  // Through the tunnel to the home listener: proves WireGuard, routing and the forwarder (or the service itself).
  // Kernel forwarding has no listener of its own: the probe reaches the destination, so a port whose destination
  // does not answer here yet cannot be checked (it is reported as silent instead). With the forwarder and a
  // destination that refuses, the forwarder resets the probe at once, and that reset can overtake the handshake's
  // last packet through the tunnel: "refused" then still proves the round trip through WireGuard to the forwarder.
  const kernel = plan.home.forwarding === 'kernel';
  const localPorts = [...new Set(tcpPorts.map((p) => p.localPort))].filter(
    (port) => !kernel || !destinations.silentPorts.has(port),
  );
  const targets: Array<ProbeTarget & { what: string; refusedIsFine: boolean }> = localPorts.map((port) => ({
    host: homeIp,
    port,
    what: `${homeIp}:${port} through the tunnel`,
    refusedIsFine: destinations.silentPorts.has(port),
  }));
  // The public listeners themselves (nginx); kernel DNAT has no listener to probe from the edge itself.
  if (plan.edge.forwarding === 'nginx') {
    for (const port of tcpPorts)
      targets.push({
        host: '127.0.0.1',
        port: port.publicPort,
        what: `public port ${port.publicPort}/tcp on the edge`,
        refusedIsFine: false,
      });
  }
  // One command on the edge probes them all in parallel: N ports take seconds, not N round trips.
  const results = await connection.probeTcpAll(targets, { signal: ctx.signal });
  checkAborted(ctx.signal);
  const failedTargets = targets.flatMap((t, i) =>
    results[i] === 'open' || (results[i] === 'refused' && t.refusedIsFine)
      ? []
      : [`${t.what} (${results[i] === 'silent' ? 'no answer' : 'refused'})`],
  );
  const failed =
    failedTargets.length > 8 ? [...failedTargets.slice(0, 8), `${failedTargets.length - 8} more`] : failedTargets;
  if (failed.length > 0) {
    throw new DataPlaneError(`the edge could not reach ${failed.join(', ')}`, {
      hint:
        plan.home.forwards.length === 0
          ? 'with --destination none the service must listen on the tunnel address; check it does'
          : kernel && !plan.home.masquerade && plan.home.forwards.some((f) => !isLoopback(f.targetHost))
            ? 'with kernel forwarding to another host, that host must route its replies via this one; or add ' +
              '--masquerade, or use --home-forwarding proxy'
            : 'check the edge with innisfree status and innisfree ssh; then run up again',
    });
  }
  if (plan.edge.ports.some((p) => p.protocol === 'udp')) {
    ctx.emit({
      type: 'log',
      level: 'debug',
      message: 'UDP ports are not probed: UDP has no handshake to test without the application',
    });
  }
}

interface DestinationCheck {
  /** "127.0.0.1:8080/tcp" for each TCP destination that did not answer. */
  silent: string[];
  /** The home listen ports whose destination did not answer. */
  silentPorts: Set<number>;
}

async function checkDestinations(ctx: RunTunnelContext, deps: TunnelDeps, home: HomeConfig): Promise<DestinationCheck> {
  const forwards = home.forwards.filter((f) => f.protocol === 'tcp');
  // In parallel, bounded: each is a connect from this host, and a silent destination costs the probe's timeout.
  const answering = await mapLimit(
    forwards,
    LOCAL_PROBE_PARALLELISM,
    (f) => deps.probeLocal(f.targetHost, f.targetPort),
    ctx.signal,
  );
  const silent = forwards.filter((_, i) => !answering[i]);
  return {
    silent: silent.map((f) => `${endpointOf(f.targetHost, f.targetPort)}/tcp`),
    silentPorts: new Set(silent.map((f) => f.listenPort)),
  };
}

/** What the watch of a ready tunnel needs; `session` is replaced when the edge had to be reached again. */
interface Watch {
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

interface Reloading {
  requests: ReloadRequests;
  apply(): Promise<ReloadOutcome>;
}

async function serve(
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

/**
 * A found edge that refuses this state directory's host-key pin or SSH key was made from another state directory
 * (the same tunnel name elsewhere, or by someone else): it may carry a live tunnel, so it is never destroyed.
 */
function foreignEdgeError(edge: EdgeInfo, error: unknown, keep: () => void): unknown {
  if (!(error instanceof SshConnectError) || (error.reason !== 'hostKey' && error.reason !== 'auth')) return error;
  keep();
  const why =
    error.reason === 'hostKey' ? 'its host key is not the one pinned here' : "it refuses this tunnel's SSH key";
  return new SshError(
    `edge ${edge.name} at ${edge.ipv4} was not made from this state directory (${why}); it was left as it is`,
    {
      hint:
        `if it is another tunnel's, pick another --name; if it is this tunnel's and its state is lost, remove it ` +
        `with innisfree down ${edge.tunnel} from the state directory that made it, or from the provider's console`,
      cause: error,
    },
  );
}

async function sampleFor(
  dataPlane: HomeDataPlane,
  clock: RunTunnelContext['clock'],
): Promise<NonNullable<TunnelStatus['dataPlane']>> {
  const sample = await dataPlane.sample();
  return { ...sample, sampledAt: new Date(clock.now()).toISOString() };
}

/** A rollback message without its claim that a previous configuration serves. */
function withoutPreviousClaim(message: string): string {
  return message.replace(/[;,]?\s*(and )?the previous configuration is still serving/g, '');
}

function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason ?? new InterruptedError();
}

function isAbort(error: unknown, signal: AbortSignal): boolean {
  if (error instanceof InterruptedError) return true;
  if (!signal.aborted) return false;
  return (
    error === signal.reason ||
    (error instanceof Error && error.name === 'AbortError') ||
    !(error instanceof InnisfreeError)
  );
}

/** Keeps status.json current; every update is a whole, atomic write. */
class StatusRecorder {
  private current: TunnelStatus;

  constructor(
    private readonly paths: TunnelPaths,
    spec: TunnelSpec,
    plan: Plan,
    private readonly clock: RunTunnelContext['clock'],
  ) {
    this.current = {
      version: 1,
      name: spec.name,
      phase: 'planned',
      pid: process.pid,
      provider: spec.provider,
      updatedAt: new Date(clock.now()).toISOString(),
      edge: null,
      plannedConfigHash: plan.configHash,
      deployedConfigHash: null,
      message: null,
      dataPlane: null,
    };
  }

  async update(change: Partial<Omit<TunnelStatus, 'version' | 'name'>> & { phase?: Phase }): Promise<void> {
    this.current = { ...this.current, ...change, updatedAt: new Date(this.clock.now()).toISOString() };
    await writeStatus(this.paths, this.current);
  }
}
