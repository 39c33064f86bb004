// HomeConfig: the home side of a plan (WireGuard link, policy routing, forwards). plan() produces it; home.json in
// the tunnel's state keeps it for `proxy NAME` and for falling back after a rollback. One schema for both.
import { z } from 'zod';
import { Port } from './primitives.js';

export const HomeForward = z.object({
  protocol: z.enum(['tcp', 'udp']),
  listenAddress: z.string().min(1),
  listenPort: Port,
  targetHost: z.string().min(1),
  targetPort: Port,
  /**
   * "v1-to-v2": the edge's nginx puts a PROXY v1 header first on each connection (nginx sends no other version);
   * the forwarder passes it on as v2. Absent: bytes pass unchanged.
   */
  proxyProtocol: z.literal('v1-to-v2').optional(),
});

export const HomeConfig = z.object({
  name: z.string(),
  interface: z.string(),
  /** Home tunnel address with prefix, e.g. 10.50.7.2/30. */
  address: z.string(),
  /** The edge's tunnel address, the peer's inner address. */
  edgeAddress: z.string(),
  address6: z.string().optional(),
  edgeAddress6: z.string().optional(),
  edgeWireguardPort: Port,
  persistentKeepalive: z.number().int().min(0),
  mtu: z.number().int(),
  /** AllowedIPs for the edge peer. Wider than the edge's address when replies to clients must return via the tunnel. */
  allowedIps: z.array(z.string()),
  /**
   * With nftables forwarding the edge does not masquerade, so packets arrive from the real client addresses.
   * Replies from the tunnel address must go back through the tunnel: a source rule into a table whose default
   * route is the tunnel.
   */
  policyRouting: z
    .object({
      table: z.number().int(),
      priority: z.number().int(),
      from: z.array(z.string()),
      /** Kernel home forwarding: packets carrying this mark (restored from the connection's) use the table. */
      fwmark: z.number().int().min(1).optional(),
      /** Kernel home forwarding to a loopback destination: replies from it start out in the table too. */
      localFrom: z.array(z.string()).optional(),
    })
    .nullable(),
  /** "none": the service listens on the tunnel address itself and no forwarder runs. */
  destination: z.string(),
  /**
   * How the forwards are carried out: "kernel" (nftables DNAT at home, the service sees the client address the
   * packets carry), "proxy" (the userspace forwarder, the service sees this host), "none" (destination "none").
   */
  forwarding: z.enum(['kernel', 'proxy', 'none']).default('proxy'),
  /** Kernel forwarding to another host: SNAT there to this host's address (that host then needs no route back). */
  masquerade: z.boolean().default(false),
  forwards: z.array(HomeForward),
});

export type HomeForward = z.infer<typeof HomeForward>;
export type HomeConfig = z.infer<typeof HomeConfig>;
