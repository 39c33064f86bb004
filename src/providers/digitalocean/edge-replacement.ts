// up --replace-edge: a new droplet made and deployed beside the old one, the reserved addresses, DNS records and
// firewall moved to it, and only then the old one destroyed; a failure before that moves everything back.
import { ProviderError } from '../../lib/errors.js';
import { step } from '../../lib/events.js';
import { edgeNameOf, edgeTagOf } from '../../spec/tunnel.js';
import { ResourceLedger } from '../../state/resources.js';
import type { EdgeInfo, EnsureEdgeResult, ReplaceEdgeRequest } from '../provider.js';
import { type AdapterContext, waitsOf } from './adapter-context.js';
import { upsertAddressRecords } from './dns.js';
import { dropletBodyOf } from './droplet-body.js';
import { edgeInfoOf, reservedIpOf } from './droplet-edge-info.js';
import { destroyDroplet, dropletsByTag, hasIpv6Feature, publicIpv4, waitActive } from './droplets.js';
import { ensureReservedIpv6 } from './edge-addresses.js';
import { ensureDropletEdge } from './edge-provisioning.js';
import { ensureFirewall, findFirewall, firewallBodyOf } from './firewall.js';
import { removeRecorded } from './ledger-cleanup.js';
import { createDropletOnce, destroyOtherDroplets, keepOneDroplet } from './one-droplet.js';
import { assignReservedAddress } from './reserved-address.js';
import { RESERVED_IPV4, listReservedIps } from './reserved-ips.js';
import { RESERVED_IPV6, listReservedIpv6s } from './reserved-ipv6.js';
import type { Droplet } from './schemas.js';
import { ensureSshKey } from './ssh-keys.js';
import { deleteTag, replacementTagOf, tagDroplet, untagDroplet } from './tags.js';

