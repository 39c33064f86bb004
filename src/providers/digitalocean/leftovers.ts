// clean: the edges, SSH keys and cloud firewalls of tunnels this host has no state for, from account-wide lists
// fetched once for the whole command (DigitalOcean allows 250 requests a minute); destroyed when asked, with the
// DNS records, reserved addresses (when asked) and tags of those edges.
import { ProviderError } from '../../lib/errors.js';
import { EDGE_TAG } from '../../spec/tunnel.js';
import type { SweepReport, SweepRequest } from '../provider.js';
import { type AdapterContext, waitsOf } from './adapter-context.js';
import type { DigitalOceanClient } from './client.js';
import { hostnameOfDnsTag, removeAddressRecords } from './dns.js';
import { edgeInfoOf, reservedIpOf } from './droplet-edge-info.js';
import { dropletsByTag, publicIpv4, publicIpv6, tunnelOf } from './droplets.js';
import { reservedIpv6sFor } from './edge-addresses.js';
import { listAll } from './pagination.js';
import { releaseAddress } from './reserved-address.js';
import { RESERVED_IPV4, listReservedIps } from './reserved-ips.js';
import { RESERVED_IPV6 } from './reserved-ipv6.js';
import { Firewall, SshKey } from './schemas.js';
import { deleteTag } from './tags.js';
import { pollDelay } from './timing.js';

export async function sweepLeftovers(context: AdapterContext, request: SweepRequest): Promise<SweepReport> {
  const { emit, signal, keepTunnels } = request;
  const api = context.client.scoped({ signal, emit });
  const waits = waitsOf(context, emit);
  const droplets = await dropletsByTag(api, EDGE_TAG);
  const reserved = await listReservedIps(api);
  const reserved6 = await reservedIpv6sFor(api, droplets);
  const keys = await listAll(api, '/v2/account/keys', 'ssh_keys', SshKey);
  const firewalls = await listAll(api, '/v2/firewalls', 'firewalls', Firewall);
  const tunnelOfName = (name: string | null | undefined): string | undefined =>
    /^innisfree-([a-z0-9-]+)$/.exec(name ?? '')?.[1];
  const orphanDroplets = droplets.filter((d) => !keepTunnels.has(tunnelOf(d) ?? d.name.replace(/^innisfree-/, '')));
  const straysOf = <T extends { name?: string | null | undefined }>(items: T[]): T[] =>
    items.filter((i) => {
      const tunnel = tunnelOfName(i.name);
      return tunnel !== undefined && !keepTunnels.has(tunnel);
    });
  const strayKeys = straysOf(keys);
  const strayFirewalls = straysOf(firewalls);
  const records: string[] = [];
  const report = (): SweepReport => ({
    edges: orphanDroplets.map((d) => edgeInfoOf(d, reservedIpOf(d, reserved), reservedIpOf(d, reserved6))),
    keys: strayKeys.map((k) => k.name ?? k.fingerprint),
    firewalls: strayFirewalls.map((f) => f.name),
    records,
  });
  if (!request.destroy) return report();

  const deleted: number[] = [];
  for (const droplet of orphanDroplets) {
    const ip = reservedIpOf(droplet, reserved);
    const ip6 = reservedIpOf(droplet, reserved6);
    const addresses = [publicIpv4(droplet), publicIpv6(droplet), ip, ip6].filter((a): a is string => a !== undefined);
    for (const hostname of droplet.tags.map(hostnameOfDnsTag).filter((h): h is string => h !== undefined)) {
      if ((await removeAddressRecords(api, hostname, addresses)) > 0) records.push(hostname);
    }
    const held = reserved.find((r) => r.ip === ip);
    if (held && request.releaseIp) await releaseAddress(api, RESERVED_IPV4, held, waits);
    const held6 = reserved6.find((r) => r.ip === ip6);
    if (held6 && request.releaseIp) await releaseAddress(api, RESERVED_IPV6, held6, waits);
    if (await api.delete(`/v2/droplets/${droplet.id}`, { missingOk: true })) deleted.push(droplet.id);
    emit({ type: 'log', level: 'info', message: `destroying droplet ${droplet.name} (${droplet.id})` });
  }
  for (const key of strayKeys) {
    await api.delete(`/v2/account/keys/${key.id}`, { missingOk: true });
    emit({ type: 'log', level: 'info', message: `removed SSH key ${key.name ?? key.fingerprint}` });
  }
  for (const firewall of strayFirewalls) {
    await api.delete(`/v2/firewalls/${firewall.id}`, { missingOk: true });
    emit({ type: 'log', level: 'info', message: `removed cloud firewall ${firewall.name}` });
  }
  await waitDropletsGone(context, api, deleted);
  const tags = new Set(
    orphanDroplets.flatMap((d) =>
      d.tags.filter((t) => t !== EDGE_TAG && (t.startsWith('innisfree:') || t.startsWith('innisfree-dns:'))),
    ),
  );
  for (const tag of tags) await deleteTag(api, tag);
  return report();
}

/** One listing per poll for all the deletes, instead of a poll per droplet. */
async function waitDropletsGone(context: AdapterContext, api: DigitalOceanClient, deleted: number[]): Promise<void> {
  const { clock, timing } = context;
  const started = clock.now();
  for (let poll = 0; deleted.length > 0; poll++) {
    const remaining = new Set((await dropletsByTag(api, EDGE_TAG)).map((d) => d.id));
    if (!deleted.some((id) => remaining.has(id))) break;
    if (clock.now() - started >= timing.deleteTimeoutMs) {
      throw new ProviderError(
        `droplets ${deleted.filter((id) => remaining.has(id)).join(', ')} were still there ` +
          `${Math.round(timing.deleteTimeoutMs / 1000)} s after DigitalOcean accepted their delete`,
        {
          hint: 'DigitalOcean may be slow; run innisfree clean again to check',
        },
      );
    }
    await api.sleep(pollDelay(timing, poll));
  }
}
