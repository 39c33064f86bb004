// DNS: A/AAAA records for `--dns host.example.com` in a domain the account manages, created or updated in place
// (never duplicated), and removed on `down`. Which host name an edge owns is kept on the droplet itself as the tag
// `innisfree-dns:<host with "." written as "_">`, so `down` finds the record without local state.
import { ProviderError } from '../../lib/errors.js';
import type { Emit } from '../../lib/events.js';
import type { ResourceLedger } from '../../state/resources.js';
import type { DigitalOceanClient } from './client.js';
import { DigitalOceanError } from './api-errors.js';
import { listAll } from './pagination.js';
import { DomainEnvelope, DomainRecord, DomainRecordEnvelope } from './schemas.js';

export const DNS_TAG_PREFIX = 'innisfree-dns:';
export const RECORD_TTL = 60;

export function normalizeHostname(hostname: string): string {
  return hostname.toLowerCase().replace(/\.$/, '');
}

/** The tag recording that an edge owns `hostname`; undefined when the name is too long for a tag (255). */
export function dnsTagOf(hostname: string): string | undefined {
  const tag = `${DNS_TAG_PREFIX}${normalizeHostname(hostname).replace(/\./g, '_')}`;
  return tag.length <= 255 ? tag : undefined;
}

export function hostnameOfDnsTag(tag: string): string | undefined {
  if (!tag.startsWith(DNS_TAG_PREFIX)) return undefined;
  return tag.slice(DNS_TAG_PREFIX.length).replace(/_/g, '.');
}

export interface Zone {
  /** The domain as the account knows it, e.g. example.com. */
  domain: string;
  /** The record name relative to it: "www", or "@" for the apex. */
  name: string;
  fqdn: string;
}

/** The longest domain in the account that contains `hostname`, or undefined. */
export async function findZone(client: DigitalOceanClient, hostname: string): Promise<Zone | undefined> {
  const fqdn = normalizeHostname(hostname);
  const labels = fqdn.split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    const domain = labels.slice(i).join('.');
    if (await client.find(`/v2/domains/${domain}`, DomainEnvelope)) {
      return { domain, name: i === 0 ? '@' : labels.slice(0, i).join('.'), fqdn };
    }
  }
  return undefined;
}

async function recordsFor(client: DigitalOceanClient, zone: Zone, type: 'A' | 'AAAA'): Promise<DomainRecord[]> {
  return listAll(client, `/v2/domains/${zone.domain}/records`, 'domain_records', DomainRecord, {
    type,
    name: zone.fqdn,
  });
}

/**
 * Points `hostname` at the given addresses: per type, the first existing record is updated (or one is created),
 * and further records of that type and name are removed so the name resolves to the edge only.
 */
export async function upsertAddressRecords(
  client: DigitalOceanClient,
  hostname: string,
  addresses: { ipv4: string; ipv6?: string | undefined },
  emit: Emit,
  ledger?: ResourceLedger,
): Promise<Zone> {
  const zone = await findZone(client, hostname);
  if (!zone) {
    throw new ProviderError(`--dns ${hostname}: no domain of this DigitalOcean account contains it`, {
      hint:
        'add the domain under Networking → Domains in the DigitalOcean control panel (and delegate it to ' +
        'DigitalOcean), or drop --dns',
    });
  }
  const wanted: Array<['A' | 'AAAA', string]> = [['A', addresses.ipv4]];
  if (addresses.ipv6) wanted.push(['AAAA', addresses.ipv6]);
  for (const [type, data] of wanted) {
    const existing = await recordsFor(client, zone, type);
    const keep = existing.find((r) => r.data === data) ?? existing[0];
    const body = { type, name: zone.name, data, ttl: RECORD_TTL };
    if (!keep) {
      await createRecord(client, zone, type, body, ledger);
      emit({ type: 'log', level: 'info', message: `DNS ${type} ${zone.fqdn} → ${data} created` });
    } else if (keep.data !== data || keep.ttl !== RECORD_TTL) {
      await client.request('PUT', `/v2/domains/${zone.domain}/records/${keep.id}`, { body });
      emit({ type: 'log', level: 'info', message: `DNS ${type} ${zone.fqdn} → ${data} updated (was ${keep.data})` });
    }
    for (const extra of existing.filter((r) => r.id !== keep?.id)) {
      await client.delete(`/v2/domains/${zone.domain}/records/${extra.id}`, { missingOk: true });
      emit({
        type: 'log',
        level: 'info',
        message: `DNS ${type} ${zone.fqdn} → ${extra.data} removed (the name now points at the edge only)`,
      });
    }
  }
  if (!addresses.ipv6) {
    const stale = await recordsFor(client, zone, 'AAAA');
    if (stale.length > 0) {
      emit({
        type: 'log',
        level: 'warn',
        message:
          `DNS ${zone.fqdn} also has AAAA ${stale.map((r) => r.data).join(', ')}, which is not this edge (it has ` +
          `no IPv6); left as is`,
      });
    }
  }
  return zone;
}

async function createRecord(
  client: DigitalOceanClient,
  zone: Zone,
  type: 'A' | 'AAAA',
  body: { data: string },
  ledger: ResourceLedger | undefined,
): Promise<void> {
  const entry = await ledger?.intend('dns-record', { domain: zone.domain, type, fqdn: zone.fqdn, data: body.data });
  try {
    const made = await client.post(`/v2/domains/${zone.domain}/records`, body, DomainRecordEnvelope);
    if (entry) await ledger?.made(entry, made.domain_record.id);
  } catch (error) {
    const ambiguous = error instanceof DigitalOceanError && error.ambiguous;
    // A create that may have gone through is looked for before anything else happens.
    const found = ambiguous ? (await recordsFor(client, zone, type)).find((r) => r.data === body.data) : undefined;
    if (found) {
      if (entry) await ledger?.made(entry, found.id);
      return;
    }
    if (entry && !ambiguous) await ledger?.forget(entry);
    throw error;
  }
}

/** Removes one record this innisfree made: by id, or (its create unconfirmed) by name, type and address. */
export async function removeRecord(
  client: DigitalOceanClient,
  where: { domain: string; type: string; fqdn: string; data: string },
  id: string | undefined,
): Promise<number> {
  if (id !== undefined)
    return (await client.delete(`/v2/domains/${where.domain}/records/${id}`, { missingOk: true })) ? 1 : 0;
  const zone: Zone = { domain: where.domain, fqdn: where.fqdn, name: '' };
  let removed = 0;
  for (const record of await recordsFor(client, zone, where.type === 'AAAA' ? 'AAAA' : 'A').catch(notFoundAsEmpty)) {
    if (record.data !== where.data) continue;
    if (await client.delete(`/v2/domains/${where.domain}/records/${record.id}`, { missingOk: true })) removed++;
  }
  return removed;
}

function notFoundAsEmpty(error: unknown): DomainRecord[] {
  if (error instanceof DigitalOceanError && error.notFound) return [];
  throw error;
}

/** Removes the A/AAAA records of `hostname` that point at one of `addresses`; returns how many. */
export async function removeAddressRecords(
  client: DigitalOceanClient,
  hostname: string,
  addresses: readonly string[],
): Promise<number> {
  const zone = await findZone(client, hostname);
  if (!zone) return 0;
  let removed = 0;
  for (const type of ['A', 'AAAA'] as const) {
    for (const record of await recordsFor(client, zone, type)) {
      if (!addresses.includes(record.data)) continue;
      if (await client.delete(`/v2/domains/${zone.domain}/records/${record.id}`, { missingOk: true })) removed++;
    }
  }
  return removed;
}
