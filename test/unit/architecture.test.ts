// Every import of src/ points down the layers of docs/architecture.md, and no files import each other in a circle.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkArchitecture, layerOf, parseLayers } from '../../scripts/architecture.js';
import { repoRoot } from '../helpers/cli.js';

test('src/ has no upward import, no cycle, and no file outside the layers', () => {
  const { unplaced, upward, cycles } = checkArchitecture(repoRoot);
  assert.equal(unplaced, [], 'files in no layer of docs/architecture.md');
  assert.equal(
    upward.map((edge) => `${edge.from} (${edge.fromLayer}) -> ${edge.to} (${edge.toLayer})`),
    [],
    'imports from a lower layer to a higher one',
  );
  assert.equal(cycles, [], 'import cycles');
});

test('the layer table is read from docs/architecture.md', () => {
  const layers = parseLayers(
    '| rank | layer | paths |\n| --- | --- | --- |\n| 1 | lib | `src/lib/` |\n| 2 | top | `src/top.ts` `src/x/` |\n',
  );
  assert.equal(
    layers.map((l) => [l.rank, l.name, l.paths]),
    [
      [1, 'lib', ['src/lib/']],
      [2, 'top', ['src/top.ts', 'src/x/']],
    ],
  );
  assert.is(layerOf('src/x/a.ts', layers)?.name, 'top');
  assert.is(layerOf('src/y.ts', layers), undefined);
});

test('an upward import, a cycle and an unplaced file are each found', () => {
  const root = mkdtempSync(join(tmpdir(), 'innisfree-architecture-'));
  try {
    const write = (path: string, text: string) => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    write('docs/architecture.md', '| 1 | lib | `src/lib/` |\n| 2 | cli | `src/cli.ts` `src/commands/` |\n');
    write('src/cli.ts', "import { a } from './commands/a.js';\n");
    write('src/commands/a.ts', "export { b } from './b.js';\nimport type { C } from '../cli.js';\n");
    write(
      'src/commands/b.ts',
      "// import { x } from '../lonely.js' is prose, not an import\nexport const b = () => import('../lib/u.js');\n",
    );
    write('src/lib/u.ts', "import { b } from '../commands/b.js';\n");
    write('src/lonely.ts', 'export {};\n');
    const { unplaced, upward, cycles } = checkArchitecture(root);
    assert.equal(unplaced, ['src/lonely.ts']);
    assert.equal(
      upward.map((edge) => `${edge.from}->${edge.to}`),
      ['src/lib/u.ts->src/commands/b.ts'],
    );
    assert.equal(cycles, [
      ['src/cli.ts', 'src/commands/a.ts'],
      ['src/commands/b.ts', 'src/lib/u.ts'],
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
