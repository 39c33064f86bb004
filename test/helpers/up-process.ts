// Runs `innisfree up --json` as a child process, the way a user or systemd does, and follows its event stream.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { cliPath } from './cli.js';

export interface UpEvent {
  type: string;
  [key: string]: unknown;
}

export interface UpProcess {
  child: ChildProcessWithoutNullStreams;
  events: UpEvent[];
  stderr(): string;
  /** Resolves with the ready event, or rejects when the process exits first or the timeout passes. */
  ready(timeoutMs?: number): Promise<UpEvent>;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function startUp(args: readonly string[], env: Record<string, string | undefined>): UpProcess {
  const child = spawn(process.execPath, [cliPath, 'up', '--json', ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end();
  const events: UpEvent[] = [];
  let stderr = '';
  let buffer = '';
  const listeners = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      try {
        events.push(JSON.parse(line) as UpEvent);
      } catch {
        events.push({ type: 'unparsed', line });
      }
      for (const listener of listeners) listener();
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    events,
    stderr: () => stderr,
    exited,
    ready: (timeoutMs = 120_000) =>
      new Promise((resolve, reject) => {
        const check = (): boolean => {
          const event = events.find((e) => e.type === 'ready');
          if (event) {
            cleanup();
            resolve(event);
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `up was not ready within ${timeoutMs} ms; stderr: ${stderr}; events: ${JSON.stringify(events.slice(-5))}`,
            ),
          );
        }, timeoutMs);
        const onExit = (code: number | null): void => {
          if (check()) return;
          cleanup();
          reject(
            new Error(
              `up exited with ${code} before it was ready; stderr: ${stderr}; events: ` +
                `${JSON.stringify(events.slice(-8))}`,
            ),
          );
        };
        const cleanup = (): void => {
          clearTimeout(timer);
          listeners.delete(listener);
          child.off('close', onExit);
        };
        const listener = (): void => void check();
        if (check()) return;
        listeners.add(listener);
        child.on('close', onExit);
      }),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
