// Everything `plan` and `up` share before touching a provider: the tunnel's identity on this host (addressing
// that avoids local networks and other tunnels, keys) and the pure plan built from it.
import { allocate, readHostNetworks } from './addressing.js';
import type { Exec } from './lib/context.js';
import { EnvironmentError } from './lib/errors.js';
import { type IpAddress, ipAddressesOf } from './lib/ip-json.js';
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

/** Whether this host can forward in the kernel, and its own IPv4 addresses (a destination among them is local). */
export async function readHomeHostFacts(exec: Exec): Promise<HomeHostFacts> {
  const addr = await exec('ip', ['-j', '-4', 'addr', 'show'], { reject: false }).catch(() => undefined);
  let addresses: IpAddress[];
  try {
    addresses = ipAddressesOf(addr?.stdout ?? '');
  } catch {
    addresses = [];
  }
  const localAddresses = addresses.flatMap((info) => (info.family === 'inet' && info.local ? [info.local] : []));
  return { kernelForwarding: await kernelForwardingAvailable(exec), localAddresses };
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

/** Kernel forwarding that was asked for (or implied by --masquerade) must be possible here, before any edge exists. */
export function requireKernelForwardingHere(spec: TunnelSpec, chosen: string, kernelAvailable: boolean): void {
  const wanted =
    spec.homeForwarding === 'kernel' ? '--home-forwarding kernel' : spec.masquerade ? '--masquerade' : undefined;
  if (wanted === undefined || (chosen === 'kernel' && kernelAvailable)) return;
  throw new EnvironmentError(
    `${wanted} needs kernel forwarding at home, and nft is missing here or not permitted (root or CAP_NET_ADMIN)`,
    {
      hint:
        'install nftables and run innisfree as root, or use --home-forwarding proxy (the service then sees this ' +
        'host as the client)',
    },
  );
}
