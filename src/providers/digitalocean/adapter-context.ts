// What every job of the DigitalOcean adapter works with: the account's client, the clock its waits run on, its
// timing, and whether it manages a cloud firewall.
import type { Clock } from '../../lib/context.js';
import type { Emit } from '../../lib/events.js';
import type { DigitalOceanClient } from './client.js';
import type { WaitOptions } from './droplets.js';
import type { Timing } from './timing.js';

export interface AdapterContext {
  client: DigitalOceanClient;
  clock: Clock;
  timing: Timing;
  /** Manage a cloud firewall for the edge (it is kept in step whenever one already exists). */
  firewall: boolean;
}

/** The wait options of a job that reports through `emit`. */
export function waitsOf(context: AdapterContext, emit: Emit): WaitOptions {
  return { timing: context.timing, clock: context.clock, emit };
}
