// The tunnel's edge/ directory: edge.json (the exact bytes `plan` hashes) and the per-tunnel flake deploy-rs and
// nixos-anywhere run on. The previous pair is remembered so a rolled-back deploy can put it back, keeping local
// state in line with what the edge serves.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Env } from '../lib/context.js';
import type { Plan } from '../plan.js';
import { serializeEdgeConfig } from '../spec/edge-config.js';
import { readTextIfExists, writeFileAtomic } from '../state/files.js';
import type { TunnelPaths } from '../state/paths.js';
import { innisfreeFlakePath, renderEdgeFlake } from './flake.js';

export interface EdgeFiles {
  write(plan: Plan): Promise<void>;
  /** Restores the files as they were before the last write (removes them if there were none). */
  restore(): Promise<void>;
}

export function edgeFiles(paths: TunnelPaths, env: Env): EdgeFiles {
  let previous: { json: string | undefined; flake: string | undefined } | undefined;
  const lockFile = join(paths.edgeDir, 'flake.lock');
  const put = async (path: string, content: string | undefined): Promise<void> => {
    if (content === undefined) await rm(path, { force: true });
    else await writeFileAtomic(path, content);
  };
  return {
    async write(plan) {
      previous = { json: await readTextIfExists(paths.edgeJson), flake: await readTextIfExists(paths.edgeFlake) };
      await writeFileAtomic(paths.edgeJson, serializeEdgeConfig(plan.edge));
      await writeFileAtomic(
        paths.edgeFlake,
        renderEdgeFlake({ innisfreeFlake: innisfreeFlakePath(env), tunnel: plan.name, configHash: plan.configHash }),
      );
      // A lock from an earlier innisfree would pin the old innisfree flake: let Nix lock the current one.
      await rm(lockFile, { force: true });
    },
    async restore() {
      if (!previous) return;
      await put(paths.edgeJson, previous.json);
      await put(paths.edgeFlake, previous.flake);
      await rm(lockFile, { force: true });
    },
  };
}
