// TunnelSpec: one named exposure, fully resolved and validated. See sources.ts for how flags, environment,
// tunnel files and defaults are merged into it.
import { z } from 'zod';
import { type PortRange, type ReservedPorts, formatPortRange } from './ports.js';
import {
  Destination,
  HomeInterfaceName,
  Hostname,
  Ipv4,
  Ipv4Pool,
  Ipv6,
  Ipv6Pool,
  Port,
  TunnelName,
} from './primitives.js';

export const PROVIDERS = ['digitalocean', 'local'] as const;
export const BOOTSTRAPS = ['image', 'nixos-anywhere'] as const;
export const FORWARDINGS = ['nginx', 'nftables'] as const;
/** How the home side reaches the destination: kernel DNAT (nftables), the userspace forwarder, or auto. */
export const HOME_FORWARDINGS = ['auto', 'kernel', 'proxy'] as const;

export type ProviderName = (typeof PROVIDERS)[number];
export type Bootstrap = (typeof BOOTSTRAPS)[number];
export type Forwarding = (typeof FORWARDINGS)[number];
export type HomeForwardingChoice = (typeof HOME_FORWARDINGS)[number];

/**
 * What a provider's edges offer, as far as a tunnel and its flags go. Code outside src/providers/ asks these (the
 * spec checks here, providerKit for the rest) and never compares a provider's name.
 */
export interface ProviderTraits {
  /** An account reached with an API token: --token-file, tokenFile. */
  apiToken: boolean;
  /**
   * Edges are droplets: region, size, image and bootstrap apply, with their rules (SSH stays on 22, RAM for
   * nixos-anywhere); reserved IPs and DNS records exist.
   */
  droplets: boolean;
  /** A cloud firewall beside the edge's own: --cloud-firewall. */
  cloudFirewall: boolean;
  /** A new edge can take over the old one's reserved addresses and DNS records: --replace-edge. */
  replaceEdge: boolean;
}

export const PROVIDER_TRAITS: Readonly<Record<ProviderName, ProviderTraits>> = {
  digitalocean: { apiToken: true, droplets: true, cloudFirewall: true, replaceEdge: true },
  local: { apiToken: false, droplets: false, cloudFirewall: false, replaceEdge: false },
};

export const DEFAULTS = {
  /** The tunnel name when none is given, so a single tunnel needs no --name. */
  name: 'default',
  destination: '127.0.0.1',
  provider: 'digitalocean' as ProviderName,
  region: 'nyc3',
  /** Enough for an image-booted edge (nginx + WireGuard). */
  sizeImage: 's-1vcpu-1gb',
  /** nixos-anywhere needs at least 1.5 GB of RAM for its kexec step; DigitalOcean's smallest such size. */
  sizeNixosAnywhere: 's-1vcpu-2gb',
  forwarding: 'nginx' as Forwarding,
  homeForwarding: 'auto' as HomeForwardingChoice,
  /** nginx sends v1; 2 makes the home forwarder pass each header on as v2. */
  proxyProtocolVersion: 1 as 1 | 2,
  edgeSshPort: 22,
  wireguardPort: 51820,
  addressPool: '10.50.0.0/16',
  ipv6Pool: 'fd49:6e6e:6973::/48',
  keepalive: 25,
  mtu: 1420,
} as const;

const PortRangeSchema = z.object({
  protocol: z.enum(['tcp', 'udp']),
  publicStart: Port,
  publicEnd: Port,
  localStart: Port,
  localEnd: Port,
  proxyProtocol: z.boolean(),
  /** This mapping's own destination host (no "none"); absent: the tunnel's. */
  destination: Destination.refine((v) => v !== 'none', {
    message: 'a port\'s own destination cannot be "none"',
  }).optional(),
  source: z.string(),
});

export const TunnelSpec = z
  .object({
    name: TunnelName,
    ports: z.array(PortRangeSchema).min(1),
    destination: Destination,
    proxyProtocolVersion: z.union([z.literal(1), z.literal(2)], { message: 'must be 1 or 2' }),
    provider: z.enum(PROVIDERS),
    region: z.string().regex(/^[a-z0-9-]{2,20}$/, { message: 'must be a region slug such as nyc3' }),
    size: z.string().regex(/^[a-z0-9-]{2,40}$/, { message: 'must be a size slug such as s-1vcpu-1gb' }),
    image: z.string().min(1).max(255).optional(),
    bootstrap: z.enum(BOOTSTRAPS),
    forwarding: z.enum(FORWARDINGS),
    homeForwarding: z.enum(HOME_FORWARDINGS),
    /** Kernel home forwarding to another host: SNAT to this host's address there (the client address is lost). */
    masquerade: z.boolean(),
    reservedIp: Ipv4.optional(),
    /** A reserved IPv6 for the edge (DigitalOcean), or "new": reserve one in the edge's region. */
    reservedIpv6: z
      .string()
      .refine((v) => v === 'new' || Ipv6.safeParse(v).success, { message: 'must be an IPv6 address or "new"' })
      .optional(),
    keep: z.boolean(),
    ipv6: z.boolean(),
    dns: Hostname.optional(),
    edgeSshPort: Port,
    wireguardPort: Port,
    addressPool: Ipv4Pool,
    ipv6Pool: Ipv6Pool,
    keepalive: z.number().int().min(0).max(65535),
    mtu: z.number().int().min(1280).max(9000),
    /** The home WireGuard interface, when told (the home module names it); absent: innisfree picks one. */
    homeInterface: HomeInterfaceName.optional(),
  })
  .strict();

export type TunnelSpec = z.infer<typeof TunnelSpec>;

export function reservedPortsOf(spec: Pick<TunnelSpec, 'edgeSshPort' | 'wireguardPort'>): ReservedPorts {
  return { ssh: spec.edgeSshPort, wireguard: spec.wireguardPort };
}

/** The droplet (or local edge) name for a tunnel. */
export function edgeNameOf(tunnelName: string): string {
  return `innisfree-${tunnelName}`;
}

/** Tags that find a tunnel's edge again: every innisfree edge has the first, each tunnel the second. */
export const EDGE_TAG = 'innisfree';
export function edgeTagOf(tunnelName: string): string {
  return `innisfree:${tunnelName}`;
}

export function describePorts(ports: readonly PortRange[]): string {
  return ports.map((p) => `${formatPortRange(p)}${p.proxyProtocol ? '+proxy' : ''}`).join(',');
}

/** Size slugs name their memory ("s-1vcpu-2gb", "s-2vcpu-4gb-amd"); returns GiB, or undefined when not stated. */
export function memoryOfSize(size: string): number | undefined {
  const match = /-(\d+)gb(?:-|$)/.exec(size);
  return match ? Number(match[1]) : undefined;
}
