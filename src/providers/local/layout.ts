// The shape of one local edge, pure: namespace and link names, addresses and runtime file paths, all derived from a
// random id, a slot number and three /24 address blocks. Slots keep several local edges (and parallel test runs)
// apart: the slot's root-namespace link name is claimed atomically by creating it, and every address is unique per
// slot. The blocks are picked when the edge is made, among ranges reserved for documentation and benchmarks, so
// that none of them holds an address or route of this host (a LAN on 192.0.2.0/24 would otherwise take the
// client's replies out of the wrong interface).
import { join } from 'node:path';
import type { HostNetwork } from '../../addressing.js';
import { overlaps } from '../../addressing.js';
import { ProviderError } from '../../lib/errors.js';
import { ipAddressesOf, ipRoutesOf } from '../../lib/ip-json.js';
import { parseCidr4 } from '../../spec/primitives.js';

/**
 * Slots 1..126: in the public block the edge is .<slot> and a destination host .<slot+128>; in the link block the
 * home side of the edge link is .<slot> and of the destination link .<slot+128>; in the client block the internet
 * client is .<slot> (inside its own namespace and the edge's only).
 */
export const SLOT_COUNT = 126;

/** The three /24 blocks of a local edge's addresses, each as its first three octets ("203.0.113"). */
export interface AddressBlocks {
  /** The edge's "public" address and the destination host. */
  public: string;
  /** This namespace's ends of the links to the edge and to the destination. */
  link: string;
  /** The "internet" client. */
  client: string;
}

/** What edges recorded before blocks were picked used, and what each role prefers when it is free. */
export const DEFAULT_BLOCKS: AddressBlocks = { public: '203.0.113', link: '198.51.100', client: '192.0.2' };

/**
 * Where a role goes when its default block is taken: the benchmarking range 198.18.0.0/15 (RFC 2544) first, so the
 * other roles keep their defaults, then the documentation ranges (RFC 5737).
 */
export function blockCandidates(): string[] {
  const benchmark = Array.from({ length: 512 }, (_, i) => `198.${18 + Math.floor(i / 256)}.${i % 256}`);
  return [...benchmark, DEFAULT_BLOCKS.public, DEFAULT_BLOCKS.link, DEFAULT_BLOCKS.client];
}

/** Root-namespace links of local edges (isl<slot>e, isl<slot>d): their /32s are other edges' slots, not collisions. */
const LOCAL_EDGE_LINK = /^isl\d+[ed]$/;

/**
 * Three distinct blocks none of which overlaps an address or route of this host (local edges' own links aside):
 * each role keeps its default block when that is free, else takes the first free candidate. The host is the same
 * for every local edge made at the same time, so they agree on the blocks and their slots keep them apart.
 */
export function pickBlocks(hostNetworks: readonly HostNetwork[]): AddressBlocks {
  const taken = hostNetworks
    .filter((n) => !(n.device && LOCAL_EDGE_LINK.test(n.device)))
    .flatMap((n) => {
      const cidr = parseCidr4(n.cidr);
      return cidr && cidr.prefix > 0 ? [{ network: n, cidr }] : [];
    });
  const blocker = (block: string) => taken.find((t) => overlaps(parseCidr4(`${block}.0/24`)!, t.cidr))?.network;
  const used = new Set<string>();
  const take = (preferred: string): string => {
    const block = [preferred, ...blockCandidates()].find((b) => !used.has(b) && blocker(b) === undefined);
    if (block === undefined) {
      const example = blocker(preferred);
      throw new ProviderError(
        'no free address block left for a local edge: every documentation and benchmarking /24 holds an address ' +
          'or route of this host',
        {
          hint:
            `the local provider needs three of 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 198.18.0.0/15 ` +
            `unused here` +
            `${example ? ` (${example.cidr}${example.device ? ` on ${example.device}` : ''} is in the way)` : ''}`,
        },
      );
    }
    used.add(block);
    return block;
  };
  return { public: take(DEFAULT_BLOCKS.public), link: take(DEFAULT_BLOCKS.link), client: take(DEFAULT_BLOCKS.client) };
}

/**
 * IPv6 of a local edge (made with --ipv6): a /48 of the documentation prefix 2001:db8::/32 (RFC 3849), written as
 * its first three groups ("2001:db8:1f"). The edge's public address is <block>:1::<slot>, the internet client
 * <block>:3::<slot> (both in hex), each a /128 with a route to the other, inside the two namespaces only.
 */
export const DEFAULT_BLOCK6 = '2001:db8:1f';

/** Where the IPv6 block goes when the default holds an address or route of this host. */
export function block6Candidates(): string[] {
  return [DEFAULT_BLOCK6, ...Array.from({ length: 256 }, (_, i) => `2001:db8:${(0x100 + i).toString(16)}`)];
}

