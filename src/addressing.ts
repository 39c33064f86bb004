// Tunnel addressing: each tunnel gets a point-to-point /30 from a pool (edge = first host, home = second host) and,
// when it carries IPv6, a ULA /64. The slot is derived from the tunnel name so it is stable, and probed onward when
// it collides with an address or route on this host or with another tunnel's allocation.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { Exec } from './lib/context.js';
import { EnvironmentError, UsageError } from './lib/errors.js';
import { ipAddressesOf, ipRoutesOf } from './lib/ip-json.js';
import {
  type Cidr4,
  EDGE_INTERFACE_PREFIX,
  HOME_INTERFACE_PREFIX,
  intToIpv4,
  ipv4ToInt,
  parseCidr4,
} from './spec/primitives.js';

export interface Allocation {
  /** Slot number inside the pool. */
  index: number;
  pool: string;
  /** Home WireGuard interface name (≤ 15 bytes, unique on this host). */
  interface: string;
  /** Edge WireGuard interface name. */
  edgeInterface: string;
  /** "10.50.7.2/30" */
  homeAddress: string;
  /** "10.50.7.1/30" */
  edgeAddress: string;
  homeAddress6?: string;
  edgeAddress6?: string;
}

/** An IPv4 network in use on this host: an interface address or a route. */
export interface HostNetwork {
  cidr: string;
  /** The device it belongs to; networks on the tunnel's own (stale) interface are not collisions. */
  device?: string;
}

export interface OtherTunnel {
  name: string;
  allocation: Pick<Allocation, 'index' | 'pool' | 'interface' | 'homeAddress'>;
}

export interface AllocationRequest {
  name: string;
  pool: string;
  /** Set when the tunnel carries IPv6: the /48 its /64 comes from. */
  ipv6Pool?: string;
  hostNetworks: readonly HostNetwork[];
  otherTunnels: readonly OtherTunnel[];
  /** This tunnel's allocation from an earlier run; kept when still free. */
  previous?: Allocation;
  /** The home interface name the user gave (spec homeInterface, "isf-…"); absent: one is picked from the name. */
  homeInterface?: string;
}

export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** A ≤ 10 character id for interface names: the name itself when short, else a prefix plus a hash. */
export function shortIdOf(name: string, salt = 0): string {
  if (name.length <= 10 && salt === 0) return name;
  const hash = createHash('sha256').update(`${name}#${salt}`).digest('hex').slice(0, 4);
  return `${name.slice(0, 5).replace(/-+$/, '')}-${hash}`;
}

export function allocate(request: AllocationRequest): Allocation {
  const pool = parseCidr4(request.pool);
  if (!pool)
    throw new UsageError(`address pool "${request.pool}" is not an IPv4 network`, { hint: 'e.g. 10.50.0.0/16' });
  const slots = 2 ** (30 - pool.prefix);
  const interfaceName =
    request.homeInterface === undefined
      ? pickInterface(request.name, request.otherTunnels)
      : claimInterface(request.homeInterface, request.name, request.otherTunnels);
  const ownDevices = new Set([interfaceName]);
  if (request.previous) ownDevices.add(request.previous.interface);
  const taken = request.hostNetworks
    .filter((n) => !(n.device && ownDevices.has(n.device)))
    .map((n) => ({ ...n, parsed: parseCidr4(n.cidr) }))
    .filter((n): n is HostNetwork & { parsed: Cidr4 } => n.parsed !== undefined && n.parsed.prefix > 0);
  const othersInPool = new Set(
    request.otherTunnels
      .filter((t) => t.name !== request.name && t.allocation.pool === request.pool)
      .map((t) => t.allocation.index),
  );
  const otherAddresses = request.otherTunnels
    .filter((t) => t.name !== request.name)
    .map((t) => t.allocation.homeAddress);

  const isFree = (index: number): boolean => {
    if (index < 0 || index >= slots || othersInPool.has(index)) return false;
    const slot: Cidr4 = { network: pool.network + index * 4, prefix: 30 };
    if (otherAddresses.some((address) => overlaps(slot, parseCidr4(address.replace(/\/\d+$/, '/30'))!))) return false;
    return !taken.some((n) => overlaps(slot, n.parsed));
  };

  const build = (index: number): Allocation => {
    const base = pool.network + index * 4;
    const allocation: Allocation = {
      index,
      pool: request.pool,
      interface: interfaceName,
      edgeInterface: EDGE_INTERFACE_PREFIX + interfaceName.slice(HOME_INTERFACE_PREFIX.length),
      homeAddress: `${intToIpv4(base + 2)}/30`,
      edgeAddress: `${intToIpv4(base + 1)}/30`,
    };
    if (request.ipv6Pool) {
      const prefix = ula64(request.ipv6Pool, index);
      allocation.homeAddress6 = `${prefix}::2/64`;
      allocation.edgeAddress6 = `${prefix}::1/64`;
    }
    return allocation;
  };

  const previous = request.previous;
  if (previous && previous.pool === request.pool && isFree(previous.index)) return build(previous.index);
  const start = fnv1a(request.name) % slots;
  for (let step = 0; step < slots; step++) {
    const index = (start + step) % slots;
    if (isFree(index)) return build(index);
  }
  const blocker = taken.find((n) => overlaps(pool, n.parsed));
  throw new UsageError(`address pool ${request.pool} has no free /30 left on this host`, {
    hint: blocker
      ? `route or address ${blocker.cidr}${blocker.device ? ` on ${blocker.device}` : ''} covers it; choose ` +
        `another pool with --address-pool`
      : 'choose a larger pool with --address-pool, or bring some tunnels down',
  });
}

