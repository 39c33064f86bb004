// innisfree list: every edge the provider knows by its innisfree tag, with addresses, place, size, age, monthly
// cost (from the droplet size's price) and whether this host has local state for its tunnel.
import { existsSync } from 'node:fs';
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { formatAge, formatUsd, renderTable } from '../lib/table.js';
import { createProvider } from '../providers/index.js';
import { tokenFileFrom } from '../spec/load.js';
import { DEFAULTS } from '../spec/tunnel.js';
import type { EdgeInfo, Provider } from '../providers/provider.js';
import { stateRoot, tunnelPaths } from '../state/paths.js';
import { listTunnelDirs } from '../state/tunnel-record.js';

export interface ListOptions {
  flags: Record<string, unknown>;
  json: boolean;
}

export interface ListedEdge extends EdgeInfo {
  ageSeconds: number;
  /** This host has a state directory for the edge's tunnel. */
  localState: boolean;
}

export async function listEdgesWithState(
  ctx: Pick<Context, 'clock' | 'emit' | 'env' | 'signal'>,
  flags: Record<string, unknown>,
  given?: Provider,
): Promise<ListedEdge[]> {
  const name = typeof flags.provider === 'string' ? flags.provider : DEFAULTS.provider;
  const provider = given ?? (await createProvider(name, ctx, { tokenFile: await tokenFileFrom(flags, ctx.env) }));
  const root = stateRoot(ctx.env);
  const now = ctx.clock.now();
  return (await provider.listEdges()).map((edge) => ({
    ...edge,
    ageSeconds: Math.max(0, Math.floor((now - Date.parse(edge.createdAt)) / 1000)),
    localState: existsSync(tunnelPaths(root, edge.tunnel).dir),
  }));
}

export async function listCommand(
  ctx: Pick<Context, 'clock' | 'emit' | 'env' | 'signal'>,
  options: ListOptions,
): Promise<CommandOutcome> {
  const name = typeof options.flags.provider === 'string' ? options.flags.provider : DEFAULTS.provider;
  const provider = await createProvider(name, ctx, { tokenFile: await tokenFileFrom(options.flags, ctx.env) });
  const edges = await listEdgesWithState(ctx, options.flags, provider);
  if (options.json) return { output: `${JSON.stringify(edges, null, 2)}\n` };
  const strays = await strayLine(ctx, provider, edges);
  if (edges.length === 0) return { output: `No innisfree edges.\n${strays}` };
  return { output: renderEdges(edges) + totalLine(edges) + strays };
}

/** innisfree-* SSH keys and firewalls of tunnels with neither an edge nor local state (what clean removes). */
async function strayLine(
  ctx: Pick<Context, 'emit' | 'env' | 'signal'>,
  provider: Provider,
  edges: readonly ListedEdge[],
): Promise<string> {
  if (!provider.sweep) return '';
  const keep = new Set([...(await listTunnelDirs(stateRoot(ctx.env))), ...edges.map((e) => e.tunnel)]);
  const report = await provider.sweep({ keepTunnels: keep, destroy: false, emit: ctx.emit, signal: ctx.signal });
  const parts = [
    ...(report.keys.length > 0 ? [`SSH key${report.keys.length === 1 ? '' : 's'} ${report.keys.join(', ')}`] : []),
    ...(report.firewalls.length > 0
      ? [`cloud firewall${report.firewalls.length === 1 ? '' : 's'} ${report.firewalls.join(', ')}`]
      : []),
  ];
  return parts.length > 0
    ? `Stray: ${parts.join('; ')} (no edge or local state uses them; innisfree clean --yes removes them)\n`
    : '';
}

export function renderEdges(edges: readonly ListedEdge[]): string {
  return renderTable(
    ['TUNNEL', 'NAME', 'ID', 'IPV4', 'IPV6', 'REGION', 'SIZE', 'AGE', 'MONTHLY', 'STATUS', 'LOCAL STATE'],
    edges.map((e) => [
      e.tunnel,
      e.name,
      e.id,
      e.directIpv4 ? `${e.ipv4} (reserved)` : e.ipv4 || '-',
      e.ipv6 ? `${e.ipv6}${e.directIpv6 ? ' (reserved)' : ''}` : '-',
      e.region,
      e.size,
      formatAge(e.ageSeconds * 1000),
      formatUsd(e.priceMonthly),
      e.status,
      e.localState ? 'yes' : 'no',
    ]),
  );
}

function totalLine(edges: readonly ListedEdge[]): string {
  const priced = edges.filter((e) => e.priceMonthly !== undefined);
  const total = priced.reduce((sum, e) => sum + (e.priceMonthly ?? 0), 0);
  return (
    `${edges.length} edge${edges.length === 1 ? '' : 's'}, ${formatUsd(total)} a month` +
    `${priced.length < edges.length ? ' (some unpriced)' : ''}\n`
  );
}
