// The home side of a running tunnel as one unit: WireGuard link, policy routing (nftables forwarding on the edge,
// kernel forwarding at home) and what carries the ports to the destination: the kernel's nftables table or the
// userspace forwarder (neither when the destination is "none"). Started in that order, stopped in the reverse
// order within a bounded time, and one `failure` promise for any part that breaks while it runs. A table of this
// tunnel that a crashed run left behind is removed first, whichever path this run takes.
import type { Context } from '../lib/context.js';
import type { SpawnDaemon } from '../lib/daemon.js';
import { DataPlaneError } from '../lib/errors.js';
import type { HomeConfig } from '../plan.js';
import type { TunnelStatus } from '../state/status.js';
import { type Forwarder, type ForwarderOptions, startForwarder } from './forwarder/index.js';
import { type KernelForwarding, kernelForwardingUp, removeKernelForwarding } from './kernel-forwarding.js';
import { policyRoutingDown, policyRoutingUp } from './routing.js';
import { type LinkStatus, type WireguardImplementation, type WireguardLink, wireguardUp } from './wireguard.js';

export interface HomeDataPlaneInput {
  home: HomeConfig;
  /** The home WireGuard private key file (tunnelPaths(root, name).wireguardPrivate). */
  privateKeyFile: string;
  edgePublicKey: string;
  /** "203.0.113.7:51820" */
  edgeEndpoint: string;
  forwarder?: Omit<ForwarderOptions, 'emit'>;
  /** How often the link is checked (a kernel link has no process to watch). Default 10 s; 0: never. */
  monitorIntervalMs?: number;
  implementation?: 'auto' | WireguardImplementation;
}

export type DataPlaneSample = NonNullable<TunnelStatus['dataPlane']>;

export interface HomeDataPlane {
  link: WireguardLink;
  forwarder: Forwarder | undefined;
  /** The nftables path, when the home side forwards in the kernel. */
  kernel: KernelForwarding | undefined;
  /** Link status and forwarder (or nftables) counters in the shape status.json records. */
  sample(): Promise<DataPlaneSample>;
  /** Follows the edge to a new address without dropping the link. */
  setEndpoint(endpoint: string): Promise<void>;
  /** Re-establishes the link with the edge in place (peer, keys, endpoint set again); the forwarder keeps running. */
  renewLink(): Promise<void>;
  /**
   * A reload: carries `home.forwards` from now on, in place. Unchanged ports are not touched; removed ones are
   * closed after `graceMs` (forwarder; kernel forwarding leaves their established connections to conntrack).
   * Refuses a change that needs a new link or another forwarding path (interface, addresses, MTU, kernel/proxy).
   */
  updateForwards(home: HomeConfig, graceMs: number): Promise<void>;
  /** Rejects with a DataPlaneError when the link or the forwarder breaks; never resolves. */
  readonly failure: Promise<never>;
  /** Forwarder or kernel table, then routing, then link. Idempotent; bounded in time. */
  stop(): Promise<void>;
}

export interface DataPlaneDeps {
  exec: Context['exec'];
  emit: Context['emit'];
  spawn?: SpawnDaemon;
}

const FORWARDER_CLOSE_MS = 5_000;

