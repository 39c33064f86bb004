// A run's hold on one tunnel's state directory: the per-tunnel lock, and the rule that a state directory this run
// made is removed again when the run ends in a refusal before anything outside this host existed — it holds nothing
// worth keeping, and a half-made tunnel must not be left behind.
import { existsSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { BusyError } from '../lib/errors.js';
import { acquireLock } from './lock.js';
import { tunnelPaths } from './paths.js';

export interface TunnelClaim {
  /** From now on the run may have made something outside this host (an edge, a key): the state stays. */
  keep(): void;
  /** Releases the lock; after a failure, removes the state directory this run made unless it was kept. */
  release(failure?: unknown): Promise<void>;
}

export async function claimTunnelState(root: string, name: string, command: string): Promise<TunnelClaim> {
  const paths = tunnelPaths(root, name);
  const hadRoot = existsSync(root);
  const hadState = existsSync(paths.dir);
  const lock = await acquireLock(paths.lock, `tunnel "${name}"`, command);
  let kept = false;
  return {
    keep: () => void (kept = true),
    async release(failure?: unknown) {
      await lock.release();
      // Another state directory's tunnel holding the edge (BusyError) leaves nothing of this run's either.
      const discard = failure !== undefined && !hadState && (!kept || failure instanceof BusyError);
      if (!discard) return;
      await rm(paths.dir, { recursive: true, force: true });
      if (!hadRoot) await rmdir(root).catch(() => {});
    },
  };
}
