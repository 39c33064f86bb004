// innisfree clean: edges tagged innisfree whose tunnel has no local state on this host (left behind by a crash or
// by another machine's state being lost), innisfree-* SSH keys and cloud firewalls no edge or local state uses, and
// what a killed `up` recorded in a tunnel's ledger (resources.json). Lists them; removes them (like `down`) with
// --yes. The account-wide lists are fetched once for the whole command.
import { existsSync } from 'node:fs';
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { formatUsd } from '../lib/table.js';
import { createProvider } from '../providers/index.js';
import type { Provider, SweepReport } from '../providers/provider.js';
import { tokenFileFrom } from '../spec/load.js';
import { DEFAULTS } from '../spec/tunnel.js';
import { acquireLock, isHolderAlive, readLockHolder } from '../state/lock.js';
import { stateRoot, tunnelPaths } from '../state/paths.js';
import { type LedgerEntry, ResourceLedger } from '../state/resources.js';
import { listTunnelDirs } from '../state/tunnel-record.js';
import { type ListedEdge, listEdgesWithState, renderEdges } from './list.js';

export interface CleanOptions {
  flags: Record<string, unknown>;
  json: boolean;
}

type CleanContext = Pick<Context, 'clock' | 'emit' | 'env' | 'signal'>;

export async function cleanCommand(ctx: CleanContext, options: CleanOptions): Promise<CommandOutcome> {
  const yes = options.flags.yes === true;
  const providerName = typeof options.flags.provider === 'string' ? options.flags.provider : DEFAULTS.provider;
  const provider = await createProvider(providerName, ctx, { tokenFile: await tokenFileFrom(options.flags, ctx.env) });
  if (!provider.sweep) return cleanEdgesOnly(ctx, provider, options);

  const root = stateRoot(ctx.env);
  const withState = new Set(await listTunnelDirs(root));
  const report = await provider.sweep({
    keepTunnels: withState,
    destroy: yes,
    releaseIp: options.flags.releaseIp === true,
    emit: ctx.emit,
    signal: ctx.signal,
  });
  const ledgers = await staleLedgers(root, withState);
  const leftovers: Array<{ tunnel: string; entries: LedgerEntry[] }> = ledgers.map((l) => ({
    tunnel: l.tunnel,
    entries: [...l.entries()],
  }));
  if (yes) {
    for (const ledger of ledgers) {
      const lock = await acquireLock(
        tunnelPaths(root, ledger.tunnel).lock,
        `tunnel ${ledger.tunnel}`,
        'innisfree clean',
        new Date(ctx.clock.now()),
      );
      try {
        await provider.removeRecorded?.(ledger, ctx.emit, 'left by a run of up that was killed');
      } finally {
        await lock.release();
      }
    }
  }
  const now = ctx.clock.now();
  const orphans: ListedEdge[] = report.edges.map((e) => ({
    ...e,
    ageSeconds: Math.max(0, Math.floor((now - Date.parse(e.createdAt)) / 1000)),
    localState: false,
  }));
  if (options.json) {
    const summary = {
      orphans,
      destroyed: yes ? [...new Set(orphans.map((e) => e.tunnel))] : [],
      sshKeys: report.keys,
      firewalls: report.firewalls,
      dnsRecords: report.records,
      ledgers: leftovers,
      removed: yes,
    };
    return { output: `${JSON.stringify(summary, null, 2)}\n` };
  }
  const nothing =
    orphans.length === 0 && report.keys.length === 0 && report.firewalls.length === 0 && leftovers.length === 0;
  if (nothing) return { output: 'Nothing to clean: every innisfree edge has local state on this host.\n' };
  return { output: yes ? removedText(orphans, report, leftovers) : pendingText(orphans, report, leftovers) };
}

