// home.json: the home-side plan (HomeConfig) of a tunnel's last `up`, kept in its state directory so `proxy NAME`
// (and anything else that runs the home side separately) uses exactly what `up` planned.
import { z } from 'zod';
import { UsageError } from '../lib/errors.js';
import type { HomeConfig } from '../plan.js';
import { readTextIfExists, writeJsonAtomic } from '../state/files.js';
import type { TunnelPaths } from '../state/paths.js';

const Port = z.number().int().min(1).max(65535);

const HomeForwardSchema = z.object({
  protocol: z.enum(['tcp', 'udp']),
  listenAddress: z.string().min(1),
  listenPort: Port,
  targetHost: z.string().min(1),
  targetPort: Port,
});

export const HomeConfigSchema = z.object({
  name: z.string(),
  interface: z.string(),
  address: z.string(),
  edgeAddress: z.string(),
  address6: z.string().optional(),
  edgeAddress6: z.string().optional(),
  edgeWireguardPort: Port,
  persistentKeepalive: z.number().int().min(0),
  mtu: z.number().int(),
  allowedIps: z.array(z.string()),
  policyRouting: z.object({ table: z.number().int(), priority: z.number().int(), from: z.array(z.string()) }).nullable(),
  destination: z.string(),
  forwards: z.array(HomeForwardSchema),
});

/** The tunnel's home plan, or undefined when `up` has not written one. A damaged file is a usage error. */
export async function readHomeConfig(paths: TunnelPaths): Promise<HomeConfig | undefined> {
  const text = await readTextIfExists(paths.home);
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const parsed = HomeConfigSchema.safeParse(value);
  if (!parsed.success) {
    throw new UsageError(`${paths.home} is damaged`, { hint: 'run innisfree up again to rewrite it' });
  }
  return parsed.data as HomeConfig;
}

export async function writeHomeConfig(paths: TunnelPaths, home: HomeConfig): Promise<void> {
  await writeJsonAtomic(paths.home, home);
}
