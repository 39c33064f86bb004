// Port mappings: PUBLIC[:LOCAL][/PROTO][@DESTINATION], with ranges on either side. Every invalid entry is an error
// that names the entry; nothing is dropped silently and the protocol is matched in any case.
import { isIP } from 'node:net';
import { UsageError } from '../lib/errors.js';
import { isHostname, isMistypedIpv4 } from './primitives.js';

export type Protocol = 'tcp' | 'udp';
export const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp'];

/** One mapping as the user wrote it, ranges kept. */
export interface PortRange {
  protocol: Protocol;
  publicStart: number;
  publicEnd: number;
  localStart: number;
  localEnd: number;
  proxyProtocol: boolean;
  /** This mapping's own destination host; absent: the tunnel's destination. */
  destination?: string;
  /** The text the user wrote, for messages. */
  source: string;
}

/** One public port, as the edge and the home forwarder see it. */
export interface ForwardPort {
  protocol: Protocol;
  publicPort: number;
  localPort: number;
  proxyProtocol: boolean;
  /** The mapping's own destination host (home side only; the edge never sees it). */
  destination?: string;
}

export interface ReservedPorts {
  /** The edge's SSH port (TCP). */
  ssh: number;
  /** The edge's WireGuard listen port (UDP). */
  wireguard: number;
}

/** Above this many public ports a config gets unwieldy for nginx and for the home forwarder. */
export const MAX_PUBLIC_PORTS = 4096;

const TOKEN = /^(\d{1,5})(?:-(\d{1,5}))?(?::(\d{1,5})(?:-(\d{1,5}))?)?(?:\/([A-Za-z]+))?$/;

const SYNTAX_HINT =
  'write PUBLIC[:LOCAL][/tcp|udp][@HOST], e.g. 443/tcp, 80:8080/tcp, 27015-27030/udp, 443/tcp@192.168.1.20';

/**
 * A per-port destination as written after "@": an IPv4 address, an IPv6 address (bare or in brackets) or a host
 * name. `where` names the mapping in messages.
 */
export function parsePortDestination(text: string, where: string): string {
  const value = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (value === '') {
    throw new UsageError(`ports: "${where}" has an empty destination after "@"`, {
      hint: 'write the destination host after "@", e.g. 443/tcp@192.168.1.20, or drop the "@"',
    });
  }
  if (isMistypedIpv4(value)) {
    throw new UsageError(
      `ports: "${where}" names the destination "${value}", which is no IPv4 address (each of the four numbers ` +
        `is 0-255)`,
      {
        hint: 'fix the address, e.g. 443/tcp@192.168.1.20',
      },
    );
  }
  if (value === 'none' || !(isIP(value) !== 0 || isHostname(value))) {
    throw new UsageError(`ports: "${where}" names the destination "${value}", which is no address or host name`, {
      hint: 'write an IPv4/IPv6 address or a host name after "@", e.g. 443/tcp@192.168.1.20 or 443/tcp@nas.lan',
    });
  }
  return value;
}

export function parsePortToken(raw: string): PortRange {
  const written = raw.trim();
  if (written === '')
    throw new UsageError('ports: empty port mapping', { hint: `${SYNTAX_HINT}; remove the stray comma` });
  const at = written.indexOf('@');
  const token = at === -1 ? written : written.slice(0, at);
  const destination = at === -1 ? undefined : parsePortDestination(written.slice(at + 1), written);
  const range = parseMapping(token, written);
  return destination === undefined ? range : { ...range, destination };
}

function parseMapping(token: string, written: string): PortRange {
  const match = TOKEN.exec(token);
  if (!match) throw new UsageError(`ports: "${written}" is not a port mapping`, { hint: SYNTAX_HINT });
  const [, pubA, pubB, locA, locB, proto] = match;
  const protocol = parseProtocol(proto ?? 'tcp', written);
  const publicStart = portNumber(pubA!, written);
  const publicEnd = pubB === undefined ? publicStart : portNumber(pubB, written);
  const localStart = locA === undefined ? publicStart : portNumber(locA, written);
  const localEnd = locA === undefined ? publicEnd : locB === undefined ? localStart : portNumber(locB, written);
  if (publicEnd < publicStart) {
    throw new UsageError(`ports: "${written}" has a public range that runs backwards`, {
      hint: `write the lower port first, e.g. ${publicEnd}-${publicStart}`,
    });
  }
  if (localEnd < localStart) {
    throw new UsageError(`ports: "${written}" has a local range that runs backwards`, {
      hint: `write the lower port first, e.g. ${localEnd}-${localStart}`,
    });
  }
  const publicCount = publicEnd - publicStart + 1;
  const localCount = localEnd - localStart + 1;
  if (publicCount !== localCount) {
    throw new UsageError(
      `ports: "${written}" maps ${publicCount} public port${publicCount === 1 ? '' : 's'} to ${localCount} ` +
        `local port${localCount === 1 ? '' : 's'}`,
      { hint: 'both sides of a range mapping need the same length, e.g. 8000-8010:9000-9010/tcp' },
    );
  }
  return { protocol, publicStart, publicEnd, localStart, localEnd, proxyProtocol: false, source: written };
}

