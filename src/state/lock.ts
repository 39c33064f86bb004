// The per-tunnel lock: refuses a second live `up` for the same name and recovers from a lock left behind by a
// process that was killed. The holder is identified by pid plus the process start time, so a recycled pid does
// not keep a stale lock alive.
import { hostname } from 'node:os';
import { open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readFileSync } from 'node:fs';
import { BusyError } from '../lib/errors.js';
import { fsFailure } from '../lib/fs-errors.js';
import { ensureDir } from './files.js';

export interface LockHolder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot; null where /proc is unavailable. */
  startTime: string | null;
  hostname: string;
  command: string;
  since: string;
}

export interface Lock {
  path: string;
  holder: LockHolder;
  release(): Promise<void>;
}

export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses; fields after the last ")" are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

export function isHolderAlive(holder: LockHolder): boolean {
  if (holder.hostname !== hostname()) return true; // cannot check another machine; be safe
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const start = processStartTime(holder.pid);
  return holder.startTime === null || start === null || start === holder.startTime;
}

export async function readLockHolder(path: string): Promise<LockHolder | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockHolder;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // A torn or foreign file: treat as stale, it cannot name a live holder.
    return { pid: 0, startTime: null, hostname: hostname(), command: '?', since: '' };
  }
}

/** Takes the lock or throws BusyError naming the live holder. */
export async function acquireLock(path: string, what: string, command: string, now: Date = new Date()): Promise<Lock> {
  await ensureDir(dirname(path));
  const holder: LockHolder = {
    pid: process.pid,
    startTime: processStartTime(process.pid),
    hostname: hostname(),
    command,
    since: now.toISOString(),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(holder)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      return {
        path,
        holder,
        release: async () => {
          const current = await readLockHolder(path);
          if (current && current.pid === holder.pid && current.since === holder.since)
            await unlink(path).catch(() => {});
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw fsFailure(error, path, 'create');
    }
    const existing = await readLockHolder(path);
    if (existing && existing.pid !== 0 && isHolderAlive(existing)) {
      throw new BusyError(
        `${what} is already in use by pid ${existing.pid} (${existing.command}, since ${existing.since})`,
        {
          hint: `stop that process first (kill ${existing.pid}), or pick another --name`,
        },
      );
    }
    // Stale: its holder died without releasing it. What cannot be removed (a directory in its place) is said as such.
    await unlink(path).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fsFailure(error, path, 'write');
    });
  }
  throw new BusyError(`could not take the lock ${path}`, { hint: 'another innisfree process is starting; try again' });
}
