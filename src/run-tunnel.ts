// The life of one tunnel, as `innisfree up` runs it (design.md, "The data flow of up"): find or create the edge,
// reach it over SSH with the pinned host key, bring NixOS onto it if needed, deploy the planned config unless the
// edge already runs it, bring the home side up, verify end to end, then serve until a signal or a fatal fault,
// and tear down in order. Effects come in through TunnelDeps, so tests drive this with fakes.
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
import type { DeployedConfig } from './edge/deployed-config.js';
import type { EdgeSession } from './edge/edge-session.js';
import { SshConnectError, endpointOf, sshTargetFor } from './edge/ssh.js';
import type { HomeDataPlane } from './home/data-plane.js';
import type { Plan } from './plan.js';
import type { EdgeIdentity, EdgeInfo } from './providers/provider.js';
import type { TunnelSpec } from './spec/tunnel.js';
import type { ResourceLedger } from './state/resources.js';
import type { TunnelPaths } from './state/paths.js';
import type { ReloadRequests } from './lib/reload-requests.js';
import { type ReloadOutcome, reloadTunnel } from './reload.js';
import {
  DEFAULT_TIMING,
  type RunTunnelContext,
  type RunTunnelTiming,
  type TunnelDeps,
  checkAborted,
} from './run-tunnel-context.js';
import { StatusRecorder, sampleFor } from './status-recorder.js';
import { checkDestinations, verify } from './tunnel-verification.js';
import { type Watch, serve } from './tunnel-watch.js';

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

/** A rollback message without its claim that a previous configuration serves. */
function withoutPreviousClaim(message: string): string {
  return message.replace(/[;,]?\s*(and )?the previous configuration is still serving/g, '');
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
