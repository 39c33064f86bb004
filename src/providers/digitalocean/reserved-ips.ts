// Reserved IPs: assigned to the edge after the droplet's own actions have finished (an assign during a pending
// action fails with "Droplet already has a pending event"), kept across `down` unless released.
import { ProviderError } from '../../lib/errors.js';
import type { DigitalOceanClient } from './client.js';
import type { WaitOptions } from './droplets.js';
import { listAll } from './pagination.js';
import { type AddressFamily, refuseForeignHolder, runAssign } from './reserved-address.js';
import { type Droplet, ReservedIp, ReservedIpEnvelope } from './schemas.js';

export const RESERVED_IPV4: AddressFamily<ReservedIp> = {
  what: 'reserved IP',
  flag: '--reserved-ip',
  releaseStep: 'edge.reserved-ip.release',
  path: (ip) => `/v2/reserved_ips/${ip}`,
  actionPath: (ip, actionId) => `/v2/reserved_ips/${ip}/actions/${actionId}`,
  get: getReservedIp,
};

export async function getReservedIp(client: DigitalOceanClient, ip: string): Promise<ReservedIp | undefined> {
  return (await client.find(`/v2/reserved_ips/${ip}`, ReservedIpEnvelope))?.reserved_ip;
}

export function listReservedIps(client: DigitalOceanClient): Promise<ReservedIp[]> {
  return listAll(client, '/v2/reserved_ips', 'reserved_ips', ReservedIp);
}

/** Makes `ip` point at `droplet`. Refuses to take it from a droplet that is not this tunnel's edge. */
export async function assignReservedIp(
  client: DigitalOceanClient,
  ip: string,
  droplet: Droplet,
  tunnel: string,
  options: WaitOptions,
): Promise<void> {
  const reserved = await getReservedIp(client, ip);
  if (!reserved) {
    throw new ProviderError(`reserved IP ${ip} is not in this DigitalOcean account`, {
      hint:
        `reserve one in the edge's region (Networking → Reserved IPs, or doctl compute reserved-ip create ` +
        `--region ${droplet.region?.slug ?? 'REGION'}), or drop --reserved-ip`,
    });
  }
  if (reserved.droplet?.id === droplet.id) return;
  refuseForeignHolder(RESERVED_IPV4, ip, reserved.droplet, tunnel);
  const region = reserved.region?.slug;
  if (region && droplet.region?.slug && region !== droplet.region.slug) {
    throw new ProviderError(
      `reserved IP ${ip} belongs to region ${region}, but the edge is in ${droplet.region.slug}`,
      {
        hint:
          `reserved IPs cannot leave their region: use --region ${region}, or a reserved IP from ` +
          `${droplet.region.slug}`,
      },
    );
  }
  await runAssign(client, RESERVED_IPV4, ip, droplet, options);
}
