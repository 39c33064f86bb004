// No function written twice, no two files of the same name: every top-level function of src/ (a declaration, or a
// const holding an arrow or function expression) has a name no other file of src/ uses, and no two files share a
// basename, so a helper is found and reused instead of copied (safeJson, endpointOf and probeTcp once stood twice).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import ts from 'typescript';
import { sourceFilesOf } from '../../scripts/architecture.js';
import { repoRoot } from '../helpers/cli.js';

/** A name two files may both define, and why. Keep it short; every entry needs its reason. */
const SHARED_FUNCTION_NAMES: Readonly<Record<string, string>> = {};

/** Basenames more than one file may have: a folder's entry point, and a command named after what it runs. */
function basenameMayRepeat(path: string): boolean {
  return basename(path) === 'index.ts' || path.startsWith('src/commands/');
}

/** The names of a file's top-level functions: declarations, and consts holding an arrow or function expression. */
function topLevelFunctions(path: string, text: string): string[] {
  const file = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const names: string[] = [];
  for (const statement of file.statements) {
    if (ts.isFunctionDeclaration(statement) && statement.name && statement.body) names.push(statement.name.text);
    if (!ts.isVariableStatement(statement)) continue;
    for (const declaration of statement.declarationList.declarations) {
      const value = declaration.initializer;
      if (ts.isIdentifier(declaration.name) && value && (ts.isArrowFunction(value) || ts.isFunctionExpression(value))) {
        names.push(declaration.name.text);
      }
    }
  }
  return names;
}

interface Twins {
  /** "name: a.ts, b.ts" for each function name defined in more than one file. */
  functions: string[];
  /** "name: a.ts, b.ts" for each basename more than one file has. */
  basenames: string[];
  /** How many functions were read (so an empty result is not an empty scan). */
  read: number;
}

function findTwins(root: string, allowed: Readonly<Record<string, string>> = {}): Twins {
  const files = sourceFilesOf(root);
  const definedIn = new Map<string, Set<string>>();
  let read = 0;
  for (const path of files) {
    for (const name of topLevelFunctions(path, readFileSync(join(root, path), 'utf8'))) {
      read++;
      definedIn.set(name, (definedIn.get(name) ?? new Set()).add(path));
    }
  }
  const functions = [...definedIn]
    .filter(([name, paths]) => paths.size > 1 && !(name in allowed))
    .map(([name, paths]) => `${name}: ${[...paths].join(', ')}`);
  const byBasename = new Map<string, string[]>();
  for (const path of files.filter((f) => !basenameMayRepeat(f))) {
    byBasename.set(basename(path), [...(byBasename.get(basename(path)) ?? []), path]);
  }
  const basenames = [...byBasename]
    .filter(([, paths]) => paths.length > 1)
    .map(([name, paths]) => `${name}: ${paths.join(', ')}`);
  return { functions, basenames, read };
}

test('src/ defines each top-level function once and names each file differently', () => {
  const twins = findTwins(repoRoot, SHARED_FUNCTION_NAMES);
  assert.ok(twins.read > 300, `read only ${twins.read} functions`);
  assert.equal(twins.functions, [], 'functions defined in more than one file (merge them, or rename one)');
  assert.equal(twins.basenames, [], 'files of the same name (name each for what it is)');
});

test('every allowed shared name is still shared, so the list does not outlive its reason', () => {
  const twins = findTwins(repoRoot);
  for (const name of Object.keys(SHARED_FUNCTION_NAMES)) {
    assert.ok(
      twins.functions.some((line) => line.startsWith(`${name}: `)),
      `${name} is defined once now: drop it from SHARED_FUNCTION_NAMES`,
    );
  }
});

test('the old twins are found: the same helper in two files, and two files of the same name', () => {
  const root = mkdtempSync(join(tmpdir(), 'innisfree-twins-'));
  try {
    const write = (path: string, text: string) => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    const safeJson = 'function safeJson(text: string): unknown {\n  return JSON.parse(text);\n}\n';
    write('src/commands/deploy.ts', `export function run(): void {}\n${safeJson}`);
    write('src/state/tunnel-record.ts', safeJson);
    write('src/edge/ssh.ts', 'export const endpointOf = (host: string, port: number) => `${host}:${port}`;\n');
    write('src/run-tunnel.ts', 'const endpointOf = function (h: string) { return h; };\n');
    write('src/lib/render.ts', 'export declare function overload(): void;\n');
    write('src/providers/local/render.ts', 'export function overload(): void {}\n');
    write('src/commands/ssh.ts', 'export {};\n');
    write('src/providers/index.ts', 'export {};\n');
    write('src/home/forwarder/index.ts', 'export {};\n');
    const twins = findTwins(root);
    assert.equal(twins.functions, [
      'safeJson: src/commands/deploy.ts, src/state/tunnel-record.ts',
      'endpointOf: src/edge/ssh.ts, src/run-tunnel.ts',
    ]);
    // A command's file may share the name of what it runs (commands/ssh.ts, edge/ssh.ts); index.ts may repeat.
    assert.equal(twins.basenames, ['render.ts: src/lib/render.ts, src/providers/local/render.ts']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
