// Reserved IPv6 (/v2/reserved_ipv6): a stable public IPv6 for the edge. Created in the edge's region for
// `--reserved-ipv6 new`, assigned once the droplet's own actions are over, kept across `down` unless released.
// The droplet must have IPv6 enabled (a stock image: custom images get none), in the same region.
import { ProviderError } from '../../lib/errors.js';
import type { DigitalOceanClient } from './client.js';
import { type WaitOptions, hasIpv6Feature, waitAction, waitNoPendingActions } from './droplets.js';
import { DigitalOceanError } from './api-errors.js';
import { listAll } from './pagination.js';
import { isTunnelDroplet } from './tags.js';
import { ActionEnvelope, type Droplet, ReservedIpv6, ReservedIpv6Envelope } from './schemas.js';

const path = (ip: string): string => `/v2/reserved_ipv6/${ip}`;

export async function getReservedIpv6(client: DigitalOceanClient, ip: string): Promise<ReservedIpv6 | undefined> {
  return (await client.find(path(ip), ReservedIpv6Envelope))?.reserved_ipv6;
}

export function listReservedIpv6s(client: DigitalOceanClient): Promise<ReservedIpv6[]> {
  return listAll(client, '/v2/reserved_ipv6', 'reserved_ipv6s', ReservedIpv6);
}

/**
 * Reserves a new IPv6 in `region`. The create is not idempotent: when its answer is lost, the addresses of the
 * region that no droplet holds and that were not there before are the ones it made (`before` is the list taken
 * just before the POST), so a retry never leaves a second, billed address behind.
 */
export async function createReservedIpv6(
  client: DigitalOceanClient,
  region: string,
  before: readonly ReservedIpv6[],
): Promise<ReservedIpv6> {
  try {
    return (await client.post('/v2/reserved_ipv6', { region_slug: region }, ReservedIpv6Envelope)).reserved_ipv6;
  } catch (error) {
    if (!(error instanceof DigitalOceanError && error.ambiguous)) throw error;
    const known = new Set(before.map((r) => r.ip));
    const landed = (await listReservedIpv6s(client)).filter(
      (r) => !known.has(r.ip) && r.region_slug === region && !r.droplet,
    );
    if (landed.length === 1) return landed[0]!;
    throw error;
  }
}

/** Makes `ip` point at `droplet`. Refuses to take it from a droplet that is not this tunnel's edge. */
export async function assignReservedIpv6(
  client: DigitalOceanClient,
  ip: string,
  droplet: Droplet,
  tunnel: string,
  options: WaitOptions,
): Promise<void> {
  const reserved = await getReservedIpv6(client, ip);
  if (!reserved) {
    throw new ProviderError(`reserved IPv6 ${ip} is not in this DigitalOcean account`, {
      hint:
        `pass --reserved-ipv6 new to reserve one in ${droplet.region?.slug ?? "the edge's region"}, or drop ` +
        `--reserved-ipv6`,
    });
  }
  if (reserved.droplet?.id === droplet.id) return;
  const holder = reserved.droplet;
  if (holder && !isTunnelDroplet(holder, tunnel)) {
    throw new ProviderError(
      `reserved IPv6 ${ip} is assigned to droplet ${holder.name ?? holder.id} (${holder.id}), which is not this ` +
        `tunnel's edge`,
      {
        hint: 'unassign it from that droplet first, or pick another --reserved-ipv6',
      },
    );
  }
  const region = reserved.region_slug;
  if (region && droplet.region?.slug && region !== droplet.region.slug) {
    throw new ProviderError(
      `reserved IPv6 ${ip} belongs to region ${region}, but the edge is in ${droplet.region.slug}`,
      {
        hint: `reserved IPs cannot leave their region: use --region ${region}, or --reserved-ipv6 new`,
      },
    );
  }
  if (!hasIpv6Feature(droplet)) {
    throw new ProviderError(`droplet ${droplet.id} has no IPv6, so reserved IPv6 ${ip} cannot be assigned to it`, {
      hint:
        'the edge must be made from a stock image with IPv6 (--bootstrap nixos-anywhere --ipv6); re-create it ' +
        'with innisfree up --replace-edge',
    });
  }
  await waitNoPendingActions(client, droplet.id, options);
  const { action } = await client.post(
    `${path(ip)}/actions`,
    { type: 'assign', droplet_id: droplet.id },
    ActionEnvelope,
    { idempotent: true },
  );
  const done = await waitAction(client, `/v2/actions/${action.id}`, `assign ${ip} to droplet ${droplet.id}`, options);
  if (!done && (await getReservedIpv6(client, ip))?.droplet?.id !== droplet.id) {
    throw new ProviderError(`assigning reserved IPv6 ${ip} to droplet ${droplet.id} did not take effect`, {
      hint: 'run the command again',
    });
  }
}

/** Unassigns a reserved IPv6 (when assigned) and waits for it. */
export async function unassignReservedIpv6(
  client: DigitalOceanClient,
  reserved: ReservedIpv6,
  options: WaitOptions,
): Promise<void> {
  if (!reserved.droplet) return;
  await waitNoPendingActions(client, reserved.droplet.id, options);
  const { action } = await client.post(`${path(reserved.ip)}/actions`, { type: 'unassign' }, ActionEnvelope, {
    idempotent: true,
  });
  await waitAction(client, `/v2/actions/${action.id}`, `unassign ${reserved.ip}`, options);
}

/** Unassigns (when assigned) and deletes a reserved IPv6; one already gone is fine. */
export async function releaseReservedIpv6(
  client: DigitalOceanClient,
  reserved: ReservedIpv6,
  options: WaitOptions,
): Promise<void> {
  await unassignReservedIpv6(client, reserved, options);
  await client.delete(path(reserved.ip), { missingOk: true });
}
