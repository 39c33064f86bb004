// Small validated value types shared by the tunnel spec and the edge config. Everything that later reaches a shell,
// a Nix string, an nginx directive or an nft rule passes one of these first.
import { isIP } from 'node:net';
import { z } from 'zod';

export const TUNNEL_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

export const TunnelName = z
  .string()
  .regex(TUNNEL_NAME_PATTERN, {
    message: 'must be 1-32 characters of a-z, 0-9 and "-", starting and ending with a letter or digit',
  })
  .describe('Tunnel name: a short DNS label.');

export const Port = z.number().int().min(1).max(65535);

/** The home WireGuard interfaces innisfree makes start with this; the edge's mirror them with EDGE_INTERFACE_PREFIX. */
export const HOME_INTERFACE_PREFIX = 'isf-';
export const EDGE_INTERFACE_PREFIX = 'ise-';

/**
 * A home WireGuard interface name given by the user (the home module picks one). `up` deletes a stale link of that
 * name before making its own, so the name must carry innisfree's prefix: a typo cannot take down eth0. At most 15
 * characters, the Linux limit (IFNAMSIZ).
 */
export const HomeInterfaceName = z.string().regex(/^isf-[a-zA-Z0-9_-]{1,11}$/, {
  message: 'must be "isf-" and 1-11 letters, digits, "_" or "-" (15 characters at most, the Linux limit)',
});

export const Ipv4 = z.string().refine((v) => isIP(v) === 4, { message: 'must be an IPv4 address' });
export const Ipv6 = z.string().refine((v) => isIP(v) === 6, { message: 'must be an IPv6 address' });

const HOSTNAME =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$/;

export function isHostname(value: string): boolean {
  return HOSTNAME.test(value);
}

export const Hostname = z.string().refine(isHostname, { message: 'must be a DNS host name' });

/**
 * Dotted numbers that are no IPv4 address ("256.256.256.256", "999.1.1.1"): the host-name pattern admits them, but a
 * top-level label is never all digits (RFC 3696 §2), so they are mistyped addresses, not names to resolve.
 */
export function isMistypedIpv4(value: string): boolean {
  return isIP(value) === 0 && /(^|\.)\d+\.?$/.test(value);
}

/**
 * Where the home forwarder sends traffic: an address or host name, or "none" when the service listens on the tunnel.
 */
export const Destination = z.string().superRefine((v, ctx) => {
  if (isMistypedIpv4(v)) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a valid IPv4 address (each of the four numbers is 0-255)` });
  } else if (!(v === 'none' || isIP(v) !== 0 || isHostname(v))) {
    ctx.addIssue({ code: 'custom', message: 'must be an IPv4/IPv6 address, a host name, or "none"' });
  }
});

/** 127.0.0.0/8 or ::1: an address only this host answers on. */
export function isLoopback(address: string): boolean {
  return isIP(address) === 4 ? address.startsWith('127.') : address === '::1';
}

export function ipv4ToInt(address: string): number {
  return address.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function intToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export interface Cidr4 {
  network: number;
  prefix: number;
}

export function parseCidr4(text: string): Cidr4 | undefined {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text);
  if (!match || isIP(match[1]!) !== 4) return undefined;
  const prefix = Number(match[2]);
  if (prefix > 32) return undefined;
  const size = 2 ** (32 - prefix);
  return { network: ipv4ToInt(match[1]!) - (ipv4ToInt(match[1]!) % size), prefix };
}

export const Ipv4Pool = z.string().refine(
  (v) => {
    const cidr = parseCidr4(v);
    return cidr !== undefined && cidr.prefix >= 8 && cidr.prefix <= 30;
  },
  { message: 'must be an IPv4 network in CIDR form with a prefix from /8 to /30, e.g. 10.50.0.0/16' },
);

export const Ipv6Pool = z.string().refine((v) => /^[0-9a-fA-F:]+::\/48$/.test(v) && isIP(v.slice(0, -3)) === 6, {
  message: 'must be an IPv6 /48 written with a trailing "::", e.g. fd49:6e6e:6973::/48',
});
