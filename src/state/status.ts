// status.json: what a tunnel is doing right now, written by the process that runs it (atomically, so `status`
// in another process never reads a torn file) and read by `status`, `ip`, `down` and `list`.
import { z } from 'zod';
import { EdgeInfo } from './edge-info.js';
import { PROVIDERS } from '../spec/tunnel.js';
import { readTextIfExists, writeJsonAtomic } from './files.js';
import type { TunnelPaths } from './paths.js';

export const PHASES = [
  'planned',
  'provisioning',
  'bootstrapping',
  'deploying',
  'connecting',
  'ready',
  /** Ready, but the watch found a problem; `message` says which, and a repair is under way. */
  'degraded',
  'stopping',
  'stopped',
  'failed',
] as const;

export type Phase = (typeof PHASES)[number];

const PortCounters = z.object({
  protocol: z.enum(['tcp', 'udp']),
  listenPort: z.number(),
  /** TCP: connections accepted; UDP: sessions opened. */
  opened: z.number(),
  active: z.number(),
  bytesIn: z.number(),
  bytesOut: z.number(),
  errors: z.number(),
  /** "kernel": nftables counters (opened counts new connections or UDP flows; active is not known). */
  path: z.enum(['kernel', 'proxy']).optional(),
  /** Where home forwards this port ("192.168.1.20:443"); absent in status files of earlier versions. */
  destination: z.string().optional(),
});

export const TunnelStatus = z.object({
  version: z.literal(1),
  name: z.string(),
  phase: z.enum(PHASES),
  /** The process running the tunnel, while it runs. */
  pid: z.number().nullable(),
  provider: z.enum(PROVIDERS),
  updatedAt: z.string(),
  edge: EdgeInfo.nullable(),
  /** sha256 of the edge.json this run planned, and of the one the edge reports deployed. */
  plannedConfigHash: z.string().nullable(),
  deployedConfigHash: z.string().nullable(),
  /** The last failure, in the same one-line form the CLI prints. */
  message: z.string().nullable(),
  /** The outcome of the last reload of this run (SIGHUP or innisfree reload); absent before any. */
  lastReload: z
    .object({
      at: z.string(),
      outcome: z.enum(['reloaded', 'failed']),
      /** The config serving after it: the new one, or after a failure still the previous one. */
      configHash: z.string().nullable(),
      added: z.array(z.string()),
      removed: z.array(z.string()),
      /** failed: the one-line reason; its exit-code class (innisfree reload exits with it). */
      message: z.string().nullable(),
      kind: z.string().nullable(),
    })
    .nullable()
    .optional(),
  /** Sampled periodically by the running process. */
  dataPlane: z
    .object({
      sampledAt: z.string(),
      interface: z.string(),
      /** Which WireGuard runs the link; absent in status files of earlier versions. */
      implementation: z.enum(['kernel', 'wireguard-go']).optional(),
      /** Unix seconds of the latest handshake with the edge; 0 when none yet. */
      latestHandshake: z.number(),
      rxBytes: z.number(),
      txBytes: z.number(),
      endpoint: z.string().nullable(),
      ports: z.array(PortCounters),
    })
    .nullable(),
});

export type TunnelStatus = z.infer<typeof TunnelStatus>;
export type PortCounters = z.infer<typeof PortCounters>;

/** status.json, or undefined when it is missing or damaged (callers that must tell the two apart use inspectStatus). */
export async function readStatus(paths: TunnelPaths): Promise<TunnelStatus | undefined> {
  const read = await inspectStatus(paths);
  return read === 'damaged' ? undefined : read;
}

/** status.json; undefined when there is none yet, "damaged" when it is there but not a status (truncated, foreign). */
export async function inspectStatus(paths: TunnelPaths): Promise<TunnelStatus | 'damaged' | undefined> {
  const text = await readTextIfExists(paths.status);
  if (text === undefined) return undefined;
  try {
    const parsed = TunnelStatus.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : 'damaged';
  } catch {
    return 'damaged';
  }
}

export async function writeStatus(paths: TunnelPaths, status: TunnelStatus): Promise<void> {
  await writeJsonAtomic(paths.status, status);
}
