// plan(): pure and serialisable. Turns a resolved TunnelSpec, the tunnel's allocation and its public keys into
// what the edge must run (EdgeConfig, the `services.innisfree` value) and what the home side must run.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { Allocation } from './addressing.js';
import { type EdgeConfig, EdgeConfig as EdgeConfigSchema, serializeEdgeConfig } from './spec/edge-config.js';
import type { HomeConfig, HomeForward } from './spec/home-config.js';
import { type ForwardPort, expandPorts } from './spec/ports.js';
import { isLoopback } from './spec/primitives.js';
import type { TunnelSpec } from './spec/tunnel.js';

export const PLAN_VERSION = 1;

export interface PlanKeys {
  /** The home WireGuard public key (base64). */
  homeWireguardPublicKey: string;
  /** The tunnel's SSH public key line. */
  sshPublicKey: string;
}

/** What this host offers the home side; found out by the caller, so that plan() stays pure. */
export interface HomeHostFacts {
  /** nft is installed and usable (root / CAP_NET_ADMIN): kernel forwarding is possible. */
  kernelForwarding: boolean;
  /** This host's own IPv4 addresses: a destination among them is served locally. */
  localAddresses: readonly string[];
}

export interface PlanInput {
  spec: TunnelSpec;
  allocation: Allocation;
  keys: PlanKeys;
  /** Omitted: kernel forwarding is not available (the userspace forwarder is used). */
  homeHost?: HomeHostFacts;
}

export type { HomeConfig, HomeForward } from './spec/home-config.js';

export interface Plan {
  version: typeof PLAN_VERSION;
  name: string;
  edge: EdgeConfig;
  home: HomeConfig;
  /** sha256 (hex) of the exact edge.json bytes; the edge reports it back once deployed. */
  configHash: string;
}

/** Policy-routing tables live above this base, one per tunnel slot. */
export const ROUTING_TABLE_BASE = 20000;
export const ROUTING_RULE_PRIORITY = 20000;

export function plan(input: PlanInput): Plan {
  const { spec, allocation, keys } = input;
  const ports = expandPorts(spec.ports);
  const homeIp = stripPrefix(allocation.homeAddress);
  const homeIp6 = allocation.homeAddress6 ? stripPrefix(allocation.homeAddress6) : undefined;
  const carriesIpv6 = spec.ipv6 && allocation.edgeAddress6 !== undefined;

  const edge: EdgeConfig = {
    enable: true,
    name: spec.name,
    ports: ports.map((p) => ({
      protocol: p.protocol,
      publicPort: p.publicPort,
      localPort: p.localPort,
      proxyProtocol: p.proxyProtocol,
    })),
    forwarding: spec.forwarding,
    ipv6: spec.ipv6,
    wireguard: {
      interface: allocation.edgeInterface,
      listenPort: spec.wireguardPort,
      address: allocation.edgeAddress,
      ...(carriesIpv6 ? { address6: allocation.edgeAddress6 } : {}),
      mtu: spec.mtu,
      peer: {
        publicKey: keys.homeWireguardPublicKey,
        address: homeIp,
        ...(carriesIpv6 && homeIp6 ? { address6: homeIp6 } : {}),
      },
    },
    ssh: { port: spec.edgeSshPort, authorizedKeys: [keys.sshPublicKey] },
  };
  // The schema is the contract with the Nix module: a plan that breaks it is a bug here, not bad input.
  EdgeConfigSchema.parse(edge);

  const kernelForwarding = spec.forwarding === 'nftables';
  const table = ROUTING_TABLE_BASE + allocation.index;
  const forwards =
    spec.destination === 'none' ? [] : homeForwards(ports, homeIp, spec.destination, spec.proxyProtocolVersion === 2);
  const homeForwarding = chooseHomeForwarding(spec, input.homeHost);
  const loopbackTargets = [...new Set(forwards.map((f) => f.targetHost).filter(isLoopback))];
  const home: HomeConfig = {
    name: spec.name,
    interface: allocation.interface,
    address: allocation.homeAddress,
    edgeAddress: stripPrefix(allocation.edgeAddress),
    ...(carriesIpv6 ? { address6: allocation.homeAddress6, edgeAddress6: stripPrefix(allocation.edgeAddress6!) } : {}),
    edgeWireguardPort: spec.wireguardPort,
    persistentKeepalive: spec.keepalive,
    mtu: spec.mtu,
    allowedIps: kernelForwarding
      ? ['0.0.0.0/0', ...(carriesIpv6 ? ['::/0'] : [])]
      : [
          `${stripPrefix(allocation.edgeAddress)}/32`,
          ...(carriesIpv6 ? [`${stripPrefix(allocation.edgeAddress6!)}/128`] : []),
        ],
    policyRouting:
      kernelForwarding || homeForwarding === 'kernel'
        ? {
            table,
            priority: ROUTING_RULE_PRIORITY,
            from: kernelForwarding ? [homeIp, ...(carriesIpv6 && homeIp6 ? [homeIp6] : [])] : [],
            ...(homeForwarding === 'kernel' ? { fwmark: table, localFrom: loopbackTargets } : {}),
          }
        : null,
    destination: spec.destination,
    forwarding: homeForwarding,
    masquerade: homeForwarding === 'kernel' && spec.masquerade,
    forwards,
  };

  return { version: PLAN_VERSION, name: spec.name, edge, home, configHash: hashEdgeConfig(edge) };
}