function pickInterface(name: string, others: readonly OtherTunnel[]): string {
  const used = new Set(others.filter((t) => t.name !== name).map((t) => t.allocation.interface));
  for (let salt = 0; salt < 64; salt++) {
    const candidate = HOME_INTERFACE_PREFIX + shortIdOf(name, salt);
    if (!used.has(candidate)) return candidate;
  }
  throw new UsageError(`no unique interface name found for tunnel "${name}"`, { hint: 'rename the tunnel' });
}

/** A given interface name is used as it is, or refused when another tunnel on this host already has it. */
function claimInterface(wanted: string, name: string, others: readonly OtherTunnel[]): string {
  const holder = others.find((t) => t.name !== name && t.allocation.interface === wanted);
  if (holder) {
    throw new UsageError(`homeInterface: ${wanted} is already the interface of tunnel "${holder.name}" on this host`, {
      hint: `give tunnel "${name}" another name for its interface (homeInterface in its file, or --home-interface)`,
    });
  }
  return wanted;
}

export function overlaps(a: Cidr4, b: Cidr4): boolean {
  const aEnd = a.network + 2 ** (32 - a.prefix) - 1;
  const bEnd = b.network + 2 ** (32 - b.prefix) - 1;
  return a.network <= bEnd && b.network <= aEnd;
}

/** "fd49:6e6e:6973::/48", 7 → "fd49:6e6e:6973:7" (the /64 prefix without its trailing "::"). */
export function ula64(pool48: string, index: number): string {
  const groups = expandIpv6(pool48.replace(/\/48$/, ''));
  return [...groups.slice(0, 3), index.toString(16)].map((g) => g.replace(/^0+(?=.)/, '')).join(':');
}

function expandIpv6(address: string): string[] {
  if (isIP(address) !== 6) throw new UsageError(`"${address}" is not an IPv6 address`);
  const [head, tail] = address.split('::') as [string, string | undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  return [...headGroups, ...Array(missing).fill('0'), ...tailGroups];
}

/** Parses `ip -j addr` and `ip -j route` output into the networks in use on this host. */
export function hostNetworksFromIp(addrJson: string, routeJson: string): HostNetwork[] {
  const networks: HostNetwork[] = [];
  for (const info of ipAddressesOf(addrJson)) {
    if (info.family === 'inet' && info.local && info.prefixlen !== undefined) {
      networks.push({ cidr: `${info.local}/${info.prefixlen}`, ...(info.device ? { device: info.device } : {}) });
    }
  }
  for (const route of ipRoutesOf(routeJson)) {
    if (!route.dst || route.dst === 'default') continue;
    if (route.type && !['unicast', 'local', 'blackhole', 'unreachable', 'prohibit'].includes(route.type)) continue;
    const cidr = route.dst.includes('/') ? route.dst : `${route.dst}/32`;
    if (!parseCidr4(cidr)) continue;
    // The loopback block is always there and never part of a tunnel pool worth refusing.
    if (ipv4ToInt(cidr.split('/')[0]!) >>> 24 === 127) continue;
    networks.push({ cidr, ...(route.dev ? { device: route.dev } : {}) });
  }
  return networks;
}

/** This namespace's IPv4 networks (interface addresses with their prefix, routes of every table), with devices. */
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
