// innisfree reload NAME: asks the running `up` of a tunnel to reload (SIGHUP to the pid in its lock file), then
// waits for the outcome it records in status.json and reports it: exit 0 when the new configuration serves, the
// failure's own exit code (2 bad input, 5 deploy failed, 6 rolled back, ...) when the old one still does.
import { hostname } from 'node:os';
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import {
  DeployError,
  EnvironmentError,
  ExitCode,
  type ExitCodeName,
  InnisfreeError,
  NotRunningError,
  UsageError,
} from '../lib/errors.js';
import { TunnelName } from '../spec/primitives.js';
import { isHolderAlive, readLockHolder } from '../state/lock.js';
import { stateRoot, tunnelPaths } from '../state/paths.js';
import { readStatus } from '../state/status.js';

export interface ReloadOptions {
  name: string;
  json: boolean;
  /** How long to wait for the outcome (a deploy to a real edge takes minutes). Default 600 s. */
  timeoutMs?: number;
  /** Sends the signal; tests pass a fake. */
  kill?: (pid: number, signal: NodeJS.Signals) => void;
}

const POLL_MS = 200;

export async function reloadCommand(
  ctx: Pick<Context, 'env' | 'clock' | 'signal'>,
  options: ReloadOptions,
): Promise<CommandOutcome> {
  const { name } = options;
  if (!TunnelName.safeParse(name).success) {
    throw new UsageError(`"${name}" is not a tunnel name`, { hint: 'innisfree status lists the tunnels on this host' });
  }
  const paths = tunnelPaths(stateRoot(ctx.env), name);
  const holder = await readLockHolder(paths.lock);
  const notRunning = new NotRunningError(
    `no innisfree up is running for tunnel "${name}", so there is nothing to reload`,
    {
      hint: `start it with innisfree up --name ${name} (it reads the new configuration at start)`,
    },
  );
  if (!holder || holder.pid === 0 || !isHolderAlive(holder) || !holder.command.startsWith('innisfree up'))
    throw notRunning;
  if (holder.hostname !== hostname()) {
    throw new NotRunningError(`tunnel "${name}" runs on host ${holder.hostname}, not here`, {
      hint: `run innisfree reload ${name} on ${holder.hostname}`,
    });
  }
  const before = (await readStatus(paths))?.lastReload?.at;
  try {
    (options.kill ?? process.kill)(holder.pid, 'SIGHUP');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') throw notRunning;
    throw new EnvironmentError(
      `cannot signal pid ${holder.pid} (innisfree up of "${name}"): ${(error as Error).message}`,
      {
        hint: 'run innisfree reload as the user that runs up (root for a system service)',
      },
    );
  }
  const deadline = ctx.clock.now() + (options.timeoutMs ?? 600_000);
  for (;;) {
    await ctx.clock.sleep(POLL_MS, ctx.signal);
    const status = await readStatus(paths);
    const last = status?.lastReload;
    if (last && last.at !== before) {
      if (last.outcome === 'failed') {
        const kind = (
          last.kind && last.kind in ExitCode && last.kind !== 'ok' ? last.kind : 'internal'
        ) as ExitCodeName;
        throw new InnisfreeError(
          kind,
          `reload of tunnel "${name}" failed, the previous configuration keeps serving: ` +
            `${last.message ?? 'unknown reason'}`,
        );
      }
      if (options.json) return { output: `${JSON.stringify({ tunnel: name, ...last })}\n` };
      const changes = [...last.added.map((p) => `+${p}`), ...last.removed.map((p) => `-${p}`)];
      return {
        output:
          `tunnel ${name} reloaded: config ${last.configHash?.slice(0, 12) ?? 'none'}` +
          `${changes.length ? `, ports ${changes.join(' ')}` : ', no port changed'}\n`,
      };
    }
    if (!isHolderAlive(holder)) {
      throw new NotRunningError(`innisfree up of "${name}" (pid ${holder.pid}) exited before it reported the reload`, {
        hint: `see its log (journalctl -u innisfree-${name} for the service)`,
      });
    }
    if (ctx.clock.now() >= deadline) {
      throw new DeployError(
        `no reload outcome from innisfree up of "${name}" (pid ${holder.pid}) within ` +
          `${Math.round((options.timeoutMs ?? 600_000) / 1000)} s`,
        {
          hint: `innisfree status ${name} shows the last reload's outcome once it is there`,
        },
      );
    }
  }
}