function pendingText(
  orphans: ListedEdge[],
  report: SweepReport,
  leftovers: Array<{ tunnel: string; entries: LedgerEntry[] }>,
): string {
  let text = orphans.length > 0 ? renderEdges(orphans) : '';
  if (orphans.length > 0) {
    const cost = orphans.reduce((sum, e) => sum + (e.priceMonthly ?? 0), 0);
    text +=
      `${orphans.length} edge${orphans.length === 1 ? ' has' : 's have'} no local state (${formatUsd(cost)} a ` +
      `month).\n`;
  }
  text += strayLines(report.keys, report.firewalls, 'No edge or local state uses');
  for (const l of leftovers)
    text += `A run of up for ${l.tunnel} was killed and left: ${l.entries.map(describe).join(', ')}.\n`;
  return (
    text +
    'Run innisfree clean --yes to remove ' +
    (orphans.length === 1 && report.keys.length + report.firewalls.length + leftovers.length === 0 ? 'it' : 'them') +
    ' (edges with their SSH keys, DNS records and firewalls; reserved IPs are kept unless --release-ip).\n'
  );
}

function removedText(
  orphans: ListedEdge[],
  report: SweepReport,
  leftovers: Array<{ tunnel: string; entries: LedgerEntry[] }>,
): string {
  let text =
    orphans.length > 0
      ? `Destroyed ${orphans.length} edge${orphans.length === 1 ? '' : 's'}: ` +
        `${orphans.map((e) => e.name).join(', ')}.\n`
      : '';
  text += strayLines(report.keys, report.firewalls, 'Removed');
  if (report.records.length > 0) text += `Removed the DNS records of ${report.records.join(', ')}.\n`;
  for (const l of leftovers)
    text += `Removed what a killed run of up for ${l.tunnel} left: ${l.entries.map(describe).join(', ')}.\n`;
  return text;
}

function strayLines(keys: string[], firewalls: string[], lead: string): string {
  let text = '';
  if (keys.length > 0) text += `${lead} SSH key${keys.length === 1 ? '' : 's'}: ${keys.join(', ')}.\n`;
  if (firewalls.length > 0)
    text += `${lead} cloud firewall${firewalls.length === 1 ? '' : 's'}: ${firewalls.join(', ')}.\n`;
  return text;
}

function describe(entry: LedgerEntry): string {
  return `${entry.kind}${entry.id ? ` ${entry.id}` : ''}`;
}

/** Ledgers with entries whose run is no longer alive (a live `up` holds the tunnel's lock). */
async function staleLedgers(root: string, tunnels: ReadonlySet<string>): Promise<ResourceLedger[]> {
  const stale: ResourceLedger[] = [];
  for (const tunnel of [...tunnels].sort()) {
    const paths = tunnelPaths(root, tunnel);
    if (!existsSync(paths.resources)) continue;
    const holder = await readLockHolder(paths.lock);
    if (holder && holder.pid !== 0 && isHolderAlive(holder)) continue;
    const ledger = await ResourceLedger.open(paths.resources, tunnel);
    if (!ledger.empty) stale.push(ledger);
  }
  return stale;
}

/** Providers without an account-wide sweep (local): edges only, one destroyEdge each. */
async function cleanEdgesOnly(ctx: CleanContext, provider: Provider, options: CleanOptions): Promise<CommandOutcome> {
  const orphans = (await listEdgesWithState(ctx, options.flags, provider)).filter((e) => !e.localState);
  const yes = options.flags.yes === true;
  if (!yes || orphans.length === 0) {
    if (options.json) return { output: `${JSON.stringify({ orphans, destroyed: [] }, null, 2)}\n` };
    if (orphans.length === 0)
      return { output: 'Nothing to clean: every innisfree edge has local state on this host.\n' };
    return {
      output:
        renderEdges(orphans) +
        `${orphans.length} edge${orphans.length === 1 ? ' has' : 's have'} no local state. Run innisfree clean ` +
        `--yes to destroy ` +
        `${orphans.length === 1 ? 'it' : 'them'}.\n`,
    };
  }
  const tunnels = [...new Set(orphans.map((e) => e.tunnel))];
  for (const tunnel of tunnels) {
    await provider.destroyEdge(tunnel, {
      releaseIp: options.flags.releaseIp === true,
      emit: ctx.emit,
      signal: ctx.signal,
    });
  }
  if (options.json) return { output: `${JSON.stringify({ orphans, destroyed: tunnels }, null, 2)}\n` };
  return {
    output:
      `Destroyed ${orphans.length} edge${orphans.length === 1 ? '' : 's'}: ` +
      `${orphans.map((e) => e.name).join(', ')}.\n`,
  };
}
