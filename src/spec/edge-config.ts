// The edge's `services.innisfree` value. This zod schema is the single source of truth: `innisfree plan` emits it,
// nix/edge-config.schema.json is exported from it, and modules/edge.nix declares the same shape as NixOS options.
// Nothing secret belongs here: the edge generates its own WireGuard private key.
import { z } from 'zod';
import { Ipv4, Ipv6, Port, TunnelName } from './primitives.js';

export const InterfaceName = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_-]{0,14}$/, { message: 'must be 1-15 characters of letters, digits, "_" and "-"' });

export const WireguardKey = z
  .string()
  .regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, { message: 'must be a WireGuard key (44 characters of base64)' });

export const SshPublicKey = z
  .string()
  .regex(
    /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/,
    {
      message: 'must be one OpenSSH public key line, e.g. "ssh-ed25519 AAAA… comment"',
    },
  );

export const Ipv4Interface = z
  .string()
  .refine(
    (v) => /^[\d.]+\/\d{1,2}$/.test(v) && Ipv4.safeParse(v.split('/')[0]).success && Number(v.split('/')[1]) <= 32,
    {
      message: 'must be an IPv4 address with prefix length, e.g. 10.50.0.1/30',
    },
  );

export const Ipv6Interface = z
  .string()
  .refine(
    (v) =>
      /^[0-9a-fA-F:]+\/\d{1,3}$/.test(v) && Ipv6.safeParse(v.split('/')[0]).success && Number(v.split('/')[1]) <= 128,
    {
      message: 'must be an IPv6 address with prefix length, e.g. fd49:6e6e:6973:1::1/64',
    },
  );

export const EdgePort = z
  .object({
    protocol: z.enum(['tcp', 'udp']).describe('Transport protocol of the public port.'),
    publicPort: Port.describe('Port opened on the edge public address.'),
    localPort: Port.describe('Port on the home tunnel address that traffic is forwarded to.'),
    proxyProtocol: z.boolean().describe('Send a PROXY protocol v1 header to the home side (TCP with nginx only).'),
  })
  .strict();

export const EdgeWireguardPeer = z
  .object({
    publicKey: WireguardKey.describe('The home host WireGuard public key.'),
    address: Ipv4.describe('The home host tunnel IPv4 address.'),
    address6: Ipv6.optional().describe('The home host tunnel IPv6 address (ULA), when the tunnel carries IPv6.'),
  })
  .strict();

export const EdgeWireguard = z
  .object({
    interface: InterfaceName.describe('WireGuard interface name on the edge.'),
    listenPort: Port.describe('UDP port the edge WireGuard interface listens on.'),
    address: Ipv4Interface.describe('The edge tunnel IPv4 address with prefix length.'),
    address6: Ipv6Interface.optional().describe('The edge tunnel IPv6 address (ULA) with prefix length.'),
    mtu: z.number().int().min(1280).max(9000).describe('MTU of the WireGuard interface.'),
    peer: EdgeWireguardPeer,
  })
  .strict();

export const EdgeSsh = z
  .object({
    port: Port.describe('TCP port of the edge OpenSSH server.'),
    authorizedKeys: z.array(SshPublicKey).min(1).describe('Public keys allowed to log in as root (keys only).'),
  })
  .strict();

export const EdgeConfig = z
  .object({
    enable: z.boolean().describe('Whether the innisfree edge is enabled.'),
    name: TunnelName.describe('Name of the tunnel this edge serves.'),
    ports: z.array(EdgePort).min(1).describe('Public ports forwarded over the tunnel, one entry per port.'),
    forwarding: z.enum(['nginx', 'nftables']).describe('nginx stream proxy, or kernel DNAT with nftables.'),
    ipv6: z.boolean().describe('Also accept connections on the edge public IPv6 address.'),
    wireguard: EdgeWireguard,
    ssh: EdgeSsh,
  })
  .strict()
  // The port rules (a public port twice, the SSH or WireGuard port, PROXY protocol on UDP or with nftables) are
  // checked once in TypeScript, on the tunnel spec (validatePortSet in spec/ports.ts and spec/sources.ts), where
  // the message can name what the user wrote; nix/lib/validate.nix checks them again on the edge, as assertions.
  .superRefine((config, ctx) => {
    if (config.ipv6 && config.forwarding === 'nftables' && !config.wireguard.address6) {
      ctx.addIssue({
        code: 'custom',
        path: ['wireguard', 'address6'],
        message: 'nftables forwarding of IPv6 needs an IPv6 tunnel address',
      });
    }
  });

export type EdgeConfig = z.infer<typeof EdgeConfig>;
export type EdgePort = z.infer<typeof EdgePort>;

/** What `innisfree-edge-status` prints on the edge (JSON), read by the CLI over SSH. */
export const EdgeStatus = z.object({
  name: z.string(),
  /** sha256 (hex) of the edge.json that was deployed; null when the edge was configured by hand. */
  configHash: z.string().nullable(),
  wireguard: z.object({
    interface: z.string(),
    publicKey: WireguardKey.nullable(),
    up: z.boolean(),
    peers: z.array(
      z.object({
        publicKey: z.string(),
        endpoint: z.string().nullable(),
        /** Unix seconds of the latest handshake; 0 when none yet. */
        latestHandshake: z.number(),
        rxBytes: z.number(),
        txBytes: z.number(),
      }),
    ),
  }),
  forwarder: z.object({
    kind: z.enum(['nginx', 'nftables']),
    active: z.boolean(),
    /**
     * Ports nginx really has bound (nginx forwarding); null with nftables, absent from edges of older versions.
     * A failed reload keeps the old config serving while nginx stays active: only this shows it.
     */
    listening: z
      .array(z.object({ protocol: z.enum(['tcp', 'udp']), port: z.number().int().min(1).max(65535) }))
      .nullable()
      .optional(),
  }),
});

export type EdgeStatus = z.infer<typeof EdgeStatus>;

/** The exact bytes written to edge.json: stable key order, two-space indent, trailing newline. */
export function serializeEdgeConfig(config: EdgeConfig): string {
  return `${JSON.stringify(config, null, 2)}\n`;
}
