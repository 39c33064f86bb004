// Running Nix and the other system tools the Nix tests need, and saying clearly when a test cannot run.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './cli.js';

export { repoRoot };

export function commandExists(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

const announced = new Set<string>();

/** Says (once per process and subject) why tests did not run; each such test then returns without asserting. */
export function skipped(what: string, why: string): void {
  const line = `SKIPPED: ${what}: ${why}`;
  if (announced.has(line)) return;
  announced.add(line);
  console.log(`\n  ${line}`);
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function run(command: string, args: readonly string[], options: SpawnSyncOptions = {}): RunResult {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  if (result.error) throw result.error;
  return { status: result.status, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** `nix-instantiate --eval --strict --json FILE ARGS...`, parsed; throws with Nix's message on failure. */
export function nixEvalFile<T = unknown>(file: string, args: readonly string[] = []): T {
  const result = run('nix-instantiate', ['--eval', '--strict', '--json', file, ...args], { cwd: repoRoot });
  if (result.status !== 0) throw new Error(`nix-instantiate ${file} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** Same for an expression; the repository root is the working directory, so `./nix/lib` works. */
export function nixEvalExpr<T = unknown>(expr: string): T {
  const result = run('nix-instantiate', ['--eval', '--strict', '--json', '--expr', expr], { cwd: repoRoot });
  if (result.status !== 0) throw new Error(`nix-instantiate --expr failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** Like nixEvalExpr but returns Nix's error text instead of throwing (for tests of refusals). */
export function nixEvalFailure(file: string, args: readonly string[]): string | undefined {
  const result = run('nix-instantiate', ['--eval', '--strict', '--json', file, ...args], { cwd: repoRoot });
  return result.status === 0 ? undefined : result.stderr;
}

export const hasNix = commandExists('nix-instantiate');

/**
 * nixpkgs' lib for the module evaluation tests: NIXPKGS_LIB may point at a nixpkgs (or nixpkgs.lib) checkout or at
 * its lib/ directory. Returns the lib/ directory, or undefined with the reason.
 */
export function nixpkgsLib(): { path?: string; reason: string } {
  const value = process.env.NIXPKGS_LIB;
  if (!value) return { reason: 'NIXPKGS_LIB is not set (point it at a nixpkgs or nixpkgs.lib checkout to run it)' };
  for (const candidate of [value, join(value, 'lib')]) {
    if (existsSync(join(candidate, 'modules.nix')) && existsSync(join(candidate, 'default.nix'))) {
      return { path: candidate, reason: '' };
    }
  }
  return { reason: `NIXPKGS_LIB=${value} holds no nixpkgs lib (no modules.nix in it or in its lib/)` };
}

/**
 * Both renderings of an EdgeConfig straight from nix/lib, whatever its forwarding mode (render-edge.nix renders
 * only the selected one). The config goes through a temporary file: argv is too small for thousands of ports.
 */
export function renderBoth(edge: unknown): { nginxStream: string; nftables: string } {
  const dir = mkdtempSync(join(tmpdir(), 'innisfree-render-'));
  try {
    const file = join(dir, 'edge.json');
    writeFileSync(file, JSON.stringify(edge));
    return nixEvalExpr(
      `let l = import ./nix/lib; e = builtins.fromJSON (builtins.readFile ${file}); in { nginxStream = ` +
        `l.nginxStream e; nftables = (l.nftables e).content; }`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
