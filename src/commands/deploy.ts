// innisfree deploy NAME: apply the tunnel's recorded edge configuration (edge/edge.json) to its kept edge again —
// after a rollback was fixed on the edge, after an innisfree upgrade, or when the edge drifted. Port changes go
// through `up`, which plans them and moves the home side with them.
import { createHash } from 'node:crypto';
import { renderEdgeFlake, innisfreeFlakePath } from '../edge/flake.js';
import { sshTargetFor } from '../edge/ssh.js';
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { UsageError } from '../lib/errors.js';
import { parseJsonOrUndefined } from '../lib/json.js';
import { providerKit } from '../providers/index.js';
import { step } from '../lib/events.js';
import { EdgeConfig } from '../spec/edge-config.js';
import { readTextIfExists, writeFileAtomic } from '../state/files.js';
import { acquireLock } from '../state/lock.js';
import { readStatus, writeStatus } from '../state/status.js';
import { requireTunnelEdge } from './tunnel-edge.js';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface DeployOptions {
  name: string;
}

export async function deployCommand(ctx: Context, { name }: DeployOptions): Promise<CommandOutcome> {
  const { paths, edge, sshPort } = await requireTunnelEdge(ctx.env, name);
  const lock = await acquireLock(paths.lock, `tunnel "${name}"`, 'innisfree deploy');
  try {
    const text = await readTextIfExists(paths.edgeJson);
    const parsed = text === undefined ? undefined : EdgeConfig.safeParse(parseJsonOrUndefined(text));
    if (!text || !parsed?.success) {
      throw new UsageError(`tunnel "${name}" has no valid edge configuration to deploy (${paths.edgeJson})`, {
        hint: `plan and deploy one with innisfree up --name ${name} --ports …`,
      });
    }
    const configHash = createHash('sha256').update(text).digest('hex');
    await writeFileAtomic(
      paths.edgeFlake,
      renderEdgeFlake({ innisfreeFlake: innisfreeFlakePath(ctx.env), tunnel: name, configHash }),
    );
    await rm(join(paths.edgeDir, 'flake.lock'), { force: true });
    const deployer = await providerKit(edge.provider).deployer(ctx);
    const status = await readStatus(paths);
    const record = async (change: { deployedConfigHash?: string; message: string | null }): Promise<void> => {
      if (status)
        await writeStatus(paths, { ...status, ...change, updatedAt: new Date(ctx.clock.now()).toISOString() });
    };
    try {
      const result = await step(
        ctx.emit,
        'deploy',
        `Deploying ${configHash.slice(0, 12)} to ${edge.name} (${edge.ipv4})`,
        () =>
          deployer.apply({
            tunnel: name,
            edgeDir: paths.edgeDir,
            configHash,
            target: sshTargetFor(paths, edge.ipv4, sshPort),
            emit: ctx.emit,
            signal: ctx.signal,
          }),
      );
      await record({ deployedConfigHash: result.configHash, message: null });
      return { output: `Deployed ${result.configHash.slice(0, 12)} to ${edge.name} at ${edge.ipv4}.\n` };
    } catch (error) {
      await record({ message: error instanceof Error ? error.message : String(error) });
      throw error;
    }
  } finally {
    await lock.release();
  }
}
