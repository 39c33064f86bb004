// The provider port: how `up`, `down`, `list` and `clean` get an edge without knowing which cloud (or which local
// namespace) it lives in. Adapters: providers/digitalocean (real), providers/local (network namespaces here).
import { z } from 'zod';
import type { Emit } from '../lib/events.js';
import type { TunnelSpec } from '../spec/tunnel.js';

export const EdgeInfo = z.object({
  provider: z.enum(['digitalocean', 'local']),
  /** Provider id: the droplet id, or the local edge's namespace name. */
  id: z.string(),
  /** innisfree-<tunnel> */
  name: z.string(),
  /** The tunnel this edge serves (from its innisfree:<name> tag). */
  tunnel: z.string(),
  /** Public IPv4 the edge answers on (a reserved IP when one is assigned). */
  ipv4: z.string(),
  /** The droplet's own public IPv4, when a reserved IP fronts it. */
  directIpv4: z.string().optional(),
  ipv6: z.string().optional(),
  region: z.string(),
  size: z.string(),
  /** Provider status: new, active, off, archive (DigitalOcean) or running (local). */
  status: z.string(),
  /** ISO 8601. */
  createdAt: z.string(),
  /** USD per month, when the provider prices it. */
  priceMonthly: z.number().optional(),
  /** The image the edge was booted from, when known. */
  image: z.string().optional(),
});

export type EdgeInfo = z.infer<typeof EdgeInfo>;

/** The SSH identity an edge is created with, so the home side can pin the host key before first contact. */
export interface EdgeIdentity {
  /** The tunnel's SSH public key (authorized for root on the edge). */
  sshPublicKey: string;
  /** The host key the edge must present: OpenSSH private key text and its public line. */
  hostKey: { privateKey: string; publicKey: string };
}

export interface EnsureEdgeRequest {
  spec: TunnelSpec;
  identity: EdgeIdentity;
  emit: Emit;
  signal: AbortSignal;
}

export interface EnsureEdgeResult {
  edge: EdgeInfo;
  /** False when an existing edge was found again (re-attach), true when this call created it. */
  created: boolean;
}

export interface DestroyOptions {
  /** Release the reserved IP too (DigitalOcean); by default it survives `down`. */
  releaseIp?: boolean;
  /**
   * The tunnel's SSH public key (state ssh/id_ed25519.pub), when known: its registration at the provider is removed
   * by fingerprint. Without it the DigitalOcean adapter removes keys named innisfree-<tunnel>.
   */
  sshPublicKey?: string;
  emit: Emit;
  signal: AbortSignal;
}

export interface Provider {
  readonly name: 'digitalocean' | 'local';
  /** Finds the tunnel's edge by tag, or creates it; waits until it is running with its addresses known. */
  ensureEdge(request: EnsureEdgeRequest): Promise<EnsureEdgeResult>;
  findEdge(tunnel: string): Promise<EdgeInfo | undefined>;
  listEdges(): Promise<EdgeInfo[]>;
  /**
   * argv that runs a command as a client on the internet side, when the provider has one (the local provider's
   * client namespace); `up` prints it as a ready-to-paste try-it command.
   */
  clientCommand?(tunnel: string, argv: readonly string[]): Promise<string[]>;
  /** Destroys the tunnel's edge and what was created for it; a missing edge is not an error. */
  destroyEdge(tunnel: string, options: DestroyOptions): Promise<void>;
}
