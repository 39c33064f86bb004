// Shared pieces for tests of the local provider: a tunnel spec and identity, and a check that a destroyed local
// edge left nothing behind (namespaces, links, routes, processes, files, WireGuard sockets).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { generateSshKeyPair } from '../../src/lib/keys.js';
import type { EdgeIdentity } from '../../src/providers/provider.js';
import { hostNetworksFromIp, overlaps } from '../../src/addressing.js';
import { parseCidr4 } from '../../src/spec/primitives.js';
import type { LocalEdge } from '../../src/providers/local/local-edge-record.js';
import { hostNetworks6FromIp, overlaps6, parseCidr6 } from '../../src/providers/local/layout.js';
import { flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import type { TunnelSpec } from '../../src/spec/tunnel.js';
import { wireguardSocketPath } from '../../src/home/wireguard.js';

/** Why local-provider tests cannot run here, or undefined when they can. */
export function localProviderUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const tool of [
    '/usr/sbin/sshd',
    '/usr/bin/wireguard-go',
    '/usr/bin/wg',
    '/usr/sbin/nginx',
    '/usr/sbin/nft',
    '/usr/bin/socat',
  ]) {
    if (!existsSync(tool)) return `${tool} is not installed`;
  }
  return undefined;
}

/** A tunnel name no parallel test run shares (interface names derived from it are machine-wide). */
export function randomTunnelName(): string {
  return `t${randomBytes(3).toString('hex')}`;
}

export function specFor(name: string, ports: string, extra: Record<string, unknown> = {}): TunnelSpec {
  return resolveTunnelSpec([flagLayer({ name, ports, provider: 'local', ...extra })]);
}

export function identityFor(name: string): EdgeIdentity & { clientPrivateKey: string } {
  const client = generateSshKeyPair(`innisfree-${name}`);
  const host = generateSshKeyPair(`innisfree-${name}-edge`);
  return {
    sshPublicKey: client.publicKey,
    hostKey: { privateKey: host.privateKey, publicKey: host.publicKey },
    clientPrivateKey: client.privateKey,
  };
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

export interface EdgeFootprint {
  namespaces: string[];
  links: string[];
  addresses: string[];
  /**
   * IPv6 prefixes ("2001:db8:1f:", "fd49:6e6e:6973:7:") no address, route (any table) or policy rule of this
   * namespace may name afterwards: the edge's 2001:db8 block and the tunnel's ULA /64.
   */
  ipv6Prefixes: string[];
  pids: number[];
  files: string[];
  sockets: string[];
}

/** What a local edge made, captured while it exists (pids are only listable while the namespaces exist). */
export function footprintOf(
  edge: LocalEdge,
  wireguardInterfaces: string[] = [],
  ipv6Prefixes: string[] = [],
): EdgeFootprint {
  const namespaces = Object.values(edge.layout.namespaces);
  const pids = namespaces
    .filter((ns) => existsSync(`/run/netns/${ns}`))
    .flatMap((ns) => ip(['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number));
  return {
    namespaces,
    links: [edge.layout.links.home, edge.layout.links.destination],
    addresses: [edge.layout.addresses.edge, edge.layout.addresses.destination],
    ipv6Prefixes: [...(edge.layout.block6 ? [`${edge.layout.block6}:`] : []), ...ipv6Prefixes],
    pids,
    files: [edge.paths.dir],
    sockets: wireguardInterfaces.map((i) => wireguardSocketPath(i)),
  };
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function assertNothingLeft(footprint: EdgeFootprint): void {
  for (const ns of footprint.namespaces)
    assert.not.ok(existsSync(`/run/netns/${ns}`), `namespace ${ns} was left behind`);
  const links = ip(['-o', 'link', 'show']);
  for (const link of footprint.links)
    assert.not.match(links, new RegExp(`^\\d+: ${link}[@:]`, 'm'), `link ${link} was left behind`);
  const routes = ip(['-4', 'route', 'show', 'table', 'all']);
  for (const address of footprint.addresses) {
    assert.not.match(
      routes,
      new RegExp(`(^|\\s)${address.replace(/\./g, '\\.')}(\\s|/)`, 'm'),
      `a route to ${address} was left behind`,
    );
  }
  const v6 = [ip(['-6', 'addr', 'show']), ip(['-6', 'route', 'show', 'table', 'all']), ip(['-6', 'rule', 'show'])].join(
    '\n',
  );
  for (const prefix of footprint.ipv6Prefixes) {
    const line = v6.split('\n').find((l) => l.toLowerCase().includes(prefix.toLowerCase()));
    assert.is(line, undefined, `an IPv6 address, route or rule in ${prefix}… was left behind: ${line}`);
  }
  for (const pid of footprint.pids) assert.not.ok(alive(pid), `process ${pid} was left running`);
  for (const file of [...footprint.files, ...footprint.sockets])
    assert.not.ok(existsSync(file), `${file} was left behind`);
}

/**
 * The edge's public address, the home side of its link and the internet client lie in no network of this host
 * (interface addresses and routes of every table), local edges' own isl<slot> links aside.
 */
export function assertNoHostCollision(edge: LocalEdge): void {
  const networks = hostNetworksFromIp(
    ip(['-j', '-4', 'addr', 'show']),
    ip(['-j', '-4', 'route', 'show', 'table', 'all']),
  ).filter((n) => !(n.device && /^isl\d+[ed]$/.test(n.device)));
  const { edge: public4, home, client } = edge.layout.addresses;
  for (const address of [public4, home, client]) {
    const inside = networks.find((n) => overlaps(parseCidr4(`${address}/32`)!, parseCidr4(n.cidr)!));
    assert.is(inside, undefined, `${address} lies in ${inside?.cidr} on ${inside?.device} of this host`);
  }
}

/** The edge's and the client's IPv6 lie in no IPv6 network of this host (addresses and routes of every table). */
export function assertNoHostCollision6(edge: LocalEdge): void {
  const networks = hostNetworks6FromIp(
    ip(['-j', '-6', 'addr', 'show']),
    ip(['-j', '-6', 'route', 'show', 'table', 'all']),
  );
  const { edge6, client6 } = edge.layout.addresses;
  assert.ok(edge6 && client6, 'the edge has IPv6');
  for (const address of [edge6!, client6!]) {
    const inside = networks.find((n) => overlaps6(parseCidr6(`${address}/128`)!, parseCidr6(n.cidr)!));
    assert.is(inside, undefined, `${address} lies in ${inside?.cidr} on ${inside?.device} of this host`);
  }
}
