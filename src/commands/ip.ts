// innisfree ip NAME: the edge's public addresses, from the tunnel's status.json.
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { requireTunnelEdge } from './tunnel-edge.js';

export interface IpOptions {
  name: string;
  json: boolean;
}

export async function ipCommand(ctx: Pick<Context, 'env'>, options: IpOptions): Promise<CommandOutcome> {
  const { name, json } = options;
  const { edge } = await requireTunnelEdge(ctx.env, name);
  if (json) return { output: `${JSON.stringify({ name, ipv4: edge.ipv4, ipv6: edge.ipv6 ?? null })}\n` };
  return { output: `${edge.ipv4}\n${edge.ipv6 ? `${edge.ipv6}\n` : ''}` };
}