/**
 * Kernel forwarding when it was asked for; in "auto" mode when this host can do it and every destination (the
 * tunnel's and the ports' own) is an IPv4 address either on this host or --masquerade was given. A destination on
 * another host without --masquerade stays with the forwarder unless kernel is asked for: that host must then route
 * its replies via this one. One choice for the whole tunnel: a host name anywhere means the forwarder.
 */
export function chooseHomeForwarding(
  spec: Pick<TunnelSpec, 'destination' | 'homeForwarding' | 'masquerade'> &
    Partial<Pick<TunnelSpec, 'ports' | 'proxyProtocolVersion'>>,
  host: HomeHostFacts | undefined,
): HomeConfig['forwarding'] {
  if (spec.destination === 'none') return 'none';
  if (spec.homeForwarding !== 'auto') return spec.homeForwarding;
  // PROXY v2 is written by the forwarder (nginx sends v1 only).
  if (spec.proxyProtocolVersion === 2 && spec.ports?.some((p) => p.proxyProtocol)) return 'proxy';
  const destinations = [
    ...new Set([
      spec.destination,
      ...(spec.ports ?? []).flatMap((p) => (p.destination === undefined ? [] : [p.destination])),
    ]),
  ];
  if (!host?.kernelForwarding || destinations.some((d) => isIP(d) !== 4)) return 'proxy';
  const servedKernel = (d: string): boolean => spec.masquerade || isLoopback(d) || host.localAddresses.includes(d);
  return destinations.every(servedKernel) ? 'kernel' : 'proxy';
}

export function hashEdgeConfig(edge: EdgeConfig): string {
  return createHash('sha256').update(serializeEdgeConfig(edge)).digest('hex');
}

/**
 * One listener per (protocol, local port): several public ports may lead to the same local port (with the same
 * destination; sources.ts refuses two). A port's own destination overrides the tunnel's.
 */
function homeForwards(
  ports: readonly ForwardPort[],
  listenAddress: string,
  tunnelDestination: string,
  proxyV2: boolean,
): HomeForward[] {
  const seen = new Set<string>();
  const forwards: HomeForward[] = [];
  for (const port of ports) {
    const key = `${port.protocol}/${port.localPort}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const targetHost = port.destination ?? tunnelDestination;
    forwards.push({
      protocol: port.protocol,
      listenAddress,
      listenPort: port.localPort,
      targetHost,
      targetPort: port.localPort,
      ...(proxyV2 && port.proxyProtocol ? { proxyProtocol: 'v1-to-v2' as const } : {}),
    });
  }
  return forwards.sort((a, b) => a.protocol.localeCompare(b.protocol) || a.listenPort - b.listenPort);
}

function stripPrefix(cidr: string): string {
  return cidr.replace(/\/\d+$/, '');
}
