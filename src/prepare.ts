// Everything `plan` and `up` share before touching a provider: the tunnel's identity on this host (addressing
// that avoids local networks and other tunnels, keys) and the pure plan built from it.
import { type HostNetwork, allocate, hostNetworksFromIp } from './addressing.js';
import type { Exec } from './lib/context.js';
import { EnvironmentError } from './lib/errors.js';
import { kernelForwardingAvailable } from './home/kernel-forwarding.js';
import { type HomeHostFacts, type Plan, plan } from './plan.js';
import type { TunnelSpec } from './spec/tunnel.js';
import { type TunnelPaths, tunnelPaths } from './state/paths.js';
import type { EdgeIdentity } from './state/edge-info.js';
import {
  type TunnelKeys,
  ensureTunnelKeys,
  listTunnelRecords,
  readTunnelRecord,
  writeTunnelRecord,
} from './state/tunnel-record.js';

export interface Prepared {
  plan: Plan;
  paths: TunnelPaths;
  keys: TunnelKeys;
  /** What the edge is created with: the tunnel's SSH key to authorize and the host key it must present. */
  identity: EdgeIdentity;
  /** What this host offers the home side (kernel forwarding, its own addresses), as the plan was made with. */
  homeHost: HomeHostFacts;
}

interface AddrEntry {
  addr_info?: Array<{ family?: string; local?: string }>;
}

/** Whether this host can forward in the kernel, and its own IPv4 addresses (a destination among them is local). */
export async function readHomeHostFacts(exec: Exec): Promise<HomeHostFacts> {
  const addr = await exec('ip', ['-j', '-4', 'addr', 'show'], { reject: false }).catch(() => undefined);
  let entries: AddrEntry[] = [];
  try {
    entries = JSON.parse(addr?.stdout || '[]') as AddrEntry[];
  } catch {
    entries = [];
  }
  const localAddresses = entries.flatMap((entry) =>
    (entry.addr_info ?? []).flatMap((info) => (info.family === 'inet' && info.local ? [info.local] : [])),
  );
  return { kernelForwarding: await kernelForwardingAvailable(exec), localAddresses };
}

export async function readHostNetworks(exec: Exec): Promise<HostNetwork[]> {
  try {
    const addr = await exec('ip', ['-j', '-4', 'addr', 'show']);
    const route = await exec('ip', ['-j', '-4', 'route', 'show', 'table', 'all']);
    return hostNetworksFromIp(addr.stdout, route.stdout);
  } catch (error) {
    throw new EnvironmentError(`could not read this host's addresses and routes: ${(error as Error).message}`, {
      hint: 'install iproute2 (the "ip" command)',
    });
  }
}

export async function prepareTunnel(exec: Exec, root: string, spec: TunnelSpec, now: Date): Promise<Prepared> {
  const paths = tunnelPaths(root, spec.name);
  const previous = await readTunnelRecord(paths);
  const others = (await listTunnelRecords(root)).filter((r) => r.name !== spec.name);
  const allocation = allocate({
    name: spec.name,
    pool: spec.addressPool,
    ...(spec.ipv6 ? { ipv6Pool: spec.ipv6Pool } : {}),
    hostNetworks: await readHostNetworks(exec),
    otherTunnels: others,
    ...(previous ? { previous: previous.allocation } : {}),
    ...(spec.homeInterface !== undefined ? { homeInterface: spec.homeInterface } : {}),
  });
  if (!previous || JSON.stringify(previous.allocation) !== JSON.stringify(allocation)) {
    await writeTunnelRecord(paths, spec.name, allocation, now);
  }
  const keys = await ensureTunnelKeys(paths, spec.name);
  const homeHost = await readHomeHostFacts(exec);
  return {
    paths,
    keys,
    homeHost,
    identity: {
      sshPublicKey: keys.sshPublicKey,
      hostKey: { privateKey: keys.hostPrivateKey, publicKey: keys.hostPublicKey },
    },
    plan: plan({
      spec,
      allocation,
      homeHost,
      keys: { homeWireguardPublicKey: keys.wireguardPublicKey, sshPublicKey: keys.sshPublicKey },
    }),
  };
}
