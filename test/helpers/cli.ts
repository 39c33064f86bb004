// Runs the built CLI (dist/src/cli.js) as a user would, with an isolated state and config directory.
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

// This file runs from test/helpers (tsx) or, compiled, from dist/test/helpers (the VM bed's guest tests).
const fromDist = fileURLToPath(import.meta.url).includes('/dist/test/');
export const repoRoot = fileURLToPath(new URL(fromDist ? '../../../' : '../../', import.meta.url));
export const cliPath = fileURLToPath(new URL('dist/src/cli.js', pathToFileURL(repoRoot)));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
  input?: string,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** The compiled form of a repository file, e.g. built('test/helpers/traffic.ts') → …/dist/test/helpers/traffic.js. */
export function built(path: string): string {
  return fileURLToPath(new URL(`dist/${path.replace(/\.ts$/, '.js')}`, pathToFileURL(repoRoot)));
}