export async function replaceDropletEdge(
  context: AdapterContext,
  request: ReplaceEdgeRequest,
): Promise<EnsureEdgeResult> {
  const { spec, identity, emit, signal } = request;
  const ledger = request.ledger ?? ResourceLedger.memory(spec.name);
  const api = context.client.scoped({ signal, emit });
  const tag = edgeTagOf(spec.name);
  const olds = await dropletsByTag(api, tag);
  if (olds.length === 0) {
    emit({ type: 'log', level: 'info', message: `tunnel ${spec.name} has no edge to replace; creating one` });
    return ensureDropletEdge(context, { ...request, ledger });
  }
  if (!ledger.empty) await removeRecorded(context, ledger, emit, 'left by an earlier run of up that did not finish');
  const waits = waitsOf(context, emit);
  const reserved4 = await listReservedIps(api);
  const old = await keepOneDroplet(api, olds, spec, request.recordedEdgeId, waits);
  const reserved6 = hasIpv6Feature(old) || spec.reservedIpv6 ? await listReservedIpv6s(api) : [];
  const ip4 = reservedIpOf(old, reserved4) ?? spec.reservedIp;
  const held6 = reservedIpOf(old, reserved6);
  const ip6 = held6 ?? (spec.reservedIpv6 !== 'new' ? spec.reservedIpv6 : undefined);
  const oldRegion = old.region?.slug;
  if ((ip4 || ip6) && oldRegion && oldRegion !== spec.region) {
    throw new ProviderError(
      `the edge's reserved addresses are in ${oldRegion}, so its replacement cannot be made in ${spec.region}`,
      {
        hint: `reserved IPs cannot leave their region: use --region ${oldRegion}`,
      },
    );
  }
  const oldInfo = edgeInfoOf(old, reservedIpOf(old, reserved4), held6);
  const replacementTag = replacementTagOf(spec.name);
  const cleanup = context.client.scoped({ signal: undefined, emit });
  // What has been moved to the new droplet, undone newest first should a later step fail.
  const undo: Array<{ what: string; run: () => Promise<unknown> }> = [];
  let fresh: Droplet | undefined;
  let info: EdgeInfo;
  try {
    const key = await ensureSshKey(api, edgeNameOf(spec.name), identity.sshPublicKey, ledger);
    const planned = await dropletBodyOf(api, spec, identity, key.fingerprint, replacementTag, emit);
    const made = await step(
      emit,
      'edge.create',
      `Create the replacement of edge ${old.name} (${spec.size} in ${spec.region})`,
      () => createDropletOnce(api, planned.body, replacementTag, emit, ledger, context.timing),
    );
    if (made.uncertain) await destroyOtherDroplets(api, replacementTag, made.droplet.id, waits);
    fresh = await step(emit, 'edge.active', `Wait for droplet ${made.droplet.id} to be active`, () =>
      waitActive(api, made.droplet.id, { ...waits, ipv6: planned.ipv6, current: made.droplet, justCreated: true }),
    );
    const next = fresh;
    await step(
      emit,
      'edge.replace.serve',
      `Deploy the replacement droplet ${next.id} at ${publicIpv4(next) ?? '?'}`,
      () => request.serve(edgeInfoOf(next, undefined), signal),
    );
    if (ip4) {
      await step(emit, 'edge.reserved-ip', `Move reserved IP ${ip4} to droplet ${next.id}`, () =>
        assignReservedAddress(api, RESERVED_IPV4, ip4, next, spec.name, waits),
      );
      if (reservedIpOf(old, reserved4) === ip4)
        undo.push({
          what: `reserved IP ${ip4} back to droplet ${old.id}`,
          run: () => assignReservedAddress(cleanup, RESERVED_IPV4, ip4, old, spec.name, waits),
        });
    }
    let nextIp6 = ip6;
    if (ip6) {
      await step(emit, 'edge.reserved-ipv6', `Move reserved IPv6 ${ip6} to droplet ${next.id}`, () =>
        assignReservedAddress(api, RESERVED_IPV6, ip6, next, spec.name, waits),
      );
      if (held6 === ip6)
        undo.push({
          what: `reserved IPv6 ${ip6} back to droplet ${old.id}`,
          run: () => assignReservedAddress(cleanup, RESERVED_IPV6, ip6, old, spec.name, waits),
        });
    } else if (spec.reservedIpv6 === 'new') {
      nextIp6 = await step(emit, 'edge.reserved-ipv6', `Reserved IPv6 (new, in ${spec.region})`, () =>
        ensureReservedIpv6(api, spec, next, ledger, waits),
      );
    }
    info = edgeInfoOf(next, ip4, nextIp6);
    if (spec.dns) {
      const hostname = spec.dns;
      await step(emit, 'edge.dns', `DNS ${hostname} → ${info.ipv4}${info.ipv6 ? ` and ${info.ipv6}` : ''}`, () =>
        upsertAddressRecords(api, hostname, { ipv4: info.ipv4, ipv6: info.ipv6 }, emit, ledger),
      );
      undo.push({
        what: `DNS ${hostname} back to ${oldInfo.ipv4}`,
        run: () => upsertAddressRecords(cleanup, hostname, { ipv4: oldInfo.ipv4, ipv6: oldInfo.ipv6 }, emit),
      });
    }
    if (context.firewall || (await findFirewall(api, edgeNameOf(spec.name)))) {
      await step(emit, 'edge.firewall', `Cloud firewall ${edgeNameOf(spec.name)}`, () =>
        ensureFirewall(api, firewallBodyOf(spec), ledger),
      );
    }
    // The new droplet becomes the tunnel's edge; from here on it is the tunnel's, not this attempt's.
    await tagDroplet(api, tag, next.id);
    for (const entry of ledger.entries())
      if (entry.kind === 'droplet' && entry.id === String(next.id)) await ledger.forget(entry);
  } catch (error) {
    for (const step of undo.reverse()) {
      await step.run().catch((undoError: unknown) => {
        emit({ type: 'log', level: 'warn', message: `could not move ${step.what}: ${(undoError as Error).message}` });
      });
    }
    const why = signal.aborted ? 'made by a replacement that was interrupted' : 'made by a replacement that failed';
    await removeRecorded(context, ledger, emit, why);
    await deleteTag(cleanup, replacementTag).catch(() => {});
    emit({
      type: 'log',
      level: 'warn',
      message:
        `the replacement failed; edge ${old.name} (droplet ${old.id}) still serves ${oldInfo.ipv4}` +
        `${oldInfo.ipv6 ? ` and ${oldInfo.ipv6}` : ''}`,
    });
    throw error;
  }
  await untagDroplet(api, replacementTag, fresh.id);
  await deleteTag(api, replacementTag);
  // Past the point of no return the new edge serves: an old droplet that will not go is a warning, not a failure.
  await step(emit, 'edge.replace.destroy-old', `Destroy the old droplet ${old.id}`, () =>
    destroyDroplet(api, old.id, waits),
  ).catch((error: unknown) => {
    emit({
      type: 'log',
      level: 'warn',
      message:
        `could not destroy the old droplet ${old.id}: ${(error as Error).message}; innisfree up ${spec.name} ` +
        `removes it`,
    });
  });
  // What the replacement made belongs to the tunnel now, as the edge it replaced did (the run that follows must
  // not take the ledger's entries for an earlier run's leftovers); without --keep its end destroys the edge by tag.
  await ledger.clear();
  return { edge: info, created: true };
}
