// innisfree clean: edges tagged innisfree whose tunnel has no local state on this host (left behind by a crash or
// by another machine's state being lost). Lists them; destroys them (like `down`) with --yes.
import type { Context } from '../lib/context.js';
import { createProvider } from '../providers/index.js';
import { tokenFileFrom } from '../spec/load.js';
import { DEFAULTS } from '../spec/tunnel.js';
import { listEdgesWithState, renderEdges } from './list.js';

export interface CleanOptions {
  flags: Record<string, unknown>;
  json: boolean;
}

export async function cleanCommand(ctx: Pick<Context, 'clock' | 'emit' | 'env' | 'signal'>, options: CleanOptions): Promise<string> {
  const orphans = (await listEdgesWithState(ctx, options.flags)).filter((e) => !e.localState);
  const yes = options.flags.yes === true;
  if (!yes || orphans.length === 0) {
    if (options.json) return `${JSON.stringify({ orphans, destroyed: [] }, null, 2)}\n`;
    if (orphans.length === 0) return 'Nothing to clean: every innisfree edge has local state on this host.\n';
    return (
      renderEdges(orphans) +
      `${orphans.length} edge${orphans.length === 1 ? ' has' : 's have'} no local state. Run innisfree clean --yes to destroy ` +
      `${orphans.length === 1 ? 'it' : 'them'} (with their SSH keys, DNS records and firewalls; reserved IPs are kept unless --release-ip).\n`
    );
  }
  const providerName = typeof options.flags.provider === 'string' ? options.flags.provider : DEFAULTS.provider;
  const provider = await createProvider(providerName, ctx, { tokenFile: await tokenFileFrom(options.flags, ctx.env) });
  const tunnels = [...new Set(orphans.map((e) => e.tunnel))];
  for (const tunnel of tunnels) {
    await provider.destroyEdge(tunnel, { releaseIp: options.flags.releaseIp === true, emit: ctx.emit, signal: ctx.signal });
  }
  if (options.json) return `${JSON.stringify({ orphans, destroyed: tunnels }, null, 2)}\n`;
  return `Destroyed ${orphans.length} edge${orphans.length === 1 ? '' : 's'}: ${orphans.map((e) => e.name).join(', ')}.\n`;
}
