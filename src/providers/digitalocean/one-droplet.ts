// One droplet per tunnel: a create posted at most once per attempt (after an answer that was lost, the droplet is
// looked for by tag before posting again), and of several droplets with the tunnel's tag one kept, the rest destroyed.
import type { Emit } from '../../lib/events.js';
import { type TunnelSpec, edgeTagOf } from '../../spec/tunnel.js';
import type { ResourceLedger } from '../../state/resources.js';
import { DigitalOceanError } from './api-errors.js';
import type { DigitalOceanClient } from './client.js';
import { type WaitOptions, destroyDroplet, dropletsByTag } from './droplets.js';
import { listReservedIps } from './reserved-ips.js';
import { type Droplet, DropletEnvelope } from './schemas.js';
import type { Timing } from './timing.js';

/** Posts the create; after an ambiguous failure looks for the droplet by tag before posting again. */
export async function createDropletOnce(
  api: DigitalOceanClient,
  body: { name: string },
  tag: string,
  emit: Emit,
  ledger: ResourceLedger,
  timing: Timing,
): Promise<{ droplet: Droplet; uncertain: boolean }> {
  const attempts = 3;
  let uncertain = false;
  for (let attempt = 1; ; attempt++) {
    // Recorded before the POST: should the answer never come, the droplet is found by its tag.
    const entry = await ledger.intend('droplet', { tag, name: body.name });
    try {
      const droplet = (await api.post('/v2/droplets', body, DropletEnvelope)).droplet;
      await ledger.made(entry, droplet.id);
      return { droplet, uncertain };
    } catch (error) {
      if (!(error instanceof DigitalOceanError && error.ambiguous)) {
        // (An earlier attempt whose answer was lost keeps its entry: found by tag if it lands.)
        // Refused outright: nothing was made by this attempt.
        if (error instanceof DigitalOceanError) await ledger.forget(entry);
        throw error;
      }
      uncertain = true;
      emit({
        type: 'log',
        level: 'warn',
        message: `the droplet create may have gone through (${error.message}); looking for it by tag`,
      });
      for (const delay of timing.reconcileDelaysMs) {
        await api.sleep(delay);
        const found = await dropletsByTag(api, tag);
        if (found.length > 0) {
          const droplet = preferredDroplet(found, []);
          await ledger.made(entry, droplet.id);
          return { droplet, uncertain };
        }
      }
      if (attempt >= attempts) throw error;
      emit({ type: 'log', level: 'info', message: 'no droplet was made; creating it again' });
    }
  }
}

/**
 * Several droplets carry the tunnel's tag (a duplicate create): keep the one local state records, else the
 * holder of the reserved IP, an active one, the oldest; destroy the others.
 */
export async function keepOneDroplet(
  api: DigitalOceanClient,
  droplets: Droplet[],
  spec: TunnelSpec,
  recordedId: string | undefined,
  waits: WaitOptions,
): Promise<Droplet> {
  if (droplets.length === 1) return droplets[0]!;
  const recorded = droplets.find((d) => String(d.id) === recordedId);
  const reserved = !recorded && spec.reservedIp ? await listReservedIps(api) : [];
  const keep =
    recorded ??
    preferredDroplet(
      droplets,
      reserved.filter((r) => r.ip === spec.reservedIp).map((r) => r.droplet?.id),
    );
  const why = recorded ? 'the one local state records' : 'no local state names one';
  for (const extra of droplets.filter((d) => d.id !== keep.id)) {
    waits.emit({
      type: 'log',
      level: 'warn',
      message:
        `two droplets carry tag ${edgeTagOf(spec.name)}: destroying droplet ${extra.id}, keeping ${keep.id} (` +
        `${why})`,
    });
    await destroyDroplet(api, extra.id, waits);
  }
  return keep;
}

/** Exactly one droplet with the tunnel's tag: `keepId`; any other (a lost create that landed) is destroyed. */
export async function destroyOtherDroplets(
  api: DigitalOceanClient,
  tag: string,
  keepId: number,
  waits: WaitOptions,
): Promise<void> {
  for (const extra of (await dropletsByTag(api, tag)).filter((d) => d.id !== keepId)) {
    waits.emit({
      type: 'log',
      level: 'warn',
      message:
        `droplet ${extra.id} also carries tag ${tag} (a create whose answer was lost landed after all): ` +
        `destroying it, keeping droplet ${keepId}`,
    });
    await destroyDroplet(api, extra.id, waits);
  }
}

/** Prefers the droplet holding the reserved IP, then an active one, then the oldest. */
export function preferredDroplet(droplets: Droplet[], holders: ReadonlyArray<number | undefined>): Droplet {
  const rank = (d: Droplet): number => (holders.includes(d.id) ? 0 : d.status === 'active' ? 1 : 2);
  return [...droplets].sort((a, b) => rank(a) - rank(b) || a.created_at.localeCompare(b.created_at) || a.id - b.id)[0]!;
}
