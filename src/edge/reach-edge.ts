// Reaching an edge for `up`: pin the host key made at home (injected at create), make the edge run NixOS if it does
// not yet (nixos-anywhere over a stock image), and open an SSH session to it. A re-attached edge may run NixOS already.
import type { Context } from '../lib/context.js';
import { systemStreamExec } from '../lib/stream-exec.js';
import type { TunnelPaths } from '../state/paths.js';
import { bootstrapEdge } from './bootstrap.js';
import { type EdgeSession, openEdgeSession } from './edge-session.js';
import { pinHostKey } from './known-hosts.js';
import { type SshTarget, sshTargetFor, waitReady } from './ssh.js';

/** How an edge comes to run NixOS: booted from an image that has it, or installed over SSH by nixos-anywhere. */
export type EdgeBootstrap = 'none' | 'nixos-anywhere';

/** How long a fresh droplet may take to answer SSH (boot, cloud-init) before `up` gives up. */
const SSH_READY_TIMEOUT_MS = 10 * 60_000;
/** A re-attached edge answers quickly or is not running NixOS on its SSH port yet. */
const REATTACH_PROBE_MS = 60_000;

export interface ReachEdgeInput {
  paths: TunnelPaths;
  host: string;
  sshPort: number;
  /** The host key the edge must present (public line), pinned before first contact. */
  hostPublicKey: string;
  bootstrap: EdgeBootstrap;
  /** True when this run created the edge (so it cannot run NixOS yet under nixos-anywhere). */
  created: boolean;
  /** Called before nixos-anywhere starts (the tunnel's phase becomes "bootstrapping"). */
  onBootstrap(): Promise<void>;
}

export async function reachEdge(
  ctx: Pick<Context, 'clock' | 'emit'>,
  input: ReachEdgeInput,
  signal: AbortSignal,
): Promise<EdgeSession> {
  const { paths } = input;
  const target = sshTargetFor(paths, input.host, input.sshPort);
  await pinHostKey(paths.knownHosts, target.host, target.port, input.hostPublicKey);
  const wait = { clock: ctx.clock, emit: ctx.emit, signal };
  if (input.bootstrap === 'nixos-anywhere') {
    if (!input.created && (await runsNixosAlready(target, wait)))
      return openEdgeSession(target, { signal, emit: ctx.emit });
    await input.onBootstrap();
    await bootstrapEdge(
      { exec: systemStreamExec, clock: ctx.clock, waitReady },
      {
        method: 'nixos-anywhere',
        edgeDir: paths.edgeDir,
        target,
        hostKeyPrivatePath: paths.hostKeyPrivate,
        hostKeyPublicPath: paths.hostKeyPublic,
        waitTimeoutMs: SSH_READY_TIMEOUT_MS,
        emit: ctx.emit,
        signal,
      },
    );
  } else {
    await waitReady(target, { ...wait, timeoutMs: SSH_READY_TIMEOUT_MS });
  }
  return openEdgeSession(target, { signal, emit: ctx.emit });
}

async function runsNixosAlready(
  target: SshTarget,
  wait: { clock: Context['clock']; emit: Context['emit']; signal: AbortSignal },
): Promise<boolean> {
  try {
    await waitReady(target, { ...wait, timeoutMs: REATTACH_PROBE_MS });
  } catch (error) {
    if (wait.signal.aborted) throw error;
    return false;
  }
  const session = await openEdgeSession(target, { signal: wait.signal, emit: wait.emit });
  try {
    return await session.runsNixos();
  } finally {
    await session.close();
  }
}
