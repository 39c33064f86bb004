// The code style is checked, not hoped for: Prettier (print width 120) and ESLint (recommended rules, no line over
// 120 characters) pass on the whole repository. `npm run format` fixes what Prettier can; the rest ESLint names.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { repoRoot } from '../helpers/cli.js';

const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  devDependencies: Record<string, string>;
};

function runBin(name: string, args: string[]): { status: number | null; output: string } {
  const result = spawnSync(join(repoRoot, 'node_modules', '.bin', name), args, {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 120_000,
  });
  // A missing binary or a timeout leaves no status and no output; say which instead of "null".
  if (result.error) return { status: null, output: `${name} did not run: ${result.error.message}` };
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

// A tool installed by hand but not declared works on one machine and is missing on a clean clone (CI failed so).
test('the style tools and the packages eslint.config.js imports are declared devDependencies', () => {
  const config = readFileSync(join(repoRoot, 'eslint.config.js'), 'utf8');
  const imported = [...config.matchAll(/^import .* from '([^']+)';$/gm)].map((match) => match[1] as string);
  assert.ok(imported.length >= 2, 'eslint.config.js imports its rule sets');
  for (const name of ['prettier', 'eslint', ...imported]) {
    assert.ok(packageJson.devDependencies[name], `${name} is in package.json devDependencies`);
  }
});

test('Prettier finds every file formatted', () => {
  const { status, output } = runBin('prettier', ['--check', '--log-level', 'warn', '.']);
  assert.is(status, 0, `prettier --check failed (npm run format fixes it):\n${output}`);
});

test('ESLint finds no problem and no line over 120 characters', () => {
  const { status, output } = runBin('eslint', ['--max-warnings', '0', '.']);
  assert.is(status, 0, `eslint failed:\n${output}`);
});

test.run();
