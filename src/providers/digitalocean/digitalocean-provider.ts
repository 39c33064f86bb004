// The DigitalOcean adapter of the Provider port. An edge is the droplet tagged `innisfree` + `innisfree:<tunnel>`:
// it is always looked up by tag first, created only when none exists, and after a create whose outcome is unknown
// it is looked for again instead of posted twice. Around it: the tunnel's SSH key (by fingerprint), an optional
// reserved IP, DNS records and cloud firewall, all removed again by destroyEdge (except a reserved IP, unless asked).
import type { Clock } from '../../lib/context.js';
import { ProviderError } from '../../lib/errors.js';
import { type Emit, step } from '../../lib/events.js';
import { renderUserData } from './user-data.js';
import { EDGE_TAG, type TunnelSpec, edgeNameOf, edgeTagOf } from '../../spec/tunnel.js';
import type {
  SweepReport,
  SweepRequest,
  DestroyOptions,
  EdgeInfo,
  EnsureEdgeRequest,
  EnsureEdgeResult,
  Provider,
  ReplaceEdgeRequest,
} from '../provider.js';
import type { DigitalOceanClient } from './client.js';
import { dnsTagOf, hostnameOfDnsTag, removeAddressRecords, removeRecord, upsertAddressRecords } from './dns.js';
import {
  destroyDroplet,
  dropletsByTag,
  hasIpv6Feature,
  publicIpv4,
  publicIpv6,
  tunnelOf,
  waitActive,
} from './droplets.js';
import { DigitalOceanError } from './api-errors.js';
import { deleteFirewall, ensureFirewall, findFirewall, firewallBodyOf } from './firewall.js';
import { checkImageUsable, resolveImage } from './images.js';
import { assignReservedIp, getReservedIp, listReservedIps, releaseReservedIp } from './reserved-ips.js';
import {
  assignReservedIpv6,
  createReservedIpv6,
  getReservedIpv6,
  listReservedIpv6s,
  releaseReservedIpv6,
} from './reserved-ipv6.js';
import { type Droplet, DropletEnvelope, Firewall, type ReservedIp, type ReservedIpv6, SshKey } from './schemas.js';
import { listAll } from './pagination.js';
import { pollDelay } from './timing.js';
import { deleteSshKey, ensureSshKey } from './ssh-keys.js';
import { deleteTag, replacementTagOf, tagDroplet, untagDroplet } from './tags.js';
import { DEFAULT_TIMING, type Timing } from './timing.js';
import { type LedgerEntry, ResourceLedger } from '../../state/resources.js';

/** The stock image an edge starts from when nixos-anywhere installs NixOS onto it. */
export const DEBIAN_IMAGE = 'debian-12-x64';

export interface DigitalOceanProviderOptions {
  client: DigitalOceanClient;
  clock: Clock;
  /** Manage a cloud firewall for the edge (it is kept in step whenever one already exists). */
  firewall?: boolean;
  timing?: Partial<Timing>;
}

export class DigitalOceanProvider implements Provider {
  readonly name = 'digitalocean' as const;
  readonly #client: DigitalOceanClient;
  readonly #clock: Clock;
  readonly #firewall: boolean;
  readonly #timing: Timing;

  constructor(options: DigitalOceanProviderOptions) {
    this.#client = options.client;
    this.#clock = options.clock;
    this.#firewall = options.firewall ?? false;
    this.#timing = { ...DEFAULT_TIMING, ...options.timing };
  }

  async ensureEdge(request: EnsureEdgeRequest): Promise<EnsureEdgeResult> {
    const { spec, emit, signal } = request;
    const ledger = request.ledger ?? ResourceLedger.memory(spec.name);
    // Under the tunnel's lock, entries in the ledger belong to a run that died without cleaning up (SIGKILL).
    if (!ledger.empty) await this.removeRecorded(ledger, emit, 'left by an earlier run of up that did not finish');
    try {
      const result = await this.provision(request, ledger);
      // --keep: from here on the edge belongs to the tunnel (status.json, `down`), not to this run.
      if (spec.keep) await ledger.clear();
      return result;
    } catch (error) {
      const why = signal.aborted ? 'made by this run, which was interrupted' : 'made by this run, which failed';
      await this.removeRecorded(ledger, emit, why);
      throw error;
    }
  }

