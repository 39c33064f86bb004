// The DigitalOcean adapter of the Provider port. An edge is the droplet tagged `innisfree` + `innisfree:<tunnel>`:
// it is always looked up by tag first, created only when none exists, and after a create whose outcome is unknown
// it is looked for again instead of posted twice. Around it: the tunnel's SSH key (by fingerprint), an optional
// reserved IP, DNS records and cloud firewall, all removed again by destroyEdge (except a reserved IP, unless asked).
// Each job is a module of its own; this class only carries the account's context to them.
import type { Clock } from '../../lib/context.js';
import type { Emit } from '../../lib/events.js';
import type { ResourceLedger } from '../../state/resources.js';
import type {
  DestroyOptions,
  EdgeInfo,
  EnsureEdgeRequest,
  EnsureEdgeResult,
  Provider,
  ReplaceEdgeRequest,
  SweepReport,
  SweepRequest,
} from '../provider.js';
import type { AdapterContext } from './adapter-context.js';
import type { DigitalOceanClient } from './client.js';
import { findDropletEdge, listDropletEdges } from './edge-lookup.js';
import { ensureDropletEdge } from './edge-provisioning.js';
import { replaceDropletEdge } from './edge-replacement.js';
import { destroyDropletEdge } from './edge-teardown.js';
import { removeRecorded } from './ledger-cleanup.js';
import { sweepLeftovers } from './leftovers.js';
import { DEFAULT_TIMING, type Timing } from './timing.js';

export interface DigitalOceanProviderOptions {
  client: DigitalOceanClient;
  clock: Clock;
  /** Manage a cloud firewall for the edge (it is kept in step whenever one already exists). */
  firewall?: boolean;
  timing?: Partial<Timing>;
}

export class DigitalOceanProvider implements Provider {
  readonly name = 'digitalocean' as const;
  readonly #context: AdapterContext;

  constructor(options: DigitalOceanProviderOptions) {
    this.#context = {
      client: options.client,
      clock: options.clock,
      firewall: options.firewall ?? false,
      timing: { ...DEFAULT_TIMING, ...options.timing },
    };
  }

  ensureEdge(request: EnsureEdgeRequest): Promise<EnsureEdgeResult> {
    return ensureDropletEdge(this.#context, request);
  }

  replaceEdge(request: ReplaceEdgeRequest): Promise<EnsureEdgeResult> {
    return replaceDropletEdge(this.#context, request);
  }

  findEdge(tunnel: string): Promise<EdgeInfo | undefined> {
    return findDropletEdge(this.#context.client, tunnel);
  }

  listEdges(): Promise<EdgeInfo[]> {
    return listDropletEdges(this.#context.client);
  }

  sweep(request: SweepRequest): Promise<SweepReport> {
    return sweepLeftovers(this.#context, request);
  }

  /**
   * Removes what the ledger lists (newest first), finding each by its id or, where the create's answer was lost,
   * by tag or name. Returns the number of entries left.
   */
  removeRecorded(ledger: ResourceLedger, emit: Emit, why: string): Promise<number> {
    return removeRecorded(this.#context, ledger, emit, why);
  }

  destroyEdge(tunnel: string, options: DestroyOptions): Promise<void> {
    return destroyDropletEdge(this.#context, tunnel, options);
  }
}
