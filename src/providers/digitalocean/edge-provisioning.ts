// up: the tunnel's edge found by tag, or created when none exists, with its SSH key, reserved addresses, cloud
// firewall and DNS records; what this run makes is in the ledger, and removed again should the run fail.
import type { Emit } from '../../lib/events.js';
import { step } from '../../lib/events.js';
import { type TunnelSpec, edgeNameOf, edgeTagOf } from '../../spec/tunnel.js';
import { ResourceLedger } from '../../state/resources.js';
import type { EnsureEdgeRequest, EnsureEdgeResult } from '../provider.js';
import { type AdapterContext, waitsOf } from './adapter-context.js';
import { dnsTagOf, upsertAddressRecords } from './dns.js';
import { dropletBodyOf } from './droplet-body.js';
import { edgeInfoOf } from './droplet-edge-info.js';
import { dropletsByTag, hasIpv6Feature, waitActive } from './droplets.js';
import { assignRecordedReservedIp, ensureReservedIpv6 } from './edge-addresses.js';
import { ensureFirewall, findFirewall, firewallBodyOf } from './firewall.js';
import { removeRecorded } from './ledger-cleanup.js';
import { createDropletOnce, destroyOtherDroplets, keepOneDroplet } from './one-droplet.js';
import { listReservedIps } from './reserved-ips.js';
import { listReservedIpv6s } from './reserved-ipv6.js';
import type { Droplet } from './schemas.js';
import { ensureSshKey } from './ssh-keys.js';
import { tagDroplet } from './tags.js';

export async function ensureDropletEdge(
  context: AdapterContext,
  request: EnsureEdgeRequest,
): Promise<EnsureEdgeResult> {
  const { spec, emit, signal } = request;
  const ledger = request.ledger ?? ResourceLedger.memory(spec.name);
  // Under the tunnel's lock, entries in the ledger belong to a run that died without cleaning up (SIGKILL).
  if (!ledger.empty) await removeRecorded(context, ledger, emit, 'left by an earlier run of up that did not finish');
  try {
    const result = await provision(context, request, ledger);
    // --keep: from here on the edge belongs to the tunnel (status.json, `down`), not to this run.
    if (spec.keep) await ledger.clear();
    return result;
  } catch (error) {
    const why = signal.aborted ? 'made by this run, which was interrupted' : 'made by this run, which failed';
    await removeRecorded(context, ledger, emit, why);
    throw error;
  }
}

async function provision(
  context: AdapterContext,
  request: EnsureEdgeRequest,
  ledger: ResourceLedger,
): Promise<EnsureEdgeResult> {
  const { spec, identity, emit, signal } = request;
  const api = context.client.scoped({ signal, emit });
  const tag = edgeTagOf(spec.name);
  const edgeName = edgeNameOf(spec.name);
  const waits = waitsOf(context, emit);

  const key = await step(emit, 'edge.ssh-key', 'Register the tunnel SSH key with DigitalOcean', () =>
    ensureSshKey(api, edgeName, identity.sshPublicKey, ledger),
  );

  let droplet: Droplet;
  let created = false;
  let wantIpv6 = spec.ipv6;
  const existing = await dropletsByTag(api, tag);
  if (existing.length > 0) {
    droplet = await keepOneDroplet(api, existing, spec, request.recordedEdgeId, waits);
    emit({ type: 'log', level: 'info', message: `found edge ${droplet.name} (droplet ${droplet.id}) again` });
    warnOnDrift(droplet, spec, emit);
    if (spec.ipv6 && !hasIpv6Feature(droplet)) {
      emit({
        type: 'log',
        level: 'warn',
        message:
          `edge ${droplet.name} was created without IPv6; it stays IPv4-only until it is re-created (innisfree ` +
          `down ${spec.name})`,
      });
    }
  } else {
    const planned = await dropletBodyOf(api, spec, identity, key.fingerprint, tag, emit);
    const body = planned.body;
    wantIpv6 = planned.ipv6;
    const made = await step(emit, 'edge.create', `Create droplet ${edgeName} (${spec.size} in ${spec.region})`, () =>
      createDropletOnce(api, body, tag, emit, ledger, context.timing),
    );
    droplet = made.droplet;
    created = true;
    // A create whose answer was lost may still land: one droplet per tunnel, the one this run knows.
    if (made.uncertain) await destroyOtherDroplets(api, tag, droplet.id, waits);
  }

  const activeTitle = `Wait for droplet ${droplet.id} to be active`;
  droplet = await step(emit, 'edge.active', activeTitle, () =>
    waitActive(api, droplet.id, {
      ...waits,
      ipv6: wantIpv6,
      current: droplet,
      justCreated: created,
      progress: (detail) => emit({ type: 'step', id: 'edge.active', status: 'progress', title: activeTitle, detail }),
    }),
  );

  const reservedIp = spec.reservedIp
    ? await assignRecordedReservedIp(api, spec, spec.reservedIp, droplet, ledger, waits)
    : (await listReservedIps(api)).find((r) => r.droplet?.id === droplet.id)?.ip;

  const reservedIpv6 = spec.reservedIpv6
    ? await step(
        emit,
        'edge.reserved-ipv6',
        `Reserved IPv6 ${spec.reservedIpv6 === 'new' ? `(new, in ${spec.region})` : spec.reservedIpv6}`,
        () => ensureReservedIpv6(api, spec, droplet, ledger, waits),
      )
    : hasIpv6Feature(droplet)
      ? (await listReservedIpv6s(api)).find((r) => r.droplet?.id === droplet.id)?.ip
      : undefined;

  if (context.firewall || (await findFirewall(api, edgeName))) {
    const outcome = await step(emit, 'edge.firewall', `Cloud firewall ${edgeName}`, () =>
      ensureFirewall(api, firewallBodyOf(spec), ledger),
    );
    emit({ type: 'log', level: 'debug', message: `cloud firewall ${edgeName}: ${outcome}` });
  }

  const info = edgeInfoOf(droplet, reservedIp, reservedIpv6);
  if (spec.dns) {
    const hostname = spec.dns;
    const dnsTag = dnsTagOf(hostname);
    if (dnsTag && !droplet.tags.includes(dnsTag)) await tagDroplet(api, dnsTag, droplet.id);
    await step(emit, 'edge.dns', `DNS ${hostname} → ${info.ipv4}${info.ipv6 ? ` and ${info.ipv6}` : ''}`, () =>
      upsertAddressRecords(api, hostname, { ipv4: info.ipv4, ipv6: info.ipv6 }, emit, ledger),
    );
  }
  // Again before ready: a lost create can land while the droplet this run uses was activating.
  await destroyOtherDroplets(api, tag, droplet.id, waits);
  return { edge: info, created };
}

function warnOnDrift(droplet: Droplet, spec: TunnelSpec, emit: Emit): void {
  const region = droplet.region?.slug;
  const size = droplet.size_slug ?? droplet.size?.slug;
  for (const [what, actual, wanted] of [
    ['region', region, spec.region],
    ['size', size, spec.size],
  ] as const) {
    if (actual && actual !== wanted) {
      emit({
        type: 'log',
        level: 'warn',
        message:
          `edge ${droplet.name} runs with ${what} ${actual}, not ${wanted}; innisfree never re-creates an edge ` +
          `for that (innisfree down ${spec.name} first to move it)`,
      });
    }
  }
}
