// The provider port: how `up`, `down`, `list` and `clean` get an edge without knowing which cloud (or which local
// namespace) it lives in. Adapters: providers/digitalocean (real), providers/local (network namespaces here).
import type { Emit } from '../lib/events.js';
import type { Context } from '../lib/context.js';
import type { TunnelSpec } from '../spec/tunnel.js';
import type { EdgeIdentity, EdgeInfo } from '../state/edge-info.js';
import type { ResourceLedger } from '../state/resources.js';

export { EdgeInfo, type EdgeIdentity } from '../state/edge-info.js';

/** What an adapter may use of the CLI's context. */
export type ProviderContext = Pick<Context, 'clock' | 'emit' | 'env' | 'signal'>;

export interface EnsureEdgeRequest {
  spec: TunnelSpec;
  identity: EdgeIdentity;
  emit: Emit;
  signal: AbortSignal;
  /**
   * Where the run records what it registers before each create (the tunnel's resources.json). Entries an earlier,
   * killed run left are removed first; on any failure or interrupt what this run made is removed again; with
   * spec.keep the ledger is emptied once the edge is ready (handed over).
   */
  ledger?: ResourceLedger;
  /** The edge id local state (status.json) records: of several droplets found for the tunnel, this one is kept. */
  recordedEdgeId?: string;
}

export interface ReplaceEdgeRequest extends EnsureEdgeRequest {
  /**
   * Bootstraps and deploys the new edge, reached at its own addresses (`edge.ipv4` is the new droplet's, not the
   * reserved IP), and returns once it serves; a throw abandons the replacement.
   */
  serve(edge: EdgeInfo, signal: AbortSignal): Promise<void>;
}

export interface EnsureEdgeResult {
  edge: EdgeInfo;
  /** False when an existing edge was found again (re-attach), true when this call created it. */
  created: boolean;
}

export interface DestroyOptions {
  /** Release the reserved IP too (DigitalOcean); by default it survives `down`. */
  releaseIp?: boolean;
  /** A reserved IP an earlier `down` kept for this tunnel (no droplet holds it now): released with releaseIp. */
  keptReservedIp?: string;
  /** The same for a reserved IPv6 an earlier `down` kept. */
  keptReservedIpv6?: string;
  /**
   * The tunnel's SSH public key (state ssh/id_ed25519.pub), when known: its registration at the provider is removed
   * by fingerprint. Without it the DigitalOcean adapter removes keys named innisfree-<tunnel>.
   */
  sshPublicKey?: string;
  /** The tunnel's ledger: whatever it still lists is removed too, and it is emptied once everything is gone. */
  ledger?: ResourceLedger;
  emit: Emit;
  signal: AbortSignal;
}

export interface SweepRequest {
  /** Tunnels that have local state on this host: their edges and resources are left alone. */
  keepTunnels: ReadonlySet<string>;
  /** False: only report what would go. */
  destroy: boolean;
  releaseIp?: boolean;
  emit: Emit;
  signal: AbortSignal;
}

export interface SweepReport {
  /** Edges of tunnels without local state (destroyed when asked). */
  edges: EdgeInfo[];
  /** Names of innisfree-* SSH keys, cloud firewalls and DNS records no edge or local state uses. */
  keys: string[];
  firewalls: string[];
  records: string[];
}

export interface Provider {
  readonly name: 'digitalocean' | 'local';
  /** Finds the tunnel's edge by tag, or creates it; waits until it is running with its addresses known. */
  ensureEdge(request: EnsureEdgeRequest): Promise<EnsureEdgeResult>;
  /**
   * `up --replace-edge`: makes a new edge, has `serve` deploy it, then moves the reserved IPv4/IPv6 and DNS records
   * to it and destroys the old one. A failure before the move is complete leaves the old edge serving and removes
   * what the attempt made. With no edge to replace it is ensureEdge.
   */
  replaceEdge?(request: ReplaceEdgeRequest): Promise<EnsureEdgeResult>;
  findEdge(tunnel: string): Promise<EdgeInfo | undefined>;
  listEdges(): Promise<EdgeInfo[]>;
  /**
   * argv that runs a command as a client on the internet side, when the provider has one (the local provider's
   * client namespace); `up` prints it as a ready-to-paste try-it command.
   */
  clientCommand?(tunnel: string, argv: readonly string[]): Promise<string[]>;
  /** Who that client is and which addresses it uses (printed under the try-it command). */
  clientNote?(tunnel: string): Promise<string>;
  /**
   * `clean`: every edge and leftover of tunnels this host has no state for, from account-wide lists fetched once;
   * destroyed when asked.
   */
  sweep?(request: SweepRequest): Promise<SweepReport>;
  /** Removes what a ledger of a dead run lists (clean, for tunnels that do have local state); returns how many stay. */
  removeRecorded?(ledger: ResourceLedger, emit: Emit, why: string): Promise<number>;
  /** Destroys the tunnel's edge and what was created for it; a missing edge is not an error. */
  destroyEdge(tunnel: string, options: DestroyOptions): Promise<void>;
}