export async function startHomeDataPlane(deps: DataPlaneDeps, input: HomeDataPlaneInput): Promise<HomeDataPlane> {
  const { home } = input;
  const link = await wireguardUp(deps, {
    interface: home.interface,
    privateKeyFile: input.privateKeyFile,
    addresses: [home.address, ...(home.address6 ? [home.address6] : [])],
    mtu: home.mtu,
    peer: {
      publicKey: input.edgePublicKey,
      endpoint: input.edgeEndpoint,
      allowedIps: home.allowedIps,
      persistentKeepalive: home.persistentKeepalive,
    },
    ...(input.implementation ? { implementation: input.implementation } : {}),
  });
  const routing = home.policyRouting ? { interface: home.interface, routing: home.policyRouting } : undefined;
  let forwarder: Forwarder | undefined;
  let kernel: KernelForwarding | undefined;
  try {
    // nft may be missing or not permitted where the forwarder is used: then there is no stale table either.
    await removeKernelForwarding(deps.exec, home.interface).catch(() => {});
    if (routing) await policyRoutingUp(deps.exec, routing);
    if (home.forwarding === 'kernel') {
      const mark = home.policyRouting?.fwmark;
      if (mark === undefined)
        throw new DataPlaneError('kernel forwarding at home needs a routing mark, and the plan has none');
      kernel = await kernelForwardingUp(deps.exec, {
        interface: home.interface,
        address: home.address.replace(/\/\d+$/, ''),
        ...(home.address6 ? { address6: home.address6.replace(/\/\d+$/, '') } : {}),
        mark,
        forwards: home.forwards,
        masquerade: home.masquerade,
      });
      deps.emit({
        type: 'log',
        level: 'debug',
        message: `kernel forwarding on ${home.interface} (nftables table ${kernel.table})`,
      });
    } else if (home.forwards.length > 0) {
      forwarder = await startForwarder(home.forwards, { ...input.forwarder, emit: deps.emit });
    }
  } catch (error) {
    await kernel?.down().catch(() => {});
    if (routing) await policyRoutingDown(deps.exec, routing).catch(() => {});
    await link.down().catch(() => {});
    throw error;
  }

  let rejectFailure: (error: DataPlaneError) => void = () => {};
  const failure = new Promise<never>((_, reject) => (rejectFailure = reject));
  failure.catch(() => {});
  link.failure.catch(rejectFailure);
  forwarder?.failure.catch(rejectFailure);

  let monitor: NodeJS.Timeout | undefined;
  const interval = input.monitorIntervalMs ?? 10_000;
  if (interval > 0) {
    monitor = setInterval(() => {
      link.status().catch((error: unknown) => {
        rejectFailure(
          error instanceof DataPlaneError
            ? error
            : new DataPlaneError(`WireGuard link ${home.interface} failed: ${String(error)}`),
        );
      });
    }, interval);
    monitor.unref();
  }

  let stopping: Promise<void> | undefined;
  let current = home;
  return {
    link,
    forwarder,
    kernel,
    failure,
    updateForwards: async (next, graceMs) => {
      const unchangeable = linkDifference(current, next);
      if (unchangeable) {
        throw new DataPlaneError(`the home side cannot change ${unchangeable} while running`, {
          hint: 'stop up and start it again to apply this change',
        });
      }
      if (kernel) await kernel.update(next.forwards, next.masquerade);
      else if (forwarder) await forwarder.update(next.forwards, graceMs);
      current = next;
    },
    setEndpoint: (endpoint) => link.setEndpoint(endpoint),
    renewLink: () => link.renewPeer(),
    sample: async () => {
      const status: LinkStatus = await link.status();
      return {
        sampledAt: new Date().toISOString(),
        interface: status.interface,
        implementation: link.implementation,
        latestHandshake: status.latestHandshake,
        rxBytes: status.rxBytes,
        txBytes: status.txBytes,
        endpoint: status.endpoint,
        ports: kernel ? await kernel.counters() : (forwarder?.counters() ?? []),
      };
    },
    stop: () => {
      stopping ??= (async () => {
        if (monitor) clearInterval(monitor);
        await forwarder?.close(FORWARDER_CLOSE_MS);
        await kernel?.down().catch(() => {});
        if (routing) await policyRoutingDown(deps.exec, routing).catch(() => {});
        await link.down();
      })();
      return stopping;
    },
  };
}

/** What of the home side a reload cannot change in place (it needs a new link or forwarding path), if anything. */
export function linkDifference(before: HomeConfig, after: HomeConfig): string | undefined {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (before.interface !== after.interface) return 'the interface';
  if (before.address !== after.address || before.address6 !== after.address6) return 'the tunnel addresses';
  if (before.mtu !== after.mtu) return 'the MTU';
  if (!same(before.allowedIps, after.allowedIps) || before.persistentKeepalive !== after.persistentKeepalive)
    return 'the WireGuard peer';
  if (!same(before.policyRouting, after.policyRouting)) return 'the policy routing';
  if (before.forwarding !== after.forwarding)
    return `the forwarding path (${before.forwarding} to ${after.forwarding})`;
  // No forwarder runs with --destination none: one cannot appear in place (nor go away).
  if (before.forwarding !== 'kernel' && (before.forwards.length === 0) !== (after.forwards.length === 0))
    return 'the destination to or from "none"';
  return undefined;
}

/**
 * Blocks until the signal aborts (orderly stop, resolves) or failure rejects (stop, then rethrow the failure), and
 * always runs stop exactly once. A second signal is the CLI's business: it exits at once.
 */
export async function runUntilStopped(
  signal: AbortSignal,
  failure: Promise<never>,
  stop: () => Promise<void>,
): Promise<void> {
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    onAbort = () => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([aborted, failure]);
  } catch (error) {
    // The failure is what the user needs to see; a teardown problem on top of it would only hide it.
    await stop().catch(() => {});
    throw error;
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
  await stop();
}
