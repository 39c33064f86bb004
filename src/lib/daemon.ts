// Long-lived child processes (wireguard-go, and for the local provider sshd or nginx): started in the foreground so
// they stay our children, their output passed on line by line, and — where util-linux's setpriv is available — tied
// to our life with a parent-death signal, so a crash of innisfree (even SIGKILL) does not leave them running.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Daemon {
  pid: number;
  /** Resolves when the process has exited (never rejects). */
  exited: Promise<DaemonExit>;
  /** True once the process has exited. */
  readonly done: boolean;
  /** The last lines of its output, for error messages. */
  tail(): string[];
  /** Sends signal, waits up to timeoutMs, then SIGKILL; resolves once it is gone. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<DaemonExit>;
}

export interface DaemonOptions {
  env?: Record<string, string | undefined>;
  /** Called for every line the daemon writes to stdout or stderr. */
  onLine?: (line: string) => void;
  /** Signal the daemon receives when this process dies (needs setpriv); default SIGTERM. null: none. */
  parentDeathSignal?: NodeJS.Signals | null;
}

export type SpawnDaemon = (file: string, args: readonly string[], options?: DaemonOptions) => Daemon;

const TAIL_LINES = 20;

let setprivChecked: boolean | undefined;

function hasSetpriv(): boolean {
  setprivChecked ??= spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).status === 0;
  return setprivChecked;
}

export const spawnDaemon: SpawnDaemon = (file, args, options = {}) => {
  const deathSignal = options.parentDeathSignal === undefined ? 'SIGTERM' : options.parentDeathSignal;
  // setpriv sets PR_SET_PDEATHSIG and execs the command, so the pid stays the daemon's own.
  const [command, argv] =
    deathSignal && hasSetpriv()
      ? ['setpriv', ['--pdeathsig', deathSignal.replace(/^SIG/, ''), '--', file, ...args]]
      : [file, [...args]];
  const child = spawn(command, argv, {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  // 'close': the output streams are drained too, so tail() has the last words.
  const exit = exitOf(child, file, lines, 'close');
  const onChunk = splitLines((line) => {
    lines.push(line);
    if (lines.length > TAIL_LINES) lines.shift();
    options.onLine?.(line);
  });
  child.stdout.on('data', onChunk.stdout);
  child.stderr.on('data', onChunk.stderr);
  return {
    pid: child.pid ?? -1,
    exited: exit.exited,
    get done() {
      return exit.done();
    },
    tail: () => [...lines],
    stop: stopperOf(child, exit),
  };
};

/**
 * A spawner for daemons that outlive this process (the local edge agent exits after each activation while
 * wireguard-go keeps serving): detached, no parent-death signal, output appended to logFile, which tail() reads.
 * It does not keep this process alive: its exit is seen while something else does (wireguardUp's readiness wait).
 */
export function spawnDetachedDaemon(logFile: string): SpawnDaemon {
  return (file, args, options = {}) => {
    const lines: string[] = [];
    const logFd = openSync(logFile, 'a', 0o600);
    const child = (() => {
      try {
        return spawn(file, [...args], {
          detached: true,
          env: { ...process.env, ...options.env },
          stdio: ['ignore', logFd, logFd],
        });
      } finally {
        closeSync(logFd);
      }
    })();
    // 'exit': its output goes to the log file, there are no streams of ours to drain.
    const exit = exitOf(child, file, lines, 'exit');
    child.unref();
    return {
      pid: child.pid ?? -1,
      exited: exit.exited,
      get done() {
        return exit.done();
      },
      tail: () => [...logTail(logFile), ...lines],
      // Held again until it is gone: nothing else may keep this process alive meanwhile.
      stop: stopperOf(child, exit, () => child.ref()),
    };
  };
}

interface ChildExit {
  /** Resolves when the process has exited; never rejects. */
  exited: Promise<DaemonExit>;
  done(): boolean;
}

/** A spawn failure (command not found) becomes a line of the tail and an exit without code or signal. */
function exitOf(child: ChildProcess, file: string, lines: string[], event: 'close' | 'exit'): ChildExit {
  let done = false;
  const exited = new Promise<DaemonExit>((resolve) => {
    child.once('error', (error) => {
      done = true;
      const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'command not found' : error.message;
      lines.push(`${file}: ${why}`);
      resolve({ code: null, signal: null });
    });
    child.once(event, (code: number | null, signal: NodeJS.Signals | null) => {
      done = true;
      resolve({ code, signal });
    });
  });
  return { exited, done: () => done };
}

/** Daemon.stop: the signal, SIGKILL after timeoutMs, resolved once the process is gone. */
function stopperOf(child: ChildProcess, exit: ChildExit, beforeKill?: () => void): Daemon['stop'] {
  return async (signal = 'SIGTERM', timeoutMs = 3_000) => {
    if (!exit.done()) {
      beforeKill?.();
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exit.exited;
      clearTimeout(timer);
    }
    return exit.exited;
  };
}

function logTail(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).slice(-TAIL_LINES);
  } catch {
    return [];
  }
}

function splitLines(onLine: (line: string) => void): {
  stdout: (data: Buffer) => void;
  stderr: (data: Buffer) => void;
} {
  const make = (): ((data: Buffer) => void) => {
    let pending = '';
    return (data) => {
      pending += data.toString();
      let index: number;
      while ((index = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, index).trimEnd();
        pending = pending.slice(index + 1);
        if (line !== '') onLine(line);
      }
      if (pending.length > 8192) {
        onLine(pending);
        pending = '';
      }
    };
  };
  return { stdout: make(), stderr: make() };
}
