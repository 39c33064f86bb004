// What a run of a tunnel is given: its effects (TunnelDeps, faked in tests), the narrow context, and its timing;
// shared by runTunnel, the verification before "ready" and the watch while it serves.
import type { Context } from './lib/context.js';
import { InterruptedError } from './lib/errors.js';
import type { Deployer } from './edge/deployer-port.js';
import type { DeployedConfig } from './edge/deployed-config.js';
import type { EdgeSession } from './edge/edge-session.js';
import type { HomeDataPlane } from './home/data-plane.js';
import type { HomeConfig, Plan } from './plan.js';
import type { EdgeInfo, Provider } from './providers/provider.js';

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
export const LOCAL_PROBE_PARALLELISM = 64;

export type RunTunnelContext = Pick<Context, 'clock' | 'emit' | 'signal'>;

export function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason ?? new InterruptedError();
}
