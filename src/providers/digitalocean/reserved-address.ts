// What reserved IPs and reserved IPv6 share: who may hold one, the refusals before an assign, and the assign and
// unassign actions, run once the droplet's own actions are over (an action during a pending one fails with "Droplet
// already has a pending event"). The two families differ in their paths, where an action is polled, how they name
// their region, their names and hints in messages, and (IPv6 only) which droplets can take one.
import { ProviderError } from '../../lib/errors.js';
import type { ResourceKind } from '../../state/resources.js';
import type { DigitalOceanClient } from './client.js';
import { type WaitOptions, waitAction, waitNoPendingActions } from './droplets.js';
import { isTunnelDroplet } from './tags.js';
import { ActionEnvelope, type Droplet, type ReservedIp, type ReservedIpv6 } from './schemas.js';

/** A reserved IPv4 or IPv6 as the account lists it. */
export type ReservedAddress = ReservedIp | ReservedIpv6;

type Holder = NonNullable<ReservedAddress['droplet']>;

export interface AddressFamily<R extends ReservedAddress> {
  /** How messages name one: "reserved IP", "reserved IPv6". */
  what: string;
  /** The option that picks one. */
  flag: string;
  /** The id of the step that releases one at `down`. */
  releaseStep: string;
  /** The ledger kind of an address a run reserved itself (only IPv6 is ever reserved by innisfree). */
  reservedKind?: ResourceKind;
  path(ip: string): string;
  /** Where an action on `ip` is polled. */
  actionPath(ip: string, actionId: number): string;
  get(client: DigitalOceanClient, ip: string): Promise<R | undefined>;
  /** The region an address belongs to (the two families spell it differently). */
  regionOf(reserved: R): string | undefined;
  /** What to do when `ip` is not in the account, for an edge in `edgeRegion`. */
  missingHint(edgeRegion: string | undefined): string;
  /** What to do when the address is in `region`, not the edge's `edgeRegion`. */
  otherRegionHint(region: string, edgeRegion: string): string;
  /** Refuses a droplet that cannot take an address of this family at all. */
  refuseDroplet?(droplet: Droplet, ip: string): void;
}

/** Refuses to take `ip` from a droplet that is not this tunnel's edge. */
export function refuseForeignHolder<R extends ReservedAddress>(
  family: AddressFamily<R>,
  ip: string,
  holder: Holder | null | undefined,
  tunnel: string,
): void {
  if (holder && !isTunnelDroplet(holder, tunnel)) {
    throw new ProviderError(
      `${family.what} ${ip} is assigned to droplet ${holder.name ?? holder.id} (${holder.id}), which is not this ` +
        `tunnel's edge`,
      {
        hint: `unassign it from that droplet first, or pick another ${family.flag}`,
      },
    );
  }
}

/**
 * Makes `ip` point at `droplet`: refuses an address that is not in the account, held by a droplet that is not this
 * tunnel's edge, or in another region (reserved addresses cannot leave theirs), and a droplet that cannot take it.
 */
export async function assignReservedAddress<R extends ReservedAddress>(
  client: DigitalOceanClient,
  family: AddressFamily<R>,
  ip: string,
  droplet: Droplet,
  tunnel: string,
  options: WaitOptions,
): Promise<void> {
  const edgeRegion = droplet.region?.slug;
  const reserved = await family.get(client, ip);
  if (!reserved) {
    throw new ProviderError(`${family.what} ${ip} is not in this DigitalOcean account`, {
      hint: family.missingHint(edgeRegion),
    });
  }
  if (reserved.droplet?.id === droplet.id) return;
  refuseForeignHolder(family, ip, reserved.droplet, tunnel);
  const region = family.regionOf(reserved);
  if (region && edgeRegion && region !== edgeRegion) {
    throw new ProviderError(`${family.what} ${ip} belongs to region ${region}, but the edge is in ${edgeRegion}`, {
      hint: family.otherRegionHint(region, edgeRegion),
    });
  }
  family.refuseDroplet?.(droplet, ip);
  await runAssign(client, family, ip, droplet, options);
}

/** Assigns `ip` to `droplet` and waits for it; an action that vanished is checked on the address itself. */
async function runAssign<R extends ReservedAddress>(
  client: DigitalOceanClient,
  family: AddressFamily<R>,
  ip: string,
  droplet: Droplet,
  options: WaitOptions,
): Promise<void> {
  await waitNoPendingActions(client, droplet.id, options);
  const { action } = await client.post(
    `${family.path(ip)}/actions`,
    { type: 'assign', droplet_id: droplet.id },
    ActionEnvelope,
    { idempotent: true },
  );
  const done = await waitAction(
    client,
    family.actionPath(ip, action.id),
    `assign ${ip} to droplet ${droplet.id}`,
    options,
  );
  if (!done && (await family.get(client, ip))?.droplet?.id !== droplet.id) {
    throw new ProviderError(`assigning ${family.what} ${ip} to droplet ${droplet.id} did not take effect`, {
      hint: 'run the command again',
    });
  }
}

/** Unassigns (when assigned) and deletes a reserved address; one already gone is fine. */
export async function releaseAddress<R extends ReservedAddress>(
  client: DigitalOceanClient,
  family: AddressFamily<R>,
  reserved: R,
  options: WaitOptions,
): Promise<void> {
  if (reserved.droplet) {
    await waitNoPendingActions(client, reserved.droplet.id, options);
    const { action } = await client.post(`${family.path(reserved.ip)}/actions`, { type: 'unassign' }, ActionEnvelope, {
      idempotent: true,
    });
    await waitAction(client, family.actionPath(reserved.ip, action.id), `unassign ${reserved.ip}`, options);
  }
  await client.delete(family.path(reserved.ip), { missingOk: true });
}
