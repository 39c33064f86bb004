// What innisfree knows of an edge, whichever provider runs it: the record `list`, `status` and `up` share, and the
// SSH identity an edge is created with. Lives in state/ because status files on disk carry it.
import { z } from 'zod';
import { PROVIDERS } from '../spec/tunnel.js';

export const EdgeInfo = z.object({
  provider: z.enum(PROVIDERS),
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
  /** Public IPv6 the edge answers on (a reserved IPv6 when one is assigned). */
  ipv6: z.string().optional(),
  /** The droplet's own public IPv6, when a reserved IPv6 fronts it. */
  directIpv6: z.string().optional(),
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
