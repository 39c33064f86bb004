// Finding edges by tag for status and list: the tunnel's droplet (the holder of a reserved IP preferred), or every
// innisfree droplet of the account, each with the reserved addresses it holds.
import { EDGE_TAG, edgeTagOf } from '../../spec/tunnel.js';
import type { EdgeInfo } from '../provider.js';
import type { DigitalOceanClient } from './client.js';
import { edgeInfoOf, reservedIpOf } from './droplet-edge-info.js';
import { dropletsByTag } from './droplets.js';
import { reservedIpv6sFor } from './edge-addresses.js';
import { preferredDroplet } from './one-droplet.js';
import { listReservedIps } from './reserved-ips.js';

export async function findDropletEdge(client: DigitalOceanClient, tunnel: string): Promise<EdgeInfo | undefined> {
  const droplets = await dropletsByTag(client, edgeTagOf(tunnel));
  if (droplets.length === 0) return undefined;
  const reserved = await listReservedIps(client);
  const droplet = preferredDroplet(
    droplets,
    reserved.map((r) => r.droplet?.id),
  );
  const reserved6 = await reservedIpv6sFor(client, [droplet]);
  return edgeInfoOf(droplet, reservedIpOf(droplet, reserved), reservedIpOf(droplet, reserved6));
}

export async function listDropletEdges(client: DigitalOceanClient): Promise<EdgeInfo[]> {
  const droplets = await dropletsByTag(client, EDGE_TAG);
  if (droplets.length === 0) return [];
  const reserved = await listReservedIps(client);
  const reserved6 = await reservedIpv6sFor(client, droplets);
  return droplets
    .map((d) => edgeInfoOf(d, reservedIpOf(d, reserved), reservedIpOf(d, reserved6)))
    .sort((a, b) => a.tunnel.localeCompare(b.tunnel) || a.createdAt.localeCompare(b.createdAt));
}