/** An IPv6 network as a 128-bit number and a prefix length, or undefined when the text is none. */
export function parseCidr6(text: string): { network: bigint; prefix: number } | undefined {
  const [address, prefixText] = text.split('/') as [string, string | undefined];
  const prefix = prefixText === undefined ? 128 : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 128 || !address.includes(':')) return undefined;
  const [head, tail, extra] = address.split('::');
  if (extra !== undefined) return undefined;
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const missing = 8 - groups(head).length - groups(tail).length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const all = [...groups(head), ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...groups(tail)];
  if (all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const value = all.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(128 - prefix);
  return { network: value & mask, prefix };
}

export function overlaps6(a: { network: bigint; prefix: number }, b: { network: bigint; prefix: number }): boolean {
  const end = (c: typeof a) => c.network + (1n << BigInt(128 - c.prefix)) - 1n;
  return a.network <= end(b) && b.network <= end(a);
}

/**
 * The first IPv6 /48 candidate that overlaps no IPv6 address or route of this host (link-local, multicast and the
 * catch-all default aside: they hold no documentation address). Local edges' own addresses live only in their
 * namespaces, so every local edge picks the same block and the slots keep them apart.
 */
export function pickBlock6(hostNetworks6: readonly HostNetwork[]): string {
  const taken = hostNetworks6.flatMap((n) => {
    const cidr = parseCidr6(n.cidr);
    return cidr && cidr.prefix > 0 ? [{ network: n, cidr }] : [];
  });
  const blocker = (block: string) => taken.find((t) => overlaps6(parseCidr6(`${block}::/48`)!, t.cidr))?.network;
  const block = block6Candidates().find((b) => blocker(b) === undefined);
  if (block === undefined) {
    const example = blocker(DEFAULT_BLOCK6);
    throw new ProviderError(
      'no free IPv6 block left for a local edge: every candidate /48 of 2001:db8::/32 holds an address or route ' +
        'of this host',
      {
        hint:
          `the local provider needs a /48 of 2001:db8::/32 unused here` +
          `${example ? ` (${example.cidr}${example.device ? ` on ${example.device}` : ''} is in the way)` : ''}; ` +
          `or drop --ipv6`,
      },
    );
  }
  return block;
}

export interface LocalEdgeLayout {
  id: string;
  slot: number;
  blocks: AddressBlocks;
  /** Set when the edge has IPv6. */
  block6?: string;
  namespaces: {
    edge: string;
    /** The "internet": a client that reaches the edge's public address. */
    client: string;
    /** An optional destination host, reachable from the home side (this namespace). */
    destination: string;
  };
  links: {
    /** Root-namespace end of the home ↔ edge veth. Its name is the slot's claim. */
    home: string;
    /** Root-namespace end of the home ↔ destination veth. */
    destination: string;
    /** Ends inside the namespaces. */
    edgeHomeSide: string;
    edgeClientSide: string;
    clientSide: string;
    destinationSide: string;
  };
  addresses: {
    /** The edge's "public" IPv4. */
    edge: string;
    /** This namespace's address on the link to the edge. */
    home: string;
    client: string;
    destination: string;
    /** This namespace's address on the link to the destination. */
    destinationGateway: string;
    /** The edge's public IPv6 and the internet client's, when the edge has IPv6. */
    edge6?: string;
    client6?: string;
  };
}

export function layoutOf(
  id: string,
  slot: number,
  blocks: AddressBlocks = DEFAULT_BLOCKS,
  block6?: string,
): LocalEdgeLayout {
  if (!/^[0-9a-f]{8}$/.test(id)) throw new Error(`local edge id must be 8 hex digits: ${id}`);
  if (!Number.isInteger(slot) || slot < 1 || slot > SLOT_COUNT)
    throw new Error(`local edge slot out of range: ${slot}`);
  for (const block of Object.values(blocks)) {
    if (!parseCidr4(`${block}.0/24`) || block.split('.').length !== 3)
      throw new Error(`local edge address block must be three octets: ${block}`);
  }
  if (block6 !== undefined && !(/^2001:db8:[0-9a-f]{1,4}$/.test(block6) && parseCidr6(`${block6}::/48`))) {
    throw new Error(`local edge IPv6 block must be a /48 of 2001:db8::/32 as three groups: ${block6}`);
  }
  const host6 = slot.toString(16);
  return {
    id,
    slot,
    blocks,
    ...(block6 !== undefined ? { block6 } : {}),
    namespaces: { edge: `isf-edge-${id}`, client: `isf-inet-${id}`, destination: `isf-dest-${id}` },
    links: {
      home: `isl${slot}e`,
      destination: `isl${slot}d`,
      edgeHomeSide: 'home0',
      edgeClientSide: 'inet0',
      clientSide: 'eth0',
      destinationSide: 'eth0',
    },
    addresses: {
      edge: `${blocks.public}.${slot}`,
      home: `${blocks.link}.${slot}`,
      client: `${blocks.client}.${slot}`,
      destination: `${blocks.public}.${slot + 128}`,
      destinationGateway: `${blocks.link}.${slot + 128}`,
      ...(block6 !== undefined ? { edge6: `${block6}:1::${host6}`, client6: `${block6}:3::${host6}` } : {}),
    },
  };
}

