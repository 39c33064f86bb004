// Running a long child process whose output is progress (deploy-rs, nixos-anywhere): lines are handed over as they
// arrive instead of being collected until exit. Core code takes a StreamExec, so tests pass a fake.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { createLineSplitter } from './lines.js';

export interface StreamExecOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  signal?: AbortSignal;
  onStdoutLine?: (line: string) => void;
  onStderrLine?: (line: string) => void;
}

export interface StreamExecResult {
  /** 128 + signal number when the child was killed by a signal. */
  exitCode: number;
}

export type StreamExec = (
  file: string,
  args: readonly string[],
  options?: StreamExecOptions,
) => Promise<StreamExecResult>;

/** Rejects with an ENOENT error when the program does not exist; never rejects for a non-zero exit. */
export const systemStreamExec: StreamExec = (file, args, options = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = createLineSplitter(options.onStdoutLine ?? (() => {}));
    const err = createLineSplitter(options.onStderrLine ?? (() => {}));
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    const onAbort = (): void => void child.kill('SIGTERM');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (error) => {
      options.signal?.removeEventListener('abort', onAbort);
      reject(error);
    });
    child.once('close', (code, signal) => {
      options.signal?.removeEventListener('abort', onAbort);
      out.flush();
      err.flush();
      resolve({ exitCode: code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0) });
    });
  });
