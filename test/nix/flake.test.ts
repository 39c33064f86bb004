// The flake as a whole: a real, internally consistent flake.lock that Nix accepts offline, every .nix file
// parsing, the shell scripts parsing, and (with NIXPKGS_LIB) lib.mkEdgeSystem / lib.mkDeploy and the VM tests
// wired as intended.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { planFixturesDir } from '../helpers/fixtures.js';
import { commandExists, hasNix, nixEvalExpr, nixpkgsLib, repoRoot, run, skipped } from '../helpers/nix.js';
import { makeTempDir } from '../helpers/tmp.js';

interface LockNode {
  inputs?: Record<string, string | string[]>;
  locked?: { type: string; owner: string; repo: string; rev: string; narHash: string; lastModified: number };
  original?: { type: string; owner: string; repo: string; ref?: string };
  flake?: boolean;
}
interface Lock {
  nodes: Record<string, LockNode>;
  root: string;
  version: number;
}

const lock = JSON.parse(readFileSync(join(repoRoot, 'flake.lock'), 'utf8')) as Lock;
const NIX_FLAKES = ['--extra-experimental-features', 'nix-command flakes'];

function files(dir: string, suffix: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    if (entry === 'node_modules' || entry === 'dist' || entry.startsWith('.')) return [];
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? files(path, suffix) : entry.endsWith(suffix) ? [path] : [];
  });
}

// ---
const lockSuite = suite('flake: flake.lock');

lockSuite('is a version 7 lock whose every node is pinned to a commit and a NAR hash', () => {
  assert.is(lock.version, 7);
  assert.is(lock.root, 'root');
  for (const [name, node] of Object.entries(lock.nodes)) {
    if (name === lock.root) continue;
    assert.ok(node.locked, `${name} is locked`);
    assert.is(node.locked!.type, 'github');
    assert.match(node.locked!.rev, /^[0-9a-f]{40}$/, `${name}: rev`);
    assert.match(node.locked!.narHash, /^sha256-[A-Za-z0-9+/]{43}=$/, `${name}: narHash`);
    assert.ok(
      Number.isInteger(node.locked!.lastModified) && node.locked!.lastModified > 1.6e9,
      `${name}: lastModified`,
    );
    assert.equal(
      { owner: node.original!.owner, repo: node.original!.repo },
      { owner: node.locked!.owner, repo: node.locked!.repo },
      `${name}: locked and original name the same repository`,
    );
  }
});

lockSuite('every input reference resolves, and deploy-rs and disko follow our nixpkgs', () => {
  for (const [name, node] of Object.entries(lock.nodes)) {
    for (const [input, target] of Object.entries(node.inputs ?? {})) {
      if (Array.isArray(target)) {
        assert.ok(
          lock.nodes[lock.nodes[lock.root]!.inputs![target[0]!] as string],
          `${name}.${input} follows ${target.join('/')}`,
        );
      } else {
        assert.ok(lock.nodes[target], `${name}.${input} → ${target} exists`);
      }
    }
  }
  const root = lock.nodes[lock.root]!.inputs!;
  assert.equal(Object.keys(root).sort(), ['deploy-rs', 'disko', 'nixpkgs']);
  assert.equal(lock.nodes['deploy-rs']!.inputs!.nixpkgs, ['nixpkgs']);
  assert.equal(lock.nodes.disko!.inputs!.nixpkgs, ['nixpkgs']);
  assert.is(lock.nodes.nixpkgs!.original!.ref, 'nixos-26.05', 'the current stable branch');
});

lockSuite("matches flake.nix's inputs exactly (else Nix would re-lock, which needs the network)", () => {
  if (!hasNix) return skipped('flake.nix inputs', 'nix-instantiate is not on PATH');
  const inputs =
    nixEvalExpr<Record<string, { url: string; inputs?: { nixpkgs?: { follows: string } } }>>(
      '(import ./flake.nix).inputs',
    );
  const urlOf = (node: LockNode): string =>
    `github:${node.original!.owner}/${node.original!.repo}${node.original!.ref ? `/${node.original!.ref}` : ''}`;
  for (const [name, input] of Object.entries(inputs)) {
    const node = lock.nodes[lock.nodes[lock.root]!.inputs![name] as string]!;
    assert.is(input.url, urlOf(node), `${name}.url`);
    if (name !== 'nixpkgs') assert.is(input.inputs?.nixpkgs?.follows, 'nixpkgs', `${name} follows nixpkgs`);
  }
});

lockSuite('nix flake metadata --no-update-lock-file accepts it offline and changes nothing', () => {
  if (!commandExists('nix')) return skipped('nix flake metadata', 'nix is not on PATH');
  // A path: flake with only the two files: a git checkout would be git+file (tracked files only), and the
  // repository root would copy node_modules into the store.
  const dir = makeTempDir('innisfree-flake-');
  try {
    copyFileSync(join(repoRoot, 'flake.nix'), join(dir.path, 'flake.nix'));
    copyFileSync(join(repoRoot, 'flake.lock'), join(dir.path, 'flake.lock'));
    const before = readFileSync(join(dir.path, 'flake.lock'));
    const result = run(
      'nix',
      [...NIX_FLAKES, 'flake', 'metadata', '--json', '--no-update-lock-file', `path:${dir.path}`],
      {
        env: { ...process.env, NIX_CONFIG: 'connect-timeout = 5' },
      },
    );
    assert.is(result.status, 0, result.stderr);
    const metadata = JSON.parse(result.stdout) as { locks: Lock; description: string };
    assert.match(metadata.description, 'innisfree');
    assert.is(metadata.locks.nodes.nixpkgs!.locked!.rev, lock.nodes.nixpkgs!.locked!.rev);
    assert.ok(readFileSync(join(dir.path, 'flake.lock')).equals(before), 'flake.lock unchanged');
  } finally {
    dir.remove();
  }
});

