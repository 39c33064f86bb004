// innisfree status [NAME]: what each tunnel is doing, from the status.json its `up` process keeps current.
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { UsageError, formatError } from '../lib/errors.js';
import { isHolderAlive, readLockHolder } from '../state/lock.js';
import { stateRoot, tunnelPaths } from '../state/paths.js';
import { TunnelName } from '../spec/primitives.js';
import { type TunnelStatus, inspectStatus } from '../state/status.js';
import { damagedStateError, listTunnelNames, readTunnelRecord } from '../state/tunnel-record.js';

export interface StatusOptions {
  name?: string;
  json: boolean;
}

export interface TunnelReport {
  name: string;
  /**
   * The recorded phase, "stale" when the process that recorded "ready" is gone, "damaged" for an unreadable state file.
   */
  phase: string;
  /** Why the tunnel's state cannot be read (a truncated tunnel.json or status.json), with what to do. */
  damaged: string | null;
  running: boolean;
  status: TunnelStatus | null;
  /** Seconds since the latest handshake, when known. */
  handshakeAgeSeconds: number | null;
  configInSync: boolean | null;
}

export async function statusCommand(
  ctx: Pick<Context, 'env' | 'clock'>,
  options: StatusOptions,
): Promise<CommandOutcome> {
  // A name goes into a path: only tunnel names do (no "../etc").
  if (options.name !== undefined && !TunnelName.safeParse(options.name).success) {
    throw new UsageError(`"${options.name}" is not a tunnel name`, {
      hint: 'innisfree status lists the tunnels on this host',
    });
  }
  const root = stateRoot(ctx.env);
  const names = options.name ? [options.name] : await listTunnelNames(root);
  const reports: TunnelReport[] = [];
  for (const name of names) {
    const paths = tunnelPaths(root, name);
    const inspected = await inspectStatus(paths);
    const status = inspected === undefined || inspected === 'damaged' ? null : inspected;
    const holder = await readLockHolder(paths.lock);
    const running = holder !== undefined && holder.pid !== 0 && isHolderAlive(holder);
    // A damaged file is said as such (as up says it), never shown as "planned" or "stopped".
    let damaged: UsageError | undefined = inspected === 'damaged' ? damagedStateError(paths, paths.status) : undefined;
    const record = await readTunnelRecord(paths).catch((error: unknown) => {
      if (!(error instanceof UsageError)) throw error;
      damaged ??= error;
      return undefined;
    });
    if (damaged && options.name) throw damaged;
    if (!status && !damaged && options.name && !running && !record) {
      throw new UsageError(`no tunnel named "${name}" on this host`, {
        hint: 'innisfree status lists the tunnels that have state here',
      });
    }
    const active = status !== null && !['stopped', 'failed', 'planned'].includes(status.phase);
    const latest = status?.dataPlane?.latestHandshake ?? 0;
    reports.push({
      name,
      damaged: damaged ? formatError(damaged) : null,
      phase: damaged ? 'damaged' : status === null ? 'planned' : active && !running ? 'stale' : status.phase,
      running,
      status,
      handshakeAgeSeconds: latest > 0 ? Math.max(0, Math.round(ctx.clock.now() / 1000 - latest)) : null,
      configInSync: status?.deployedConfigHash ? status.deployedConfigHash === status.plannedConfigHash : null,
    });
  }
  if (options.json) return { output: `${JSON.stringify(options.name ? reports[0] : reports, null, 2)}\n` };
  if (reports.length === 0)
    return { output: 'No tunnels on this host. Start one with: innisfree up --ports 443/tcp\n' };
  return { output: reports.map(renderReport).join('\n') };
}

function renderReport(report: TunnelReport): string {
  const s = report.status;
  const lines = [`${report.name}: ${report.phase}${report.running ? ` (pid ${s?.pid ?? '?'})` : ''}`];
  if (report.damaged) lines.push(`  damaged         ${report.damaged}`);
  if (report.phase === 'stale')
    lines.push('  the process running it is gone; run up again to re-attach, or innisfree down to remove it');
  // A degraded tunnel is still running: its message is the problem the watch is repairing, not a past error.
  if (s?.message) lines.push(`  ${s.phase === 'degraded' ? 'problem ' : 'last error'}      ${s.message}`);
  if (s?.edge) {
    const e = s.edge;
    const direct = [e.directIpv4, e.directIpv6].filter((a) => a !== undefined);
    lines.push(
      `  public address  ${e.ipv4}${e.ipv6 ? `, ${e.ipv6}` : ''}` +
        `${direct.length > 0 ? ` (droplet ${direct.join(', ')})` : ''}`,
    );
    lines.push(`  edge            ${e.provider} ${e.name} id ${e.id}, ${e.region}, ${e.size}`);
  }
  if (s) {
    const sync =
      report.configInSync === null ? '' : report.configInSync ? ' (in sync)' : ' (differs: run up or innisfree deploy)';
    lines.push(
      `  config          planned ${short(s.plannedConfigHash)}, deployed ${short(s.deployedConfigHash)}${sync}`,
    );
  }
  const r = s?.lastReload;
  if (r) {
    const changes = [...r.added.map((p) => `+${p}`), ...r.removed.map((p) => `-${p}`)].join(' ');
    lines.push(
      r.outcome === 'reloaded'
        ? `  last reload     ${r.at}: reloaded to ${short(r.configHash)}${changes ? `, ports ${changes}` : ''}`
        : `  last reload     ${r.at}: FAILED, still serving ${short(r.configHash)}: ${r.message ?? 'unknown reason'}`,
    );
  }
  const d = s?.dataPlane;
  if (d) {
    const age = report.handshakeAgeSeconds === null ? 'none yet' : `${report.handshakeAgeSeconds} s ago`;
    lines.push(
      `  wireguard       ${d.interface}${d.implementation ? ` (${d.implementation})` : ''}, handshake ${age}, ` +
        `rx ${bytes(d.rxBytes)}, tx ${bytes(d.txBytes)}${d.endpoint ? `, endpoint ${d.endpoint}` : ''}`,
    );
    for (const port of d.ports) {
      const unit = port.protocol === 'tcp' ? 'connections' : 'sessions';
      const to = port.destination ? `, to ${port.destination}` : '';
      if (port.path === 'kernel') {
        // nftables counts new connections (UDP: flows) and bytes; it does not know which are still open.
        lines.push(
          `  ${`${port.listenPort}/${port.protocol}`.padEnd(15)} ${port.opened} ${unit}, in ` +
            `${bytes(port.bytesIn)}, out ${bytes(port.bytesOut)} (kernel)${to}`,
        );
        continue;
      }
      lines.push(
        `  ${`${port.listenPort}/${port.protocol}`.padEnd(15)} ${port.opened} ${unit} (${port.active} active), ` +
          `in ${bytes(port.bytesIn)}, out ${bytes(port.bytesOut)}` +
          `${port.errors ? `, ${port.errors} errors` : ''}${to}`,
      );
    }
    lines.push(`  sampled         ${d.sampledAt}`);
  }
  return `${lines.join('\n')}\n`;
}

function short(hash: string | null): string {
  return hash ? hash.slice(0, 12) : 'none';
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
