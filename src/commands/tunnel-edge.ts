// What `ssh`, `ip` and friends need to reach a tunnel's edge: its state directory, the edge recorded in
// status.json and the edge's SSH port (from the deployed edge.json), with one clear error for each way it can be
// missing.
import { existsSync } from 'node:fs';
import type { Env } from '../lib/context.js';
import { UsageError } from '../lib/errors.js';
import type { EdgeInfo } from '../providers/provider.js';
import { TunnelName } from '../spec/primitives.js';
import { readTextIfExists } from '../state/files.js';
import { type TunnelPaths, stateRoot, tunnelPaths } from '../state/paths.js';
import { inspectStatus } from '../state/status.js';
import { damagedStateError } from '../state/tunnel-record.js';

export interface TunnelEdge {
  paths: TunnelPaths;
  edge: EdgeInfo;
  sshPort: number;
}

export function tunnelPathsOf(env: Env, name: string): TunnelPaths {
  const parsed = TunnelName.safeParse(name);
  if (!parsed.success) {
    throw new UsageError(`"${name}" is not a tunnel name: ${parsed.error.issues[0]?.message ?? 'invalid'}`, {
      hint: 'innisfree status lists the tunnels on this host',
    });
  }
  const paths = tunnelPaths(stateRoot(env), name);
  if (!existsSync(paths.dir)) {
    throw new UsageError(`there is no tunnel named "${name}" on this host`, {
      hint:
        `innisfree status lists the tunnels on this host; start this one with innisfree up --name ${name} ` +
        `--ports …`,
    });
  }
  return paths;
}

/** The edge's SSH port as last planned (edge.json), 22 when no edge.json was written yet. */
export async function edgeSshPortOf(paths: TunnelPaths): Promise<number> {
  const text = await readTextIfExists(paths.edgeJson);
  if (text === undefined) return 22;
  try {
    const port = (JSON.parse(text) as { ssh?: { port?: unknown } }).ssh?.port;
    return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536 ? port : 22;
  } catch {
    return 22;
  }
}

export async function requireTunnelEdge(env: Env, name: string): Promise<TunnelEdge> {
  const paths = tunnelPathsOf(env, name);
  const inspected = await inspectStatus(paths);
  // The edge's address is only in status.json: a damaged one is said as such, not as "no edge".
  if (inspected === 'damaged') throw damagedStateError(paths, paths.status);
  const status = inspected;
  if (!status?.edge) {
    throw new UsageError(`tunnel "${name}" has no edge${status ? ` (it is ${status.phase})` : ''}`, {
      hint: `start it with innisfree up --name ${name} (add --keep to keep the edge after up exits)`,
    });
  }
  return { paths, edge: status.edge, sshPort: await edgeSshPortOf(paths) };
}
