// The code style is checked, not hoped for: Prettier (print width 120) and ESLint (recommended rules, no line over
// 120 characters) pass on the whole repository. `npm run format` fixes what Prettier can; the rest ESLint names.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { repoRoot } from '../helpers/cli.js';

function runBin(name: string, args: string[]): { status: number | null; output: string } {
  const result = spawnSync(join(repoRoot, 'node_modules', '.bin', name), args, {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test('Prettier finds every file formatted', () => {
  const { status, output } = runBin('prettier', ['--check', '--log-level', 'warn', '.']);
  assert.is(status, 0, `prettier --check failed (npm run format fixes it):\n${output}`);
});

test('ESLint finds no problem and no line over 120 characters', () => {
  const { status, output } = runBin('eslint', ['--max-warnings', '0', '.']);
  assert.is(status, 0, `eslint failed:\n${output}`);
});

test.run();