  private async provision(request: EnsureEdgeRequest, ledger: ResourceLedger): Promise<EnsureEdgeResult> {
    const { spec, identity, emit, signal } = request;
    const api = this.#client.scoped({ signal, emit });
    const tag = edgeTagOf(spec.name);
    const edgeName = edgeNameOf(spec.name);
    const waits = { timing: this.#timing, clock: this.#clock, emit };

    const key = await step(emit, 'edge.ssh-key', 'Register the tunnel SSH key with DigitalOcean', () =>
      ensureSshKey(api, edgeName, identity.sshPublicKey, ledger),
    );

    let droplet: Droplet;
    let created = false;
    let wantIpv6 = spec.ipv6;
    const existing = await dropletsByTag(api, tag);
    if (existing.length > 0) {
      droplet = await this.keepOne(api, existing, spec, emit, request.recordedEdgeId);
      emit({ type: 'log', level: 'info', message: `found edge ${droplet.name} (droplet ${droplet.id}) again` });
      this.warnOnDrift(droplet, spec, emit);
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
      const planned = await this.dropletBody(api, spec, identity, key.fingerprint, tag, emit);
      const body = planned.body;
      wantIpv6 = planned.ipv6;
      const made = await step(emit, 'edge.create', `Create droplet ${edgeName} (${spec.size} in ${spec.region})`, () =>
        this.createOnce(api, body, tag, emit, ledger),
      );
      droplet = made.droplet;
      created = true;
      // A create whose answer was lost may still land: one droplet per tunnel, the one this run knows.
      if (made.uncertain) await this.exactlyOne(api, tag, droplet.id, emit, waits);
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

    let reservedIp: string | undefined;
    if (spec.reservedIp) {
      const ip = spec.reservedIp;
      const entry = await ledger.intend('reserved-ip-assignment', { ip, droplet: droplet.id });
      await step(emit, 'edge.reserved-ip', `Assign reserved IP ${ip}`, () =>
        assignReservedIp(api, ip, droplet, spec.name, waits),
      );
      await ledger.made(entry, ip);
      reservedIp = ip;
    } else {
      reservedIp = (await listReservedIps(api)).find((r) => r.droplet?.id === droplet.id)?.ip;
    }

    const reservedIpv6 = spec.reservedIpv6
      ? await step(
          emit,
          'edge.reserved-ipv6',
          `Reserved IPv6 ${spec.reservedIpv6 === 'new' ? `(new, in ${spec.region})` : spec.reservedIpv6}`,
          () => this.ensureReservedIpv6(api, spec, droplet, ledger, waits),
        )
      : hasIpv6Feature(droplet)
        ? (await listReservedIpv6s(api)).find((r) => r.droplet?.id === droplet.id)?.ip
        : undefined;

    if (this.#firewall || (await findFirewall(api, edgeName))) {
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
    await this.exactlyOne(api, tag, droplet.id, emit, waits);
    return { edge: info, created };
  }

  async replaceEdge(request: ReplaceEdgeRequest): Promise<EnsureEdgeResult> {
    const { spec, identity, emit, signal } = request;
    const ledger = request.ledger ?? ResourceLedger.memory(spec.name);
    const api = this.#client.scoped({ signal, emit });
    const tag = edgeTagOf(spec.name);
    const olds = await dropletsByTag(api, tag);
    if (olds.length === 0) {
      emit({ type: 'log', level: 'info', message: `tunnel ${spec.name} has no edge to replace; creating one` });
      return this.ensureEdge({ ...request, ledger });
    }
    if (!ledger.empty) await this.removeRecorded(ledger, emit, 'left by an earlier run of up that did not finish');
    const waits = { timing: this.#timing, clock: this.#clock, emit };
    const reserved4 = await listReservedIps(api);
    const old = await this.keepOne(api, olds, spec, emit, request.recordedEdgeId);
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
    const cleanup = this.#client.scoped({ signal: undefined, emit });
    // What has been moved to the new droplet, undone newest first should a later step fail.
    const undo: Array<{ what: string; run: () => Promise<unknown> }> = [];
    let fresh: Droplet | undefined;
    let info: EdgeInfo;
    try {
      const key = await ensureSshKey(api, edgeNameOf(spec.name), identity.sshPublicKey, ledger);
      const planned = await this.dropletBody(api, spec, identity, key.fingerprint, replacementTag, emit);
      const made = await step(
        emit,
        'edge.create',
        `Create the replacement of edge ${old.name} (${spec.size} in ${spec.region})`,
        () => this.createOnce(api, planned.body, replacementTag, emit, ledger),
      );
      if (made.uncertain) await this.exactlyOne(api, replacementTag, made.droplet.id, emit, waits);
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
          assignReservedIp(api, ip4, next, spec.name, waits),
        );
        if (reservedIpOf(old, reserved4) === ip4)
          undo.push({
            what: `reserved IP ${ip4} back to droplet ${old.id}`,
            run: () => assignReservedIp(cleanup, ip4, old, spec.name, waits),
          });
      }
      let nextIp6 = ip6;
      if (ip6) {
        await step(emit, 'edge.reserved-ipv6', `Move reserved IPv6 ${ip6} to droplet ${next.id}`, () =>
          assignReservedIpv6(api, ip6, next, spec.name, waits),
        );
        if (held6 === ip6)
          undo.push({
            what: `reserved IPv6 ${ip6} back to droplet ${old.id}`,
            run: () => assignReservedIpv6(cleanup, ip6, old, spec.name, waits),
          });
      } else if (spec.reservedIpv6 === 'new') {
        nextIp6 = await step(emit, 'edge.reserved-ipv6', `Reserved IPv6 (new, in ${spec.region})`, () =>
          this.ensureReservedIpv6(api, spec, next, ledger, waits),
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
      if (this.#firewall || (await findFirewall(api, edgeNameOf(spec.name)))) {
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
      await this.removeRecorded(ledger, emit, why);
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

  async findEdge(tunnel: string): Promise<EdgeInfo | undefined> {
    const droplets = await dropletsByTag(this.#client, edgeTagOf(tunnel));
    if (droplets.length === 0) return undefined;
    const reserved = await listReservedIps(this.#client);
    const droplet = preferred(
      droplets,
      reserved.map((r) => r.droplet?.id),
    );
    const reserved6 = await reservedIpv6sFor(this.#client, [droplet]);
    return edgeInfoOf(droplet, reservedIpOf(droplet, reserved), reservedIpOf(droplet, reserved6));
  }

  async listEdges(): Promise<EdgeInfo[]> {
    const droplets = await dropletsByTag(this.#client, EDGE_TAG);
    if (droplets.length === 0) return [];
    const reserved = await listReservedIps(this.#client);
    const reserved6 = await reservedIpv6sFor(this.#client, droplets);
    return droplets
      .map((d) => edgeInfoOf(d, reservedIpOf(d, reserved), reservedIpOf(d, reserved6)))
      .sort((a, b) => a.tunnel.localeCompare(b.tunnel) || a.createdAt.localeCompare(b.createdAt));
  }

  async sweep(request: SweepRequest): Promise<SweepReport> {
    const { emit, signal, keepTunnels } = request;
    const api = this.#client.scoped({ signal, emit });
    const waits = { timing: this.#timing, clock: this.#clock, emit };
    // Account-wide lists, each fetched once for the whole command (DigitalOcean allows 250 requests a minute).
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
      if (held && request.releaseIp) await releaseReservedIp(api, held, waits);
      const held6 = reserved6.find((r) => r.ip === ip6);
      if (held6 && request.releaseIp) await releaseReservedIpv6(api, held6, waits);
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
    // One listing per poll for all the deletes, instead of a poll per droplet.
    const started = this.#clock.now();
    for (let poll = 0; deleted.length > 0; poll++) {
      const remaining = new Set((await dropletsByTag(api, EDGE_TAG)).map((d) => d.id));
      if (!deleted.some((id) => remaining.has(id))) break;
      if (this.#clock.now() - started >= this.#timing.deleteTimeoutMs) {
        throw new ProviderError(
          `droplets ${deleted.filter((id) => remaining.has(id)).join(', ')} were still there ` +
            `${Math.round(this.#timing.deleteTimeoutMs / 1000)} s after DigitalOcean accepted their delete`,
          {
            hint: 'DigitalOcean may be slow; run innisfree clean again to check',
          },
        );
      }
      await api.sleep(pollDelay(this.#timing, poll));
    }
    const tags = new Set(
      orphanDroplets.flatMap((d) =>
        d.tags.filter((t) => t !== EDGE_TAG && (t.startsWith('innisfree:') || t.startsWith('innisfree-dns:'))),
      ),
    );
    for (const tag of tags) await deleteTag(api, tag);
    return report();
  }

  async destroyEdge(tunnel: string, options: DestroyOptions): Promise<void> {
    const { emit, signal } = options;
    const api = this.#client.scoped({ signal, emit });
    const tag = edgeTagOf(tunnel);
    const edgeName = edgeNameOf(tunnel);
    const waits = { timing: this.#timing, clock: this.#clock, emit };
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
      const held = reserved.find((r) => r.ip === ip);
      if (held && options.releaseIp) {
        await step(emit, 'edge.reserved-ip.release', `Release reserved IP ${held.ip}`, () =>
          releaseReservedIp(api, held, waits),
        );
      } else if (held) {
        emit({
          type: 'log',
          level: 'info',
          message: `reserved IP ${held.ip} is kept (pass --release-ip to release it)`,
        });
      }
      const held6 = reserved6.find((r) => r.ip === ip6);
      if (held6 && options.releaseIp) {
        await step(emit, 'edge.reserved-ipv6.release', `Release reserved IPv6 ${held6.ip}`, () =>
          releaseReservedIpv6(api, held6, waits),
        );
      } else if (held6 && !isRecordedByRun(options.ledger, held6.ip)) {
        emit({
          type: 'log',
          level: 'info',
          message: `reserved IPv6 ${held6.ip} is kept (pass --release-ip to release it)`,
        });
      }
    }

    const kept6 = options.keptReservedIpv6;
    if (kept6 && options.releaseIp && !reserved6.some((r) => r.ip === kept6)) {
      const held = await getReservedIpv6(api, kept6);
      if (!held) {
        emit({ type: 'log', level: 'info', message: `reserved IPv6 ${kept6} is no longer in the account` });
      } else if (held.droplet && !held.droplet.tags.includes(tag)) {
        throw new ProviderError(
          `reserved IPv6 ${kept6} is now assigned to droplet ${held.droplet.name ?? held.droplet.id}, which is ` +
            `not this tunnel's edge`,
          {
            hint: 'release it in the DigitalOcean control panel if it is no longer needed',
          },
        );
      } else {
        await step(emit, 'edge.reserved-ipv6.release', `Release reserved IPv6 ${kept6}`, () =>
          releaseReservedIpv6(api, held, waits),
        );
      }
    }

    const kept = options.keptReservedIp;
    if (
      kept &&
      options.releaseIp &&
      !reserved.some((r) => r.ip === kept && droplets.some((d) => d.id === r.droplet?.id))
    ) {
      const held = await getReservedIp(api, kept);
      if (!held) {
        emit({ type: 'log', level: 'info', message: `reserved IP ${kept} is no longer in the account` });
      } else if (held.droplet && !held.droplet.tags.includes(tag)) {
        throw new ProviderError(
          `reserved IP ${kept} is now assigned to droplet ${held.droplet.name ?? held.droplet.id}, which is not ` +
            `this tunnel's edge`,
          {
            hint: 'release it in the DigitalOcean control panel if it is no longer needed',
          },
        );
      } else {
        await step(emit, 'edge.reserved-ip.release', `Release reserved IP ${kept}`, () =>
          releaseReservedIp(api, held, waits),
        );
      }
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
      const unremoved = await this.removeRecorded(options.ledger, emit, 'recorded by a run of up');
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

  /** Posts the create; after an ambiguous failure looks for the droplet by tag before posting again. */
  private async createOnce(
    api: DigitalOceanClient,
    body: { name: string },
    tag: string,
    emit: Emit,
    ledger: ResourceLedger,
  ): Promise<{ droplet: Droplet; uncertain: boolean }> {
    const attempts = 3;
    let uncertain = false;
    for (let attempt = 1; ; attempt++) {
      // Recorded before the POST: should the answer never come, the droplet is found by its tag.
      const entry = await ledger.intend('droplet', { tag, name: body.name });
      try {
        const droplet = (await api.post('/v2/droplets', body, DropletEnvelope)).droplet;
        await ledger.made(entry, droplet.id);
        return { droplet, uncertain };
      } catch (error) {
        if (!(error instanceof DigitalOceanError && error.ambiguous)) {
          // (An earlier attempt whose answer was lost keeps its entry: found by tag if it lands.)
          // Refused outright: nothing was made by this attempt.
          if (error instanceof DigitalOceanError) await ledger.forget(entry);
          throw error;
        }
        uncertain = true;
        emit({
          type: 'log',
          level: 'warn',
          message: `the droplet create may have gone through (${error.message}); looking for it by tag`,
        });
        for (const delay of this.#timing.reconcileDelaysMs) {
          await api.sleep(delay);
          const found = await dropletsByTag(api, tag);
          if (found.length > 0) {
            const droplet = preferred(found, []);
            await ledger.made(entry, droplet.id);
            return { droplet, uncertain };
          }
        }
        if (attempt >= attempts) throw error;
        emit({ type: 'log', level: 'info', message: 'no droplet was made; creating it again' });
      }
    }
  }

  /**
   * Several droplets carry the tunnel's tag (a duplicate create): keep the one local state records, else the
   * holder of the reserved IP, an active one, the oldest; destroy the others.
   */
  private async keepOne(
    api: DigitalOceanClient,
    droplets: Droplet[],
    spec: TunnelSpec,
    emit: Emit,
    recordedId: string | undefined,
  ): Promise<Droplet> {
    if (droplets.length === 1) return droplets[0]!;
    const recorded = droplets.find((d) => String(d.id) === recordedId);
    const reserved = !recorded && spec.reservedIp ? await listReservedIps(api) : [];
    const keep =
      recorded ??
      preferred(
        droplets,
        reserved.filter((r) => r.ip === spec.reservedIp).map((r) => r.droplet?.id),
      );
    const why = recorded ? 'the one local state records' : 'no local state names one';
    for (const extra of droplets.filter((d) => d.id !== keep.id)) {
      emit({
        type: 'log',
        level: 'warn',
        message:
          `two droplets carry tag ${edgeTagOf(spec.name)}: destroying droplet ${extra.id}, keeping ${keep.id} (` +
          `${why})`,
      });
      await destroyDroplet(api, extra.id, { timing: this.#timing, clock: this.#clock, emit });
    }
    return keep;
  }

  /** Exactly one droplet with the tunnel's tag: `keepId`; any other (a lost create that landed) is destroyed. */
  private async exactlyOne(
    api: DigitalOceanClient,
    tag: string,
    keepId: number,
    emit: Emit,
    waits: { timing: Timing; clock: Clock; emit: Emit },
  ): Promise<void> {
    for (const extra of (await dropletsByTag(api, tag)).filter((d) => d.id !== keepId)) {
      emit({
        type: 'log',
        level: 'warn',
        message:
          `droplet ${extra.id} also carries tag ${tag} (a create whose answer was lost landed after all): ` +
          `destroying it, keeping droplet ${keepId}`,
      });
      await destroyDroplet(api, extra.id, waits);
    }
  }

  private warnOnDrift(droplet: Droplet, spec: TunnelSpec, emit: Emit): void {
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

  /**
   * The edge's reserved IPv6: the given one, or for "new" the one the edge already holds, else one reserved now in
   * the edge's region (recorded in the ledger before the create, so a failed or killed run releases it again).
   */
  private async ensureReservedIpv6(
    api: DigitalOceanClient,
    spec: TunnelSpec,
    droplet: Droplet,
    ledger: ResourceLedger,
    waits: { timing: Timing; clock: Clock; emit: Emit },
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
    await assignReservedIpv6(api, ip, droplet, spec.name, waits);
    await ledger.made(entry, ip);
    return ip;
  }

  /** The POST /v2/droplets body of a new edge carrying `tag` (the tunnel's, or the replacement's). */
  private async dropletBody(
    api: DigitalOceanClient,
    spec: TunnelSpec,
    identity: EnsureEdgeRequest['identity'],
    fingerprint: string,
    tag: string,
    emit: Emit,
  ) {
    const image = await this.bootImage(api, spec);
    let ipv6 = spec.ipv6;
    if (spec.ipv6 && image.custom) {
      emit({
        type: 'log',
        level: 'warn',
        message:
          'DigitalOcean gives droplets made from custom images no IPv6; the edge will be IPv4-only (use ' +
          '--bootstrap nixos-anywhere for IPv6)',
      });
      ipv6 = false;
    }
    const body = {
      name: edgeNameOf(spec.name),
      region: spec.region,
      size: spec.size,
      image: image.ref,
      ssh_keys: [fingerprint],
      ipv6,
      monitoring: false,
      tags: [EDGE_TAG, tag, ...(spec.dns ? [dnsTagOf(spec.dns)].filter((t): t is string => t !== undefined) : [])],
      user_data: renderUserData(identity),
    };
    return { body, ipv6 };
  }

  private async bootImage(
    api: DigitalOceanClient,
    spec: TunnelSpec,
  ): Promise<{ ref: string | number; custom: boolean }> {
    if (spec.bootstrap !== 'image') return { ref: DEBIAN_IMAGE, custom: false };
    if (!spec.image) {
      throw new ProviderError('bootstrap "image" needs an image', {
        hint: 'pass --image ID|NAME, or use --bootstrap nixos-anywhere',
      });
    }
    const image = await resolveImage(api, spec.image);
    checkImageUsable(image, spec.region);
    return { ref: image.id, custom: image.type !== 'base' && image.type !== 'snapshot' && image.type !== 'backup' };
  }

  /**
   * Removes what the ledger lists (newest first), finding each by its id or, where the create's answer was lost,
   * by tag or name; with a client of its own, so an interrupt does not cancel the cleanup it triggered. Each entry
   * removed leaves the ledger; what could not be removed stays in it for the next up, down or clean. Returns the
   * number of entries left.
   */
  async removeRecorded(ledger: ResourceLedger, emit: Emit, why: string): Promise<number> {
    const api = this.#client.scoped({ signal: undefined, emit });
    const waits = { timing: this.#timing, clock: this.#clock, emit };
    let left = 0;
    for (const entry of [...ledger.entries()].reverse()) {
      try {
        const removed = await this.removeEntry(api, entry, waits);
        await ledger.forget(entry);
        for (const what of removed) emit({ type: 'log', level: 'info', message: `removed ${what} (${why})` });
      } catch (error) {
        left++;
        emit({
          type: 'log',
          level: 'warn',
          message:
            `could not remove ${describeEntry(entry)} (${why}): ${(error as Error).message}; innisfree down ` +
            `${ledger.tunnel} or innisfree clean removes it later`,
        });
      }
    }
    return left;
  }

  private async removeEntry(
    api: DigitalOceanClient,
    entry: LedgerEntry,
    waits: { timing: Timing; clock: Clock; emit: Emit },
  ): Promise<string[]> {
    const find = entry.find;
    switch (entry.kind) {
      case 'droplet': {
        const ids =
          entry.id !== undefined ? [Number(entry.id)] : (await dropletsByTag(api, String(find.tag))).map((d) => d.id);
        const removed: string[] = [];
        for (const id of ids) {
          const deleted = await destroyDroplet(api, id, waits);
          if (deleted) removed.push(`droplet ${id}`);
        }
        return removed;
      }
      case 'ssh-key': {
        const deleted = await api.delete(`/v2/account/keys/${entry.id ?? String(find.fingerprint)}`, {
          missingOk: true,
        });
        return deleted ? [`SSH key ${String(find.name ?? find.fingerprint)}`] : [];
      }
      case 'firewall': {
        const id = entry.id ?? (await findFirewall(api, String(find.name)))?.id;
        if (id === undefined) return [];
        return (await api.delete(`/v2/firewalls/${id}`, { missingOk: true }))
          ? [`cloud firewall ${String(find.name)}`]
          : [];
      }
      case 'dns-record': {
        const where = {
          domain: String(find.domain),
          type: String(find.type),
          fqdn: String(find.fqdn),
          data: String(find.data),
        };
        const count = await removeRecord(api, where, entry.id);
        return count > 0 ? [`DNS ${where.type} ${where.fqdn} → ${where.data}`] : [];
      }
      case 'reserved-ip-assignment':
      case 'reserved-ipv6-assignment':
        // Deleting the droplet unassigns the IP; the reserved IP itself is the user's and stays.
        return [];
      case 'reserved-ipv6': {
        // Reserved by this run (--reserved-ipv6 new): released again. Without an id its create never answered and
        // createReservedIpv6 found nothing it made.
        if (entry.id === undefined) return [];
        const held = await getReservedIpv6(api, entry.id);
        if (!held) return [];
        await releaseReservedIpv6(api, held, waits);
        return [`reserved IPv6 ${entry.id}`];
      }
    }
  }
}

function describeEntry(entry: LedgerEntry): string {
  const how =
    entry.id !== undefined
      ? `id ${entry.id}`
      : Object.entries(entry.find)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
  return `${entry.kind} (${how})`;
}

/** Prefers the droplet holding the reserved IP, then an active one, then the oldest. */
function preferred(droplets: Droplet[], holders: ReadonlyArray<number | undefined>): Droplet {
  const rank = (d: Droplet): number => (holders.includes(d.id) ? 0 : d.status === 'active' ? 1 : 2);
  return [...droplets].sort((a, b) => rank(a) - rank(b) || a.created_at.localeCompare(b.created_at) || a.id - b.id)[0]!;
}

function reservedIpOf(droplet: Droplet, reserved: ReadonlyArray<ReservedIp | ReservedIpv6>): string | undefined {
  return reserved.find((r) => r.droplet?.id === droplet.id)?.ip;
}

/** The account's reserved IPv6 list, fetched only when one of `droplets` has IPv6 (none can hold one otherwise). */
async function reservedIpv6sFor(client: DigitalOceanClient, droplets: readonly Droplet[]): Promise<ReservedIpv6[]> {
  return droplets.some(hasIpv6Feature) ? listReservedIpv6s(client) : [];
}

/** A reserved IPv6 this run reserved itself: its ledger releases it, so it is not reported as kept. */
function isRecordedByRun(ledger: ResourceLedger | undefined, ip: string): boolean {
  return !!ledger?.entries().some((e) => e.kind === 'reserved-ipv6' && e.id === ip);
}

export function edgeInfoOf(droplet: Droplet, reservedIp: string | undefined, reservedIpv6?: string): EdgeInfo {
  const direct = publicIpv4(droplet);
  const directIpv6 = publicIpv6(droplet);
  const ipv6 = reservedIpv6 ?? directIpv6;
  const price = droplet.size?.price_monthly;
  const image =
    droplet.image?.name ?? droplet.image?.slug ?? (droplet.image?.id == null ? undefined : String(droplet.image.id));
  return {
    provider: 'digitalocean',
    id: String(droplet.id),
    name: droplet.name,
    tunnel: tunnelOf(droplet) ?? droplet.name.replace(/^innisfree-/, ''),
    ipv4: reservedIp ?? direct ?? '',
    ...(reservedIp && direct ? { directIpv4: direct } : {}),
    ...(ipv6 ? { ipv6 } : {}),
    ...(reservedIpv6 && directIpv6 ? { directIpv6 } : {}),
    region: droplet.region?.slug ?? '',
    size: droplet.size_slug ?? droplet.size?.slug ?? '',
    status: droplet.status,
    createdAt: droplet.created_at,
    ...(typeof price === 'number' ? { priceMonthly: price } : {}),
    ...(image ? { image } : {}),
  };
}