/** Slots in the order to try: starting from one derived from the id, so parallel creators rarely collide. */
export function slotCandidates(id: string): number[] {
  const start = parseInt(id.slice(0, 6), 16) % SLOT_COUNT;
  return Array.from({ length: SLOT_COUNT }, (_, i) => ((start + i) % SLOT_COUNT) + 1);
}

/** Files of one local edge under the runtime root: <root>/<tunnel>/… */
export function runtimePaths(root: string, tunnel: string) {
  const dir = join(root, tunnel);
  return {
    dir,
    record: join(dir, 'edge-record.json'),
    /** The pid of the process creating the edge, until its record is written. */
    creating: join(dir, 'creating.pid'),
    sshdConfig: join(dir, 'sshd_config'),
    sshdPid: join(dir, 'sshd.pid'),
    sshdLog: join(dir, 'sshd.log'),
    hostKey: join(dir, 'ssh_host_ed25519_key'),
    authorizedKeys: join(dir, 'authorized_keys'),
    /** The client key the edge was created for (authorized_keys follows deploys; this does not). */
    creatorKey: join(dir, 'creator_key.pub'),
    bin: join(dir, 'bin'),
    /** Root's home on the edge: empty, as on a fresh droplet, so sessions never read this host's dotfiles. */
    home: join(dir, 'home'),
    /** The edge's WireGuard private key: made on the edge, 0600, never leaves this directory. */
    wireguardPrivate: join(dir, 'wireguard', 'private'),
    agent: join(dir, 'agent'),
  };
}

export type RuntimePaths = ReturnType<typeof runtimePaths>;

/** Where the edge agent keeps its generations and the processes it runs. */
export function agentPaths(agentDir: string) {
  return {
    dir: agentDir,
    state: join(agentDir, 'state.json'),
    lock: join(agentDir, 'lock'),
    generations: join(agentDir, 'generations'),
    configHash: join(agentDir, 'config-hash'),
    nginxDir: join(agentDir, 'nginx'),
    nginxConf: join(agentDir, 'nginx', 'nginx.conf'),
    nginxPid: join(agentDir, 'nginx', 'nginx.pid'),
    nginxErrorLog: join(agentDir, 'nginx', 'error.log'),
    wireguardLog: join(agentDir, 'wireguard-go.log'),
    watcherLog: join(agentDir, 'watcher.log'),
    /** Settings for innisfree-edge-status (nix/edge-status.sh), rewritten on every activation. */
    statusEnv: join(agentDir, 'status.env'),
  };
}

export type AgentPaths = ReturnType<typeof agentPaths>;

export function generationDir(paths: AgentPaths, generation: number): string {
  return join(paths.generations, String(generation));
}

/**
 * Parses `ip -j -6 addr` and `ip -j -6 route show table all` into this host's IPv6 networks: global and ULA
 * addresses with their prefix and the routes of every table; link-local, multicast, loopback and default routes
 * are left out (no documentation address lies in them).
 */
export function hostNetworks6FromIp(addrJson: string, routeJson: string): HostNetwork[] {
  const ignored = (cidr: string) => /^(fe[89ab][0-9a-f]:|ff[0-9a-f]{2}:|::1(\/|$)|::\/0$)/i.test(cidr);
  const networks: HostNetwork[] = [];
  for (const info of ipAddressesOf(addrJson)) {
    if (info.family !== 'inet6' || !info.local || info.prefixlen === undefined) continue;
    const cidr = `${info.local}/${info.prefixlen}`;
    if (!ignored(cidr)) networks.push({ cidr, ...(info.device ? { device: info.device } : {}) });
  }
  for (const route of ipRoutesOf(routeJson)) {
    if (!route.dst || route.dst === 'default') continue;
    const cidr = route.dst.includes('/') ? route.dst : `${route.dst}/128`;
    if (!ignored(cidr) && parseCidr6(cidr)) networks.push({ cidr, ...(route.dev ? { device: route.dev } : {}) });
  }
  return networks;
}
