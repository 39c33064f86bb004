// Runs every *.test.ts under test/ (or those whose path contains one of the arguments) with uvu, one process.
// Usage: node --import tsx test/run.ts [filter ...]
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from 'uvu/run';

const root = fileURLToPath(new URL('.', import.meta.url));
const filters = process.argv.slice(2);

function collect(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((entry) => {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) return entry === 'fixtures' || entry === 'bench' ? [] : collect(path);
      return entry.endsWith('.test.ts') ? [path] : [];
    });
}

// Fast unit tests first, then the Nix contract tests, then the end-to-end tests that build network namespaces.
const order = ['unit', 'nix', 'e2e'];
const files = collect(root)
  .filter((file) => filters.length === 0 || filters.some((f) => relative(root, file).includes(f)))
  .sort((a, b) => {
    const rank = (f: string) => {
      const index = order.indexOf(relative(root, f).split('/')[0]!);
      return index === -1 ? order.length : index;
    };
    return rank(a) - rank(b) || a.localeCompare(b);
  });

if (files.length === 0) {
  console.error(`no test files match ${filters.join(', ')}`);
  process.exit(1);
}

await run(files.map((file) => ({ name: relative(root, file), file })));

// Everything a test starts must be stopped by it; if something still holds the event loop, say so and exit.
setTimeout(() => {
  const resources = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
  console.error(`warning: resources were still active after the tests finished: ${resources.join(', ')}`);
  process.exit(process.exitCode ?? 0);
}, 2000).unref();
