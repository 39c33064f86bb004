// Everything `plan` and `up` share before touching a provider: the tunnel's identity on this host (addressing
// that avoids local networks and other tunnels, keys) and the pure plan built from it.
import { type HostNetwork, allocate, hostNetworksFromIp } from './addressing.js';
import type { Exec } from './lib/context.js';
import { EnvironmentError } from './lib/errors.js';
import { type Plan, plan } from './plan.js';
import type { TunnelSpec } from './spec/tunnel.js';
import { type TunnelPaths, tunnelPaths } from './state/paths.js';
import type { EdgeIdentity } from './state/edge-info.js';
import { type TunnelKeys, ensureTunnelKeys, listTunnelRecords, readTunnelRecord, writeTunnelRecord } from './state/tunnel-record.js';

export interface Prepared {
  plan: Plan;
  paths: TunnelPaths;
  keys: TunnelKeys;
  /** What the edge is created with: the tunnel's SSH key to authorize and the host key it must present. */
  identity: EdgeIdentity;
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
  });
  if (!previous || JSON.stringify(previous.allocation) !== JSON.stringify(allocation)) {
    await writeTunnelRecord(paths, spec.name, allocation, now);
  }
  const keys = await ensureTunnelKeys(paths, spec.name);
  return {
    paths,
    keys,
    identity: { sshPublicKey: keys.sshPublicKey, hostKey: { privateKey: keys.hostPrivateKey, publicKey: keys.hostPublicKey } },
    plan: plan({ spec, allocation, keys: { homeWireguardPublicKey: keys.wireguardPublicKey, sshPublicKey: keys.sshPublicKey } }),
  };
}
