// The edge's reserved addresses, IPv4 and IPv6 alike: assigned to the edge (an IPv6 reserved first for "new", with
// ledger entries so a failed or killed run undoes it), found on the droplets that hold them, and at `down` released
// when asked, else reported as kept.
import { ProviderError } from '../../lib/errors.js';
import { step } from '../../lib/events.js';
import type { TunnelSpec } from '../../spec/tunnel.js';
import type { ResourceLedger } from '../../state/resources.js';
import { DigitalOceanError } from './api-errors.js';
import type { DigitalOceanClient } from './client.js';
import { type WaitOptions, hasIpv6Feature } from './droplets.js';
import { type AddressFamily, type ReservedAddress, assignReservedAddress, releaseAddress } from './reserved-address.js';
import { RESERVED_IPV4 } from './reserved-ips.js';
import { RESERVED_IPV6, createReservedIpv6, listReservedIpv6s } from './reserved-ipv6.js';
import type { Droplet, ReservedIpv6 } from './schemas.js';

/** Assigns the spec's reserved IP to the droplet, recorded in the ledger around the assignment. */
export async function assignRecordedReservedIp(
  api: DigitalOceanClient,
  spec: TunnelSpec,
  ip: string,
  droplet: Droplet,
  ledger: ResourceLedger,
  waits: WaitOptions,
): Promise<string> {
  const entry = await ledger.intend('reserved-ip-assignment', { ip, droplet: droplet.id });
  await step(waits.emit, 'edge.reserved-ip', `Assign reserved IP ${ip}`, () =>
    assignReservedAddress(api, RESERVED_IPV4, ip, droplet, spec.name, waits),
  );
  await ledger.made(entry, ip);
  return ip;
}

/**
 * The edge's reserved IPv6: the given one, or for "new" the one the edge already holds, else one reserved now in
 * the edge's region (recorded in the ledger before the create, so a failed or killed run releases it again).
 */
export async function ensureReservedIpv6(
  api: DigitalOceanClient,
  spec: TunnelSpec,
  droplet: Droplet,
  ledger: ResourceLedger,
  waits: WaitOptions,
): Promise<string> {
  let ip = spec.reservedIpv6!;
  if (ip === 'new') {
    const all = await listReservedIpv6s(api);
    const held = all.find((r) => r.droplet?.id === droplet.id);
    if (held) {
      ip = held.ip;
    } else {
      const region = droplet.region?.slug ?? spec.region;
      const entry = await ledger.intend('reserved-ipv6', { region });
      try {
        ip = (await createReservedIpv6(api, region, all)).ip;
      } catch (error) {
        if (error instanceof DigitalOceanError && !error.ambiguous) await ledger.forget(entry);
        throw error;
      }
      await ledger.made(entry, ip);
      waits.emit({ type: 'log', level: 'info', message: `reserved IPv6 ${ip} in ${region}` });
    }
  }
  const entry = await ledger.intend('reserved-ipv6-assignment', { ip, droplet: droplet.id });
  await assignReservedAddress(api, RESERVED_IPV6, ip, droplet, spec.name, waits);
  await ledger.made(entry, ip);
  return ip;
}

/** The account's reserved IPv6 list, fetched only when one of `droplets` has IPv6 (none can hold one otherwise). */
export async function reservedIpv6sFor(
  client: DigitalOceanClient,
  droplets: readonly Droplet[],
): Promise<ReservedIpv6[]> {
  return droplets.some(hasIpv6Feature) ? listReservedIpv6s(client) : [];
}

/**
 * Releases a reserved address the edge held, when asked; else says it is kept, unless this run reserved it itself
 * (its ledger releases it then).
 */
export async function releaseHeldAddress<R extends ReservedAddress>(
  family: AddressFamily<R>,
  api: DigitalOceanClient,
  held: R | undefined,
  options: { releaseIp?: boolean | undefined; ledger?: ResourceLedger | undefined },
  waits: WaitOptions,
): Promise<void> {
  if (held && options.releaseIp) {
    await step(waits.emit, family.releaseStep, `Release ${family.what} ${held.ip}`, () =>
      releaseAddress(api, family, held, waits),
    );
  } else if (held && !isReservedByRun(family, options.ledger, held.ip)) {
    waits.emit({
      type: 'log',
      level: 'info',
      message: `${family.what} ${held.ip} is kept (pass --release-ip to release it)`,
    });
  }
}

/**
 * Releases the reserved address local state records as kept for the tunnel, which no edge droplet held any more;
 * refuses to take it from a droplet that is not the tunnel's edge.
 */
export async function releaseKeptAddress<R extends ReservedAddress>(
  family: AddressFamily<R>,
  api: DigitalOceanClient,
  kept: string,
  tag: string,
  waits: WaitOptions,
): Promise<void> {
  const held = await family.get(api, kept);
  if (!held) {
    waits.emit({ type: 'log', level: 'info', message: `${family.what} ${kept} is no longer in the account` });
  } else if (held.droplet && !held.droplet.tags.includes(tag)) {
    throw new ProviderError(
      `${family.what} ${kept} is now assigned to droplet ${held.droplet.name ?? held.droplet.id}, which is not ` +
        `this tunnel's edge`,
      {
        hint: 'release it in the DigitalOcean control panel if it is no longer needed',
      },
    );
  } else {
    await step(waits.emit, family.releaseStep, `Release ${family.what} ${kept}`, () =>
      releaseAddress(api, family, held, waits),
    );
  }
}

/** A reserved address this run reserved itself: its ledger releases it, so it is not reported as kept. */
function isReservedByRun<R extends ReservedAddress>(
  family: AddressFamily<R>,
  ledger: ResourceLedger | undefined,
  ip: string,
): boolean {
  return !!family.reservedKind && !!ledger?.entries().some((e) => e.kind === family.reservedKind && e.id === ip);
}
