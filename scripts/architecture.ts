// Reads the import graph of src/ from the code and holds it against the layer list in docs/architecture.md. `npm run
// architecture` prints the picture (Mermaid) of the import graph, `-- --write` puts it into docs/architecture.md, `--
// --check` prints every cycle and upward import and exits 1 when there is one. test/unit/architecture.test.ts runs the
// same check.
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Layer {
  rank: number;
  name: string;
  /** Paths relative to the repository root: a folder ends with '/', else a file. */
  paths: string[];
}

export interface ImportEdge {
  from: string;
  to: string;
}

// `import … from 'x'` and `export … from 'x'`, `import('x')`, and the bare `import 'x'`.
const IMPORT = new RegExp(
  [
    /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]/.source,
    /import\s*\(\s*['"]([^'"]+)['"]\s*\)/.source,
    /^\s*import\s+['"]([^'"]+)['"]/.source,
  ].join('|'),
  'gm',
);

/** The layer table of docs/architecture.md: rows `| rank | name | `path` `path` | ... |`. */
export function parseLayers(markdown: string): Layer[] {
  const layers: Layer[] = [];
  for (const line of markdown.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    if (cells.length < 4 || !/^\d+$/.test(cells[1] ?? '')) continue;
    const paths = [...(cells[3] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    layers.push({ rank: Number(cells[1]), name: cells[2]!, paths });
  }
  return layers;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((entry) => {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) return sourceFiles(path);
      return entry.endsWith('.ts') && !entry.endsWith('.d.ts') ? [path] : [];
    });
}

/** Strips comments so an import named in prose draws no arrow (strings are kept: specifiers live in them). */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

/** The TypeScript files of src/ (declarations aside), relative to the repository root, sorted. */
export function sourceFilesOf(root: string): string[] {
  return sourceFiles(join(root, 'src')).map((file) => relative(root, file));
}

/** Every import of a file under src/ that names another file under src/, relative to the repository root. */
export function readImports(root: string): { files: string[]; edges: ImportEdge[] } {
  const files = sourceFilesOf(root);
  const edges: ImportEdge[] = [];
  for (const file of files) {
    const text = withoutComments(readFileSync(join(root, file), 'utf8'));
    for (const match of text.matchAll(IMPORT)) {
      const specifier = match[1] ?? match[2] ?? match[3];
      if (!specifier || !specifier.startsWith('.')) continue;
      const target = resolve(root, dirname(file), specifier).replace(/\.js$/, '.ts');
      const to = relative(root, target);
      if (!existsSync(target) || to === file) continue;
      if (!edges.some((edge) => edge.from === file && edge.to === to)) edges.push({ from: file, to });
    }
  }
  return { files, edges };
}

/** The layer a file belongs to: the one whose path matches it most closely. */
export function layerOf(file: string, layers: Layer[]): Layer | undefined {
  let best: { layer: Layer; length: number } | undefined;
  for (const layer of layers) {
    for (const path of layer.paths) {
      const matches = path.endsWith('/') ? file.startsWith(path) : file === path;
      if (matches && (!best || path.length > best.length)) best = { layer, length: path.length };
    }
  }
  return best?.layer;
}

/** Import cycles between files (strongly connected components of more than one file), each sorted. */
export function findCycles(files: string[], edges: ImportEdge[]): string[][] {
  const next = new Map<string, string[]>(files.map((file) => [file, []]));
  for (const edge of edges) next.get(edge.from)?.push(edge.to);
  // Tarjan's algorithm, iterative enough for a tree of a few hundred files.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (file: string): void => {
    index.set(file, counter);
    low.set(file, counter);
    counter += 1;
    stack.push(file);
    onStack.add(file);
    for (const to of next.get(file) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(file, Math.min(low.get(file)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(file, Math.min(low.get(file)!, index.get(to)!));
      }
    }
    if (low.get(file) === index.get(file)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== file);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const file of files) if (!index.has(file)) visit(file);
  return cycles.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

export interface Violations {
  unplaced: string[];
  upward: Array<ImportEdge & { fromLayer: string; toLayer: string }>;
  cycles: string[][];
}

export function checkArchitecture(root: string): Violations {
  const layers = parseLayers(readFileSync(join(root, 'docs/architecture.md'), 'utf8'));
  const { files, edges } = readImports(root);
  const unplaced = files.filter((file) => !layerOf(file, layers));
  const upward: Violations['upward'] = [];
  for (const edge of edges) {
    const from = layerOf(edge.from, layers);
    const to = layerOf(edge.to, layers);
    if (from && to && to.rank > from.rank) upward.push({ ...edge, fromLayer: from.name, toLayer: to.name });
  }
  return { unplaced, upward, cycles: findCycles(files, edges) };
}

/** A file's room in the picture: its folder under src/ (providers split by adapter), or the file itself. */
function roomOf(file: string): string {
  const parts = file.replace(/^src\//, '').split('/');
  if (parts.length === 1) return parts[0]!.replace(/\.ts$/, '');
  if (parts[0] === 'providers' && parts.length > 2) return `${parts[0]}/${parts[1]}`;
  return parts[0]!;
}

/** The picture: one box per folder inside its layer, one arrow per pair of folders an import joins (with a count). */
export function mermaidGraph(root: string): string {
  const layers = parseLayers(readFileSync(join(root, 'docs/architecture.md'), 'utf8')).sort((a, b) => b.rank - a.rank);
  const { files, edges } = readImports(root);
  const id = (room: string) => room.replace(/[^a-z0-9]/gi, '_');
  const counts = new Map<string, number>();
  for (const edge of edges) {
    const from = roomOf(edge.from);
    const to = roomOf(edge.to);
    if (from === to) continue;
    const key = `${id(from)} --> ${id(to)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const lines = ['```mermaid', 'flowchart TD'];
  for (const layer of layers) {
    const rooms = [...new Set(files.filter((file) => layerOf(file, layers) === layer).map(roomOf))].sort();
    lines.push(`  subgraph layer${layer.rank}["${layer.rank} ${layer.name}"]`);
    for (const room of rooms) lines.push(`    ${id(room)}["${room}"]`);
    lines.push('  end');
  }
  for (const [key, count] of [...counts].sort()) lines.push(`  ${key.replace(' --> ', ` -- ${count} --> `)}`);
  lines.push('```');
  return lines.join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  if (process.argv.includes('--check')) {
    const { unplaced, upward, cycles } = checkArchitecture(root);
    for (const file of unplaced) console.log(`not in any layer: ${file}`);
    for (const edge of upward) console.log(`upward: ${edge.from} (${edge.fromLayer}) -> ${edge.to} (${edge.toLayer})`);
    for (const cycle of cycles) console.log(`cycle: ${cycle.join(' <-> ')}`);
    process.exitCode = unplaced.length + upward.length + cycles.length > 0 ? 1 : 0;
  } else if (process.argv.includes('--write')) {
    const doc = join(root, 'docs/architecture.md');
    const text = readFileSync(doc, 'utf8');
    const graph = `<!-- graph:begin -->\n${mermaidGraph(root)}\n<!-- graph:end -->`;
    writeFileSync(doc, text.replace(/<!-- graph:begin -->[\s\S]*<!-- graph:end -->/, graph));
  } else {
    console.log(mermaidGraph(root));
  }
}
