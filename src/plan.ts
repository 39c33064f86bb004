// plan(): pure and serialisable. Turns a resolved TunnelSpec, the tunnel's allocation and its public keys into
// what the edge must run (EdgeConfig, the `services.innisfree` value) and what the home side must run.
import { createHash } from 'node:crypto';
import type { Allocation } from './addressing.js';
import { type EdgeConfig, EdgeConfig as EdgeConfigSchema, serializeEdgeConfig } from './spec/edge-config.js';
import type { HomeConfig, HomeForward } from './spec/home-config.js';
import { type ForwardPort, expandPorts } from './spec/ports.js';
import type { TunnelSpec } from './spec/tunnel.js';

export const PLAN_VERSION = 1;

export interface PlanKeys {
  /** The home WireGuard public key (base64). */
  homeWireguardPublicKey: string;
  /** The tunnel's SSH public key line. */
  sshPublicKey: string;
}

export interface PlanInput {
  spec: TunnelSpec;
  allocation: Allocation;
  keys: PlanKeys;
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
      : [`${stripPrefix(allocation.edgeAddress)}/32`, ...(carriesIpv6 ? [`${stripPrefix(allocation.edgeAddress6!)}/128`] : [])],
    policyRouting: kernelForwarding
      ? {
          table: ROUTING_TABLE_BASE + allocation.index,
          priority: ROUTING_RULE_PRIORITY,
          from: [homeIp, ...(carriesIpv6 && homeIp6 ? [homeIp6] : [])],
        }
      : null,
    destination: spec.destination,
    forwards: spec.destination === 'none' ? [] : homeForwards(ports, homeIp, spec.destination),
  };

  return { version: PLAN_VERSION, name: spec.name, edge, home, configHash: hashEdgeConfig(edge) };
}

export function hashEdgeConfig(edge: EdgeConfig): string {
  return createHash('sha256').update(serializeEdgeConfig(edge)).digest('hex');
}

/** One listener per (protocol, local port): several public ports may lead to the same local port. */
function homeForwards(ports: readonly ForwardPort[], listenAddress: string, targetHost: string): HomeForward[] {
  const seen = new Set<string>();
  const forwards: HomeForward[] = [];
  for (const port of ports) {
    const key = `${port.protocol}/${port.localPort}`;
    if (seen.has(key)) continue;
    seen.add(key);
    forwards.push({ protocol: port.protocol, listenAddress, listenPort: port.localPort, targetHost, targetPort: port.localPort });
  }
  return forwards.sort((a, b) => a.protocol.localeCompare(b.protocol) || a.listenPort - b.listenPort);
}

function stripPrefix(cidr: string): string {
  return cidr.replace(/\/\d+$/, '');
}
