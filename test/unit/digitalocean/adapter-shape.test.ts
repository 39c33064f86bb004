// The DigitalOcean adapter is a thin class over modules that each do one job (issue 12): every method of
// DigitalOceanProvider hands its request to one function, and what reserved IPs and reserved IPv6 share (the
// assign and unassign actions) is written once, for both families.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import ts from 'typescript';
import { repoRoot } from '../../helpers/cli.js';

const folder = join(repoRoot, 'src/providers/digitalocean');

/** The methods of `className` whose body is more than one `return` of a call. */
function methodsDoingWork(text: string, className: string): string[] {
  const file = ts.createSourceFile('adapter.ts', text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = file.statements.find(
    (s): s is ts.ClassDeclaration => ts.isClassDeclaration(s) && s.name?.text === className,
  );
  assert.ok(found, `class ${className}`);
  const busy: string[] = [];
  for (const member of found.members) {
    if (!ts.isMethodDeclaration(member) || !member.body) continue;
    const [only, ...rest] = member.body.statements;
    const delegates =
      rest.length === 0 &&
      only &&
      ts.isReturnStatement(only) &&
      !!only.expression &&
      ts.isCallExpression(only.expression);
    if (!delegates) busy.push(member.name.getText(file));
  }
  return busy;
}

test('every method of DigitalOceanProvider hands its work to a module', () => {
  const text = readFileSync(join(folder, 'digitalocean-provider.ts'), 'utf8');
  assert.equal(methodsDoingWork(text, 'DigitalOceanProvider'), []);
  // (The check itself finds a method that does the work in place.)
  const old = 'class P { async findEdge(t: string) { const d = await list(t); return d[0]; } ok() { return f(); } }';
  assert.equal(methodsDoingWork(old, 'P'), ['findEdge']);
});

test('the reserved-address actions are posted in one file, for IPv4 and IPv6 alike', () => {
  const posting = readdirSync(folder)
    .filter((name) => name.endsWith('.ts'))
    .filter((name) => /type: 'unassign'|type: 'assign'/.test(readFileSync(join(folder, name), 'utf8')));
  assert.equal(posting, ['reserved-address.ts']);
});

test.run();
