// Reserved IPv6 (/v2/reserved_ipv6): a stable public IPv6 for the edge. Created in the edge's region for
// `--reserved-ipv6 new`, assigned once the droplet's own actions are over, kept across `down` unless released.
// The droplet must have IPv6 enabled (a stock image: custom images get none), in the same region.
import { ProviderError } from '../../lib/errors.js';
import type { DigitalOceanClient } from './client.js';
import { hasIpv6Feature } from './droplets.js';
import { DigitalOceanError } from './api-errors.js';
import { listAll } from './pagination.js';
import type { AddressFamily } from './reserved-address.js';
import { ReservedIpv6, ReservedIpv6Envelope } from './schemas.js';

export const RESERVED_IPV6: AddressFamily<ReservedIpv6> = {
  what: 'reserved IPv6',
  flag: '--reserved-ipv6',
  releaseStep: 'edge.reserved-ipv6.release',
  reservedKind: 'reserved-ipv6',
  path: (ip) => `/v2/reserved_ipv6/${ip}`,
  // Unlike a reserved IP's, an IPv6 action is polled at /v2/actions.
  actionPath: (_ip, actionId) => `/v2/actions/${actionId}`,
  get: getReservedIpv6,
  regionOf: (reserved) => reserved.region_slug ?? undefined,
  missingHint: (edgeRegion) =>
    `pass --reserved-ipv6 new to reserve one in ${edgeRegion ?? "the edge's region"}, or drop --reserved-ipv6`,
  otherRegionHint: (region) => `reserved IPs cannot leave their region: use --region ${region}, or --reserved-ipv6 new`,
  refuseDroplet(droplet, ip) {
    if (hasIpv6Feature(droplet)) return;
    throw new ProviderError(`droplet ${droplet.id} has no IPv6, so reserved IPv6 ${ip} cannot be assigned to it`, {
      hint:
        'the edge must be made from a stock image with IPv6 (--bootstrap nixos-anywhere --ipv6); re-create it ' +
        'with innisfree up --replace-edge',
    });
  },
};

export async function getReservedIpv6(client: DigitalOceanClient, ip: string): Promise<ReservedIpv6 | undefined> {
  return (await client.find(RESERVED_IPV6.path(ip), ReservedIpv6Envelope))?.reserved_ipv6;
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