lockSuite.run();

// ---
const parse = suite('flake: every .nix file parses, every shell script too');

parse('nix-instantiate --parse', () => {
  if (!hasNix) return skipped('.nix parsing', 'nix-instantiate is not on PATH');
  const nixFiles = [
    join(repoRoot, 'flake.nix'),
    ...files(join(repoRoot, 'nix'), '.nix'),
    ...files(join(repoRoot, 'modules'), '.nix'),
    ...files(join(repoRoot, 'test'), '.nix'),
  ];
  assert.ok(nixFiles.length >= 20, `found ${nixFiles.length} .nix files`);
  for (const file of nixFiles) {
    const result = run('nix-instantiate', ['--parse', file]);
    assert.is(result.status, 0, `${relative(repoRoot, file)}: ${result.stderr}`);
  }
});

parse('bash -n (and shellcheck when installed)', () => {
  const scripts = files(join(repoRoot, 'nix'), '.sh');
  assert.ok(scripts.length >= 5);
  for (const script of scripts) {
    const result = run('bash', ['-n', script]);
    assert.is(result.status, 0, `${relative(repoRoot, script)}: ${result.stderr}`);
  }
  if (!commandExists('shellcheck')) return skipped('shellcheck of nix/**/*.sh', 'shellcheck is not installed');
  const result = run('shellcheck', ['-S', 'warning', ...scripts]);
  assert.is(result.status, 0, result.stdout);
});

parse.run();

// ---
const wiring = suite('flake: lib.mkEdgeSystem, lib.mkDeploy and the VM tests (stand-ins for nixpkgs)');

const lib = nixpkgsLib();
const ready = (): boolean => {
  if (!hasNix) return (skipped('flake lib wiring', 'nix-instantiate is not on PATH'), false);
  if (!lib.path) return (skipped('flake lib wiring', lib.reason), false);
  return true;
};

interface Wiring {
  fromFile: { system: string; files: string[]; values: Array<{ services: { innisfree: Record<string, unknown> } }> };
  fromValue: Wiring['fromFile'];
  explicitHash: Wiring['fromFile'];
  deploy: Record<string, unknown>;
  vm: Record<
    string,
    {
      name: string;
      testScript: string;
      nodes: string[];
      edge: { failedAssertions: string[]; allowedTCPPorts: number[]; allowedUDPPorts: number[] };
    }
  >;
}

let cached: Wiring | undefined;
function wiringOf(): Wiring {
  if (cached) return cached;
  const edgeJson = join(planFixturesDir, 'web-basic', 'edge.json');
  const result = run(
    'nix-instantiate',
    [
      '--eval',
      '--strict',
      '--json',
      'test/nix/eval-flake-lib.nix',
      '--arg',
      'nixpkgsLib',
      lib.path!,
      '--argstr',
      'edgeJson',
      edgeJson,
    ],
    { cwd: repoRoot },
  );
  if (result.status !== 0) throw new Error(result.stderr);
  cached = JSON.parse(result.stdout) as Wiring;
  return cached;
}

wiring(
  'mkEdgeSystem: the edge module, disko, the DigitalOcean platform and the disk layout; the JSON as services.innisfree',
  () => {
    if (!ready()) return;
    const w = wiringOf();
    const edgeJson = readFileSync(join(planFixturesDir, 'web-basic', 'edge.json'), 'utf8');
    assert.is(w.fromFile.system, 'x86_64-linux');
    assert.equal(w.fromFile.files, ['edge.nix', 'disko module', 'digitalocean.nix', 'disko.nix']);
    assert.equal(w.fromFile.values[0]!.services.innisfree, JSON.parse(edgeJson));
    assert.is(
      w.fromFile.values[1]!.services.innisfree.configHash,
      createHash('sha256').update(edgeJson).digest('hex'),
      'the file hash',
    );
    assert.is(w.fromValue.values[1]!.services.innisfree.configHash, null, 'no file, no hash');
    assert.is(w.explicitHash.values[1]!.services.innisfree.configHash, '0'.repeat(64), 'an explicit hash wins');
  },
);

wiring(
  'mkDeploy: root over SSH on the edge port, magic and auto rollback, a confirm timeout, the system profile',
  () => {
    if (!ready()) return;
    assert.equal(wiringOf().deploy, {
      hostname: '203.0.113.10',
      sshUser: 'root',
      user: 'root',
      sshOpts: ['-p', '2222'],
      magicRollback: true,
      autoRollback: true,
      confirmTimeout: 60,
      profiles: { system: { path: { activated: 'x86_64-linux', modules: 6 } } },
    });
  },
);

wiring('the VM tests: three nodes, a sound edge config, and test scripts that are valid Python', () => {
  if (!ready()) return;
  for (const [forwarding, test] of Object.entries(wiringOf().vm)) {
    assert.is(test.name, `innisfree-edge-${forwarding}`);
    assert.equal(test.nodes, ['client', 'edge', 'home']);
    assert.equal(test.edge.failedAssertions, [], `${forwarding}: the edge config passes the module's assertions`);
    assert.equal(test.edge.allowedUDPPorts, [5353, 51820]);
    if (!commandExists('python3')) {
      skipped('VM test script syntax', 'python3 is not installed');
      continue;
    }
    const dir = makeTempDir('innisfree-vm-');
    try {
      const file = join(dir.path, 'test_script.py');
      writeFileSync(file, test.testScript);
      const result = run('python3', ['-c', 'import ast, sys; ast.parse(open(sys.argv[1]).read())', file]);
      assert.is(result.status, 0, `${forwarding} test script:\n${result.stderr}`);
    } finally {
      dir.remove();
    }
  }
});

wiring.run();
