// A tunnel's deployed configuration on disk: edge/edge.json (the exact bytes `plan` hashes), edge/flake.nix (the
// per-tunnel flake deploy-rs and nixos-anywhere run on) and home.json (the home side that goes with them). The
// previous set is remembered so a rolled-back deploy can put it back: local state then describes what the edge
// still serves, and `up` can keep serving it.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Env } from '../lib/context.js';
import { writeHomeConfig } from '../home/home-config-file.js';
import type { Plan } from '../plan.js';
import { HomeConfig } from '../spec/home-config.js';
import { EdgeConfig, serializeEdgeConfig } from '../spec/edge-config.js';
import { readTextIfExists, writeFileAtomic } from '../state/files.js';
import type { TunnelPaths } from '../state/paths.js';
import { innisfreeFlakePath, renderEdgeFlake } from './flake.js';

/** A configuration that was deployed before: what the edge serves after a rollback. */
export interface DeployedConfig {
  edge: EdgeConfig;
  home: HomeConfig;
}

export interface EdgeFiles {
  write(plan: Plan): Promise<void>;
  /**
   * Restores the files as they were before the last write (removes them if there were none) and returns that
   * configuration when it was complete.
   */
  restore(): Promise<DeployedConfig | undefined>;
}

interface Snapshot {
  json: string | undefined;
  flake: string | undefined;
  home: string | undefined;
}

export function edgeFiles(paths: TunnelPaths, env: Env): EdgeFiles {
  let previous: Snapshot | undefined;
  const lockFile = join(paths.edgeDir, 'flake.lock');
  const put = async (path: string, content: string | undefined): Promise<void> => {
    if (content === undefined) await rm(path, { force: true });
    else await writeFileAtomic(path, content);
  };
  return {
    async write(plan) {
      previous = {
        json: await readTextIfExists(paths.edgeJson),
        flake: await readTextIfExists(paths.edgeFlake),
        home: await readTextIfExists(paths.home),
      };
      await writeFileAtomic(paths.edgeJson, serializeEdgeConfig(plan.edge));
      await writeFileAtomic(
        paths.edgeFlake,
        renderEdgeFlake({ innisfreeFlake: innisfreeFlakePath(env), tunnel: plan.name, configHash: plan.configHash }),
      );
      await writeHomeConfig(paths, plan.home);
      // A lock from an earlier innisfree would pin the old innisfree flake: let Nix lock the current one.
      await rm(lockFile, { force: true });
    },
    async restore() {
      if (!previous) return undefined;
      await put(paths.edgeJson, previous.json);
      await put(paths.edgeFlake, previous.flake);
      await put(paths.home, previous.home);
      await rm(lockFile, { force: true });
      return parseDeployed(previous);
    },
  };
}

function parseDeployed(snapshot: Snapshot): DeployedConfig | undefined {
  if (snapshot.json === undefined || snapshot.home === undefined) return undefined;
  try {
    const edge = EdgeConfig.safeParse(JSON.parse(snapshot.json));
    const home = HomeConfig.safeParse(JSON.parse(snapshot.home));
    return edge.success && home.success ? { edge: edge.data, home: home.data } : undefined;
  } catch {
    return undefined;
  }
}
