// down: the tunnel's droplets destroyed with their DNS records, cloud firewall, SSH key and tags; reserved
// addresses released when asked (else kept), and whatever the tunnel's ledger still lists removed too.
import { ProviderError } from '../../lib/errors.js';
import { step } from '../../lib/events.js';
import { edgeNameOf, edgeTagOf } from '../../spec/tunnel.js';
import type { DestroyOptions } from '../provider.js';
import { type AdapterContext, waitsOf } from './adapter-context.js';
import { hostnameOfDnsTag, removeAddressRecords } from './dns.js';
import { reservedIpOf } from './droplet-edge-info.js';
import { destroyDroplet, dropletsByTag, publicIpv4, publicIpv6 } from './droplets.js';
import { releaseHeldAddress, releaseKeptAddress, reservedIpv6sFor } from './edge-addresses.js';
import { deleteFirewall } from './firewall.js';
import { removeRecorded } from './ledger-cleanup.js';
import { RESERVED_IPV4, listReservedIps } from './reserved-ips.js';
import { RESERVED_IPV6 } from './reserved-ipv6.js';
import { deleteSshKey } from './ssh-keys.js';
import { deleteTag } from './tags.js';

export async function destroyDropletEdge(
  context: AdapterContext,
  tunnel: string,
  options: DestroyOptions,
): Promise<void> {
  const { emit, signal } = options;
  const api = context.client.scoped({ signal, emit });
  const tag = edgeTagOf(tunnel);
  const edgeName = edgeNameOf(tunnel);
  const waits = waitsOf(context, emit);
  const droplets = await dropletsByTag(api, tag);
  const reserved = droplets.length > 0 ? await listReservedIps(api) : [];
  const reserved6 = await reservedIpv6sFor(api, droplets);
  const dnsTags = new Set<string>();

  for (const droplet of droplets) {
    const ip = reservedIpOf(droplet, reserved);
    const ip6 = reservedIpOf(droplet, reserved6);
    const addresses = [publicIpv4(droplet), publicIpv6(droplet), ip, ip6].filter((a): a is string => a !== undefined);
    for (const dnsTag of droplet.tags.filter((t) => hostnameOfDnsTag(t) !== undefined)) {
      dnsTags.add(dnsTag);
      const hostname = hostnameOfDnsTag(dnsTag)!;
      await step(emit, 'edge.dns.remove', `Remove DNS records of ${hostname}`, () =>
        removeAddressRecords(api, hostname, addresses),
      );
    }
    await releaseHeldAddress(
      RESERVED_IPV4,
      api,
      reserved.find((r) => r.ip === ip),
      options,
      waits,
    );
    await releaseHeldAddress(
      RESERVED_IPV6,
      api,
      reserved6.find((r) => r.ip === ip6),
      options,
      waits,
    );
  }

  // The addresses an earlier down kept: released above only when one of the tunnel's droplets held it; unassigned
  // (or someone else's, which releaseKeptAddress refuses) it is released here.
  const heldByTunnel = (list: ReadonlyArray<{ ip: string; droplet?: { id: number } | null }>, ip: string) =>
    list.some((r) => r.ip === ip && droplets.some((d) => d.id === r.droplet?.id));
  const kept6 = options.keptReservedIpv6;
  if (kept6 && options.releaseIp && !heldByTunnel(reserved6, kept6)) {
    await releaseKeptAddress(RESERVED_IPV6, api, kept6, tag, waits);
  }
  const kept = options.keptReservedIp;
  if (kept && options.releaseIp && !heldByTunnel(reserved, kept)) {
    await releaseKeptAddress(RESERVED_IPV4, api, kept, tag, waits);
  }

  if (await deleteFirewall(api, edgeName))
    emit({ type: 'log', level: 'info', message: `cloud firewall ${edgeName} deleted` });
  const keys = await step(emit, 'edge.ssh-key.remove', `Remove SSH key ${edgeName} from DigitalOcean`, () =>
    deleteSshKey(api, edgeName, options.sshPublicKey),
  );
  if (keys === 0) emit({ type: 'log', level: 'debug', message: `no SSH key ${edgeName} in the account` });

  for (const droplet of droplets) {
    await step(emit, 'edge.destroy', `Destroy droplet ${droplet.name} (${droplet.id})`, () =>
      destroyDroplet(api, droplet.id, waits),
    );
  }
  for (const name of [tag, ...dnsTags]) await deleteTag(api, name);
  const left = await dropletsByTag(api, tag);
  if (left.length > 0) {
    throw new ProviderError(
      `droplet ${left.map((d) => d.id).join(', ')} tagged ${tag} appeared while the edge was destroyed`,
      {
        hint: `run innisfree down ${tunnel} again`,
      },
    );
  }
  // What a run recorded and the searches above did not cover (a DNS record whose droplet is gone, say).
  if (options.ledger && !options.ledger.empty) {
    const unremoved = await removeRecorded(context, options.ledger, emit, 'recorded by a run of up');
    if (unremoved > 0) {
      throw new ProviderError(
        `${unremoved} resource${unremoved === 1 ? '' : 's'} of tunnel ${tunnel} could not be removed`,
        {
          hint: `run innisfree down ${tunnel} again (the warnings above say what failed)`,
        },
      );
    }
  }
}
