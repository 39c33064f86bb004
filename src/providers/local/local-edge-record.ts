// What a local edge leaves in its runtime directory so a later run (another process) finds it again: the edge
// record, and how it is read back into the edge's layout and paths.
import { z } from 'zod';
import { ProviderError } from '../../lib/errors.js';
import { readTextIfExists } from '../../state/files.js';
import { DEFAULT_BLOCKS, type LocalEdgeLayout, type RuntimePaths, layoutOf, runtimePaths } from './layout.js';

export const DEFAULT_RUNTIME_DIR = '/run/innisfree/local';

export function runtimeDirHint(runtimeDir: string): string {
  return (
    `local edges are recorded under INNISFREE_LOCAL_DIR (default ${DEFAULT_RUNTIME_DIR}), which must be a ` +
    `directory root can write; fix ${runtimeDir} or point INNISFREE_LOCAL_DIR elsewhere`
  );
}

const LocalEdgeRecord = z.object({
  version: z.literal(1),
  tunnel: z.string(),
  id: z.string(),
  slot: z.number().int(),
  createdAt: z.string(),
  sshPort: z.number().int(),
  wireguardPort: z.number().int(),
  /** Set once ensureDestination made the destination host. */
  destination: z.boolean(),
  /** The innisfree state directory whose `up` created the edge (named when another one finds it). */
  stateRoot: z.string().optional(),
  /** The address blocks picked at create; edges recorded before they were picked used DEFAULT_BLOCKS. */
  blocks: z.object({ public: z.string(), link: z.string(), client: z.string() }).optional(),
  /** The IPv6 /48 (2001:db8:…) when the edge has IPv6 (made or kept with --ipv6). */
  block6: z.string().optional(),
});

export type LocalEdgeRecord = z.infer<typeof LocalEdgeRecord>;

export interface LocalEdge {
  record: LocalEdgeRecord;
  layout: LocalEdgeLayout;
  paths: RuntimePaths;
}

/** The recorded edge of a tunnel (namespaces, addresses, files), if any. */
export async function readLocalEdge(runtimeDir: string, tunnel: string): Promise<LocalEdge | undefined> {
  const paths = runtimePaths(runtimeDir, tunnel);
  const text = await readTextIfExists(paths.record, runtimeDirHint(runtimeDir));
  if (text === undefined) return undefined;
  let parsed: LocalEdgeRecord;
  try {
    parsed = LocalEdgeRecord.parse(JSON.parse(text));
  } catch {
    throw new ProviderError(`the local edge record ${paths.record} is damaged`, {
      hint: `remove ${paths.dir} and run again`,
    });
  }
  try {
    return {
      record: parsed,
      layout: layoutOf(parsed.id, parsed.slot, parsed.blocks ?? DEFAULT_BLOCKS, parsed.block6),
      paths,
    };
  } catch {
    throw new ProviderError(`the local edge record ${paths.record} is damaged`, {
      hint: `remove ${paths.dir} and run again`,
    });
  }
}
