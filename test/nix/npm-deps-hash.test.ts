// The npm runtime dependencies' fixed-output hash (nix/npm-deps.hash) is reproducible: nix/npm-deps-hash.sh, which
// installs them by the same recipe the derivation uses (nix/npm-deps-install.sh), prints the committed hash twice
// in a row from clean directories. Needs the npm registry; says it skipped when the registry cannot be reached.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { commandExists, repoRoot, run, skipped } from '../helpers/nix.js';
import { makeTempDir } from '../helpers/tmp.js';

const committed = readFileSync(join(repoRoot, 'nix', 'npm-deps.hash'), 'utf8').trim();
const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

let readiness: string | undefined | null = null;
function notReady(): string | undefined {
  if (readiness !== null) return readiness;
  if (!commandExists('nix')) readiness = 'nix is not on PATH';
  else if (!commandExists('npm')) readiness = 'npm is not on PATH';
  else if (run('npm', ['ping', '--loglevel=silent'], { timeout: 20_000 }).status !== 0)
    readiness = 'the npm registry cannot be reached';
  else readiness = undefined;
  return readiness;
}

const S = suite('npm dependencies: fixed-output hash');

S('the derivation and the script share one recipe and the committed hash', () => {
  const derivation = readFileSync(join(repoRoot, 'nix', 'npm-deps.nix'), 'utf8');
  assert.match(derivation, 'bash ${./npm-deps-install.sh} . "$out"');
  assert.match(derivation, 'outputHash = lib.fileContents ./npm-deps.hash;');
  assert.match(derivation, 'outputHashMode = "recursive";');
  assert.match(readFileSync(join(repoRoot, 'nix', 'npm-deps-hash.sh'), 'utf8'), 'nix/npm-deps-install.sh');
  assert.match(committed, /^sha256-[A-Za-z0-9+/]{43}=$/);
});

S('installs the runtime dependencies only: no devDependencies, no npm bookkeeping', () => {
  const why = notReady();
  if (why) return skipped('npm dependency hash', why);
  const tmp = makeTempDir('innisfree-npmdeps-');
  try {
    const result = run('bash', [join(repoRoot, 'nix', 'npm-deps-install.sh'), repoRoot, join(tmp.path, 'out')], {
      timeout: 300_000,
    });
    assert.is(result.status, 0, result.stderr);
    const modules = join(tmp.path, 'out', 'node_modules');
    for (const dependency of Object.keys(packageJson.dependencies)) {
      assert.ok(existsSync(join(modules, dependency, 'package.json')), `${dependency} is installed`);
    }
    for (const dependency of Object.keys(packageJson.devDependencies)) {
      assert.not.ok(existsSync(join(modules, dependency)), `${dependency} (dev) stays out`);
    }
    assert.not.ok(readdirSync(modules).includes('.package-lock.json'));
    assert.not.ok(readdirSync(modules).includes('.bin'));
  } finally {
    tmp.remove();
  }
});

S('nix/npm-deps-hash.sh reproduces the committed hash twice from clean directories', () => {
  const why = notReady();
  if (why) return skipped('npm dependency hash', why);
  for (let round = 1; round <= 2; round++) {
    const tmp = makeTempDir('innisfree-npmhash-');
    try {
      const result = run('bash', [join(repoRoot, 'nix', 'npm-deps-hash.sh'), '--check'], {
        env: { ...process.env, TMPDIR: tmp.path },
        timeout: 300_000,
      });
      assert.is(result.status, 0, `round ${round}: ${result.stderr}`);
      assert.is(result.stdout.trim(), committed, `round ${round}`);
      assert.equal(readdirSync(tmp.path), [], `round ${round}: the script removed its work directory`);
    } finally {
      tmp.remove();
    }
  }
});

S.run();