/** Parses repeated and/or comma-separated values: ["443/tcp,80:8080", "19132/udp"]. */
export function parsePortList(values: readonly string[]): PortRange[] {
  const ranges: PortRange[] = [];
  for (const value of values) {
    for (const token of value.split(',')) ranges.push(parsePortToken(token));
  }
  return ranges;
}

export function parseProtocol(text: string, token: string): Protocol {
  const lower = text.toLowerCase();
  if (lower === 'tcp' || lower === 'udp') return lower;
  throw new UsageError(`ports: "${token}" has unknown protocol "${text}"`, { hint: 'use tcp or udp (any case)' });
}

function portNumber(text: string, token: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new UsageError(`ports: "${token}" uses port ${text}, outside 1-65535`, {
      hint: 'use ports between 1 and 65535',
    });
  }
  return value;
}

/**
 * Checks a whole set: at least one mapping, no public port of one protocol used twice, none of the edge's own
 * ports, PROXY protocol only on TCP, and a sane total.
 */
export function validatePortSet(ranges: readonly PortRange[], reserved: ReservedPorts): void {
  if (ranges.length === 0) {
    throw new UsageError('ports: no port mappings given', {
      hint: `pass --ports, e.g. --ports 443/tcp; ${SYNTAX_HINT}`,
    });
  }
  const byProtocol = new Map<Protocol, PortRange[]>();
  for (const range of ranges) {
    const list = byProtocol.get(range.protocol) ?? [];
    list.push(range);
    byProtocol.set(range.protocol, list);
  }
  for (const [protocol, list] of byProtocol) {
    const sorted = [...list].sort((a, b) => a.publicStart - b.publicStart);
    for (let i = 1; i < sorted.length; i++) {
      const previous = sorted[i - 1]!;
      const current = sorted[i]!;
      if (current.publicStart <= previous.publicEnd) {
        const what =
          previous.publicStart === current.publicStart && previous.publicEnd === current.publicEnd
            ? `public ${protocol} port ${describePublic(current)} is given twice`
            : `public ${protocol} ports overlap`;
        throw new UsageError(`ports: "${previous.source}" and "${current.source}": ${what}`, {
          hint: 'each public port of a protocol can forward to one place only; remove one of them',
        });
      }
    }
  }
  for (const range of ranges) {
    const reservedPort = range.protocol === 'tcp' ? reserved.ssh : reserved.wireguard;
    if (reservedPort >= range.publicStart && reservedPort <= range.publicEnd) {
      const owner = range.protocol === 'tcp' ? 'SSH' : 'WireGuard';
      const option = range.protocol === 'tcp' ? '--edge-ssh-port' : '--wireguard-port';
      throw new UsageError(
        `ports: "${range.source}" includes ${reservedPort}/${range.protocol}, which the edge uses for ${owner}`,
        { hint: `use another public port, or move the edge's ${owner} port with ${option}` },
      );
    }
    if (range.proxyProtocol && range.protocol !== 'tcp') {
      throw new UsageError(`ports: "${range.source}" asks for PROXY protocol on UDP`, {
        hint: 'PROXY protocol is available for TCP ports only',
      });
    }
  }
  const total = ranges.reduce((sum, r) => sum + (r.publicEnd - r.publicStart + 1), 0);
  if (total > MAX_PUBLIC_PORTS) {
    throw new UsageError(`ports: ${total} public ports requested, more than ${MAX_PUBLIC_PORTS}`, {
      hint: 'narrow the ranges',
    });
  }
}

/**
 * The edge sends each public port to the home tunnel address at its LOCAL port, and home forwards that local port
 * to one destination: two mappings that arrive at the same local port must therefore name the same destination.
 * `tunnelDestination` is what a mapping without its own uses; `name` is how messages name the ports' source.
 */
export function checkPortDestinations(ranges: readonly PortRange[], tunnelDestination: string, name = 'ports'): void {
  const seen = new Map<string, { range: PortRange; destination: string }>();
  for (const range of ranges) {
    const destination = range.destination ?? tunnelDestination;
    for (let port = range.localStart; port <= range.localEnd; port++) {
      const key = `${range.protocol}/${port}`;
      const earlier = seen.get(key);
      if (earlier === undefined) {
        seen.set(key, { range, destination });
      } else if (earlier.destination !== destination) {
        throw new UsageError(
          `${name}: "${earlier.range.source}" and "${range.source}" both arrive at local port ${key} but name ` +
            `different destinations (${earlier.destination}, ${destination})`,
          {
            hint:
              'home forwards each local port to one host: give one of them another local port (PUBLIC:LOCAL), or ' +
              'the same destination',
          },
        );
      }
    }
  }
}

