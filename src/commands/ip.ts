// innisfree ip NAME: the edge's public addresses, from the tunnel's status.json.
import type { Context } from '../lib/context.js';
import { requireTunnelEdge } from './tunnel-edge.js';

export async function ipCommand(ctx: Pick<Context, 'env'>, name: string, json: boolean): Promise<string> {
  const { edge } = await requireTunnelEdge(ctx.env, name);
  if (json) return `${JSON.stringify({ name, ipv4: edge.ipv4, ipv6: edge.ipv6 ?? null })}\n`;
  return `${edge.ipv4}\n${edge.ipv6 ? `${edge.ipv6}\n` : ''}`;
}
