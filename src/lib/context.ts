// The narrow set of effects core code may use. Commands receive a Context (or a Pick of it); tests pass fakes,
// because uvu has no module mocking.
import { setTimeout as delay } from 'node:timers/promises';
import type { Emit } from './events.js';
import type { ReloadRequests } from './reload-requests.js';

export interface ExecOptions {
  /** Written to the child's stdin: the only way secrets reach a child process (never argv). */
  input?: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
  /** When false, a non-zero exit resolves instead of rejecting. Default true. */
  reject?: boolean;
  signal?: AbortSignal;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export type Exec = (file: string, args: readonly string[], options?: ExecOptions) => Promise<ExecResult>;

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export type Env = Readonly<Record<string, string | undefined>>;

export interface Context {
  exec: Exec;
  clock: Clock;
  emit: Emit;
  env: Env;
  /** Aborted when the user interrupts (SIGINT/SIGTERM). */
  signal: AbortSignal;
  /** SIGHUP for a long-running command: a request to re-read its sources and apply them. */
  reloads?: ReloadRequests;
}

export class ExecFailure extends Error {
  constructor(
    readonly file: string,
    readonly args: readonly string[],
    readonly result: ExecResult,
  ) {
    const detail = (result.stderr || result.stdout).trim().split('\n').slice(-3).join('; ');
    super(`${file} ${args.join(' ')} exited with ${result.exitCode}${detail ? `: ${detail}` : ''}`);
    this.name = 'ExecFailure';
  }
}

export const systemExec: Exec = async (file, args, options = {}) => {
  // Loaded on first use: execa adds ~13 MB to a process, and long-running commands like `proxy` never exec.
  const { execa } = await import('execa');
  const child = await execa(file, [...args], {
    input: options.input,
    env: options.env,
    extendEnv: true,
    cwd: options.cwd,
    timeout: options.timeoutMs,
    cancelSignal: options.signal,
    reject: false,
    stripFinalNewline: false,
    encoding: 'utf8',
  });
  // A missing binary becomes a clear message instead of an ENOENT stack.
  if (child.failed && child.exitCode === undefined) {
    const reason = child.code === 'ENOENT' ? `${file}: command not found` : child.shortMessage;
    const error = new Error(reason);
    (error as NodeJS.ErrnoException).code = child.code;
    throw error;
  }
  const result: ExecResult = {
    stdout: String(child.stdout ?? ''),
    stderr: String(child.stderr ?? ''),
    exitCode: child.exitCode ?? 1,
  };
  if (options.reject !== false && result.exitCode !== 0) throw new ExecFailure(file, args, result);
  return result;
};

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => delay(ms, undefined, signal ? { signal } : undefined),
};
