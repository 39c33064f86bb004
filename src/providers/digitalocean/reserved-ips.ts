// Reserved IPs: assigned to the edge after the droplet's own actions have finished (an assign during a pending
// action fails with "Droplet already has a pending event"), kept across `down` unless released.
import type { DigitalOceanClient } from './client.js';
import { listAll } from './pagination.js';
import type { AddressFamily } from './reserved-address.js';
import { ReservedIp, ReservedIpEnvelope } from './schemas.js';

export const RESERVED_IPV4: AddressFamily<ReservedIp> = {
  what: 'reserved IP',
  flag: '--reserved-ip',
  releaseStep: 'edge.reserved-ip.release',
  path: (ip) => `/v2/reserved_ips/${ip}`,
  actionPath: (ip, actionId) => `/v2/reserved_ips/${ip}/actions/${actionId}`,
  get: getReservedIp,
  regionOf: (reserved) => reserved.region?.slug,
  missingHint: (edgeRegion) =>
    `reserve one in the edge's region (Networking → Reserved IPs, or doctl compute reserved-ip create ` +
    `--region ${edgeRegion ?? 'REGION'}), or drop --reserved-ip`,
  otherRegionHint: (region, edgeRegion) =>
    `reserved IPs cannot leave their region: use --region ${region}, or a reserved IP from ${edgeRegion}`,
};

export async function getReservedIp(client: DigitalOceanClient, ip: string): Promise<ReservedIp | undefined> {
  return (await client.find(`/v2/reserved_ips/${ip}`, ReservedIpEnvelope))?.reserved_ip;
}

export function listReservedIps(client: DigitalOceanClient): Promise<ReservedIp[]> {
  return listAll(client, '/v2/reserved_ips', 'reserved_ips', ReservedIp);
}
