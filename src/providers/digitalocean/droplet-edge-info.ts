// An edge as the Provider port describes it, read off its droplet and the reserved addresses it holds.
import type { EdgeInfo } from '../provider.js';
import { publicIpv4, publicIpv6, tunnelOf } from './droplets.js';
import type { Droplet, ReservedIp, ReservedIpv6 } from './schemas.js';

export function edgeInfoOf(droplet: Droplet, reservedIp: string | undefined, reservedIpv6?: string): EdgeInfo {
  const direct = publicIpv4(droplet);
  const directIpv6 = publicIpv6(droplet);
  const ipv6 = reservedIpv6 ?? directIpv6;
  const price = droplet.size?.price_monthly;
  const image =
    droplet.image?.name ?? droplet.image?.slug ?? (droplet.image?.id == null ? undefined : String(droplet.image.id));
  return {
    provider: 'digitalocean',
    id: String(droplet.id),
    name: droplet.name,
    tunnel: tunnelOf(droplet) ?? droplet.name.replace(/^innisfree-/, ''),
    ipv4: reservedIp ?? direct ?? '',
    ...(reservedIp && direct ? { directIpv4: direct } : {}),
    ...(ipv6 ? { ipv6 } : {}),
    ...(reservedIpv6 && directIpv6 ? { directIpv6 } : {}),
    region: droplet.region?.slug ?? '',
    size: droplet.size_slug ?? droplet.size?.slug ?? '',
    status: droplet.status,
    createdAt: droplet.created_at,
    ...(typeof price === 'number' ? { priceMonthly: price } : {}),
    ...(image ? { image } : {}),
  };
}

/** The reserved address (IPv4 or IPv6) of `reserved` that `droplet` holds. */
export function reservedIpOf(droplet: Droplet, reserved: ReadonlyArray<ReservedIp | ReservedIpv6>): string | undefined {
  return reserved.find((r) => r.droplet?.id === droplet.id)?.ip;
}
