// Reserved IPs: assigned to the edge after the droplet's own actions have finished (an assign during a pending
// action fails with "Droplet already has a pending event"), kept across `down` unless released.
import { ProviderError } from '../../lib/errors.js';
import type { DigitalOceanClient } from './client.js';
import { type WaitOptions, waitAction, waitNoPendingActions } from './droplets.js';
import { listAll } from './pagination.js';
import { isTunnelDroplet } from './tags.js';
import { ActionEnvelope, type Droplet, ReservedIp, ReservedIpEnvelope } from './schemas.js';

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
  const holder = reserved.droplet;
  if (holder && !isTunnelDroplet(holder, tunnel)) {
    throw new ProviderError(
      `reserved IP ${ip} is assigned to droplet ${holder.name ?? holder.id} (${holder.id}), which is not this ` +
        `tunnel's edge`,
      {
        hint: 'unassign it from that droplet first, or pick another --reserved-ip',
      },
    );
  }
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
  await waitNoPendingActions(client, droplet.id, options);
  const { action } = await client.post(
    `/v2/reserved_ips/${ip}/actions`,
    { type: 'assign', droplet_id: droplet.id },
    ActionEnvelope,
    { idempotent: true },
  );
  const done = await waitAction(
    client,
    `/v2/reserved_ips/${ip}/actions/${action.id}`,
    `assign ${ip} to droplet ${droplet.id}`,
    options,
  );
  if (!done) {
    // The action vanished; the reserved IP itself says whether the assignment happened.
    const after = await getReservedIp(client, ip);
    if (after?.droplet?.id !== droplet.id) {
      throw new ProviderError(`assigning reserved IP ${ip} to droplet ${droplet.id} did not take effect`, {
        hint: 'run the command again',
      });
    }
  }
}

/** Unassigns (when assigned) and deletes a reserved IP. */
export async function releaseReservedIp(
  client: DigitalOceanClient,
  reserved: ReservedIp,
  options: WaitOptions,
): Promise<void> {
  if (reserved.droplet) {
    await waitNoPendingActions(client, reserved.droplet.id, options);
    const { action } = await client.post(
      `/v2/reserved_ips/${reserved.ip}/actions`,
      { type: 'unassign' },
      ActionEnvelope,
      {
        idempotent: true,
      },
    );
    await waitAction(
      client,
      `/v2/reserved_ips/${reserved.ip}/actions/${action.id}`,
      `unassign ${reserved.ip}`,
      options,
    );
  }
  await client.delete(`/v2/reserved_ips/${reserved.ip}`, { missingOk: true });
}