/** Marks the mappings whose public TCP ports are listed (or all TCP mappings for "all") as using PROXY protocol. */
/**
 * `name` is how messages name the selection's source: "--proxy-protocol", "INNISFREE_PROXY_PROTOCOL", "web.json:
 * proxyProtocol".
 */
export function applyProxyProtocol(
  ranges: readonly PortRange[],
  selection: readonly string[],
  name = '--proxy-protocol',
): PortRange[] {
  const tokens = selection
    .flatMap((value) => value.split(','))
    .map((t) => t.trim())
    .filter((t) => t !== '');
  if (tokens.length === 0) return [...ranges];
  if (tokens.some((t) => t.toLowerCase() === 'all')) {
    return ranges.map((r) => (r.protocol === 'tcp' ? { ...r, proxyProtocol: true } : r));
  }
  const wanted = tokens.map((token) => {
    let range: PortRange;
    try {
      range = parsePortToken(token.includes('/') ? token : `${token}/tcp`);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      throw new UsageError(`${name}: "${token}" is not a public TCP port or range`, {
        hint: 'list public TCP ports, e.g. --proxy-protocol 443,8443, or "all"',
      });
    }
    if (
      range.localStart !== range.publicStart ||
      range.localEnd !== range.publicEnd ||
      range.destination !== undefined
    ) {
      throw new UsageError(`${name}: "${token}" must name public ports only`, {
        hint: 'list public TCP ports, e.g. --proxy-protocol 443,8443, or "all"',
      });
    }
    return range;
  });
  for (const want of wanted) {
    const covered = ranges.some(
      (r) => r.protocol === want.protocol && r.publicStart <= want.publicStart && r.publicEnd >= want.publicEnd,
    );
    if (!covered) {
      throw new UsageError(`${name}: "${want.source}" is not one of the tunnel's public ports`, {
        hint: 'list ports that also appear in --ports',
      });
    }
  }
  const result: PortRange[] = [];
  for (const range of ranges) {
    // Split a range where only part of it asks for PROXY protocol, so the flag stays per port.
    let cursor = range.publicStart;
    const marks = wanted
      .filter(
        (w) => w.protocol === range.protocol && w.publicStart <= range.publicEnd && w.publicEnd >= range.publicStart,
      )
      .sort((a, b) => a.publicStart - b.publicStart);
    const push = (from: number, to: number, proxyProtocol: boolean): void => {
      if (to < from) return;
      const offset = range.localStart - range.publicStart;
      result.push({
        ...range,
        publicStart: from,
        publicEnd: to,
        localStart: from + offset,
        localEnd: to + offset,
        proxyProtocol: proxyProtocol || range.proxyProtocol,
      });
    };
    for (const mark of marks) {
      push(cursor, mark.publicStart - 1, false);
      push(Math.max(cursor, mark.publicStart), mark.publicEnd, true);
      cursor = Math.max(cursor, mark.publicEnd + 1);
    }
    push(cursor, range.publicEnd, false);
  }
  return result;
}

/** One entry per public port, sorted by protocol and public port: the shape the edge and the forwarder use. */
export function expandPorts(ranges: readonly PortRange[]): ForwardPort[] {
  const ports: ForwardPort[] = [];
  for (const range of ranges) {
    for (let offset = 0; offset <= range.publicEnd - range.publicStart; offset++) {
      ports.push({
        protocol: range.protocol,
        publicPort: range.publicStart + offset,
        localPort: range.localStart + offset,
        proxyProtocol: range.proxyProtocol,
        ...(range.destination !== undefined ? { destination: range.destination } : {}),
      });
    }
  }
  return ports.sort((a, b) => a.protocol.localeCompare(b.protocol) || a.publicPort - b.publicPort);
}

/** Canonical text for a mapping: "443/tcp", "80:8080/tcp", "27015-27030/udp". */
export function formatPortRange(range: Omit<PortRange, 'source'>): string {
  const publicPart = describePublic(range);
  const sameLocal = range.localStart === range.publicStart && range.localEnd === range.publicEnd;
  const localPart = sameLocal
    ? ''
    : range.localStart === range.localEnd
      ? `:${range.localStart}`
      : `:${range.localStart}-${range.localEnd}`;
  return (
    `${publicPart}${localPart}/${range.protocol}` +
    `${range.destination !== undefined ? `@${formatHost(range.destination)}` : ''}`
  );
}

/** An IPv6 destination in brackets, so "443/tcp@[fd00::1]" reads as one. */
function formatHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

function describePublic(range: Pick<PortRange, 'publicStart' | 'publicEnd'>): string {
  return range.publicStart === range.publicEnd ? `${range.publicStart}` : `${range.publicStart}-${range.publicEnd}`;
}
