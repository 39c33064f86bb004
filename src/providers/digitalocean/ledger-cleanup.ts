// Removing what a run's ledger lists (newest first), each found by its id or, where the create's answer was lost,
// by tag or name: what a failed, interrupted or killed run of up made.
import type { Emit } from '../../lib/events.js';
import type { LedgerEntry, ResourceLedger } from '../../state/resources.js';
import { type AdapterContext, waitsOf } from './adapter-context.js';
import type { DigitalOceanClient } from './client.js';
import { removeRecord } from './dns.js';
import { type WaitOptions, destroyDroplet, dropletsByTag } from './droplets.js';
import { findFirewall } from './firewall.js';
import { releaseAddress } from './reserved-address.js';
import { RESERVED_IPV6, getReservedIpv6 } from './reserved-ipv6.js';

/**
 * Removes what the ledger lists, with a client of its own, so an interrupt does not cancel the cleanup it
 * triggered. Each entry removed leaves the ledger; what could not be removed stays in it for the next up, down or
 * clean. Returns the number of entries left.
 */
export async function removeRecorded(
  context: AdapterContext,
  ledger: ResourceLedger,
  emit: Emit,
  why: string,
): Promise<number> {
  const api = context.client.scoped({ signal: undefined, emit });
  const waits = waitsOf(context, emit);
  let left = 0;
  for (const entry of [...ledger.entries()].reverse()) {
    try {
      const removed = await removeEntry(api, entry, waits);
      await ledger.forget(entry);
      for (const what of removed) emit({ type: 'log', level: 'info', message: `removed ${what} (${why})` });
    } catch (error) {
      left++;
      emit({
        type: 'log',
        level: 'warn',
        message:
          `could not remove ${describeEntry(entry)} (${why}): ${(error as Error).message}; innisfree down ` +
          `${ledger.tunnel} or innisfree clean removes it later`,
      });
    }
  }
  return left;
}

/** Removes one entry's resource; returns what was removed (nothing when it was already gone). */
async function removeEntry(api: DigitalOceanClient, entry: LedgerEntry, waits: WaitOptions): Promise<string[]> {
  const find = entry.find;
  switch (entry.kind) {
    case 'droplet': {
      const ids =
        entry.id !== undefined ? [Number(entry.id)] : (await dropletsByTag(api, String(find.tag))).map((d) => d.id);
      const removed: string[] = [];
      for (const id of ids) {
        const deleted = await destroyDroplet(api, id, waits);
        if (deleted) removed.push(`droplet ${id}`);
      }
      return removed;
    }
    case 'ssh-key': {
      const deleted = await api.delete(`/v2/account/keys/${entry.id ?? String(find.fingerprint)}`, {
        missingOk: true,
      });
      return deleted ? [`SSH key ${String(find.name ?? find.fingerprint)}`] : [];
    }
    case 'firewall': {
      const id = entry.id ?? (await findFirewall(api, String(find.name)))?.id;
      if (id === undefined) return [];
      return (await api.delete(`/v2/firewalls/${id}`, { missingOk: true }))
        ? [`cloud firewall ${String(find.name)}`]
        : [];
    }
    case 'dns-record': {
      const where = {
        domain: String(find.domain),
        type: String(find.type),
        fqdn: String(find.fqdn),
        data: String(find.data),
      };
      const count = await removeRecord(api, where, entry.id);
      return count > 0 ? [`DNS ${where.type} ${where.fqdn} → ${where.data}`] : [];
    }
    case 'reserved-ip-assignment':
    case 'reserved-ipv6-assignment':
      // Deleting the droplet unassigns the IP; the reserved IP itself is the user's and stays.
      return [];
    case 'reserved-ipv6': {
      // Reserved by this run (--reserved-ipv6 new): released again. Without an id its create never answered and
      // createReservedIpv6 found nothing it made.
      if (entry.id === undefined) return [];
      const held = await getReservedIpv6(api, entry.id);
      if (!held) return [];
      await releaseAddress(api, RESERVED_IPV6, held, waits);
      return [`reserved IPv6 ${entry.id}`];
    }
  }
}

function describeEntry(entry: LedgerEntry): string {
  const how =
    entry.id !== undefined
      ? `id ${entry.id}`
      : Object.entries(entry.find)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
  return `${entry.kind} (${how})`;
}
