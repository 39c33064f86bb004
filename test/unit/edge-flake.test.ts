// The per-tunnel edge flake (src/templates/flake.nix.ejs via src/edge/flake.ts): golden output, valid Nix, wired to
// the innisfree flake's lib the way the deployer expects, and refusing inputs that could break out of a Nix string.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { innisfreeFlakePath, renderEdgeFlake } from '../../src/edge/flake.js';
import { packageRoot } from '../../src/lib/package-root.js';
import { fixturesDir, readPlanFixture, updating } from '../helpers/fixtures.js';
import { hasNix, run, skipped } from '../helpers/nix.js';
import { makeTempDir } from '../helpers/tmp.js';

const GOLDEN = join(fixturesDir, 'edge-flake', 'flake.nix');
const INPUT = {
  innisfreeFlake: '/nix/store/6x3gk0mq4z0v5m7q7f9d1h2j3k4l5m6n-source',
  tunnel: 'web',
  hostname: '203.0.113.10',
  configHash: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
};

const S = suite('edge flake');

S('renders the golden flake.nix', () => {
  const text = renderEdgeFlake(INPUT);
  if (updating) writeFileSync(GOLDEN, text);
  assert.fixture(text, readFileSync(GOLDEN, 'utf8'));
});

S('is valid Nix, with and without a recorded hash', () => {
  if (!hasNix) return skipped('edge flake parsing', 'nix-instantiate is not on PATH');
  for (const input of [INPUT, { ...INPUT, configHash: undefined }, { ...INPUT, hostname: undefined }]) {
    const dir = makeTempDir('innisfree-flake-');
    try {
      writeFileSync(join(dir.path, 'flake.nix'), renderEdgeFlake(input));
      const result = run('nix-instantiate', ['--parse', join(dir.path, 'flake.nix')]);
      assert.is(result.status, 0, result.stderr);
    } finally {
      dir.remove();
    }
  }
});

S('its outputs call innisfree.lib with ./edge.json, the file hash, the host, and name the node "edge"', () => {
  if (!hasNix) return skipped('edge flake evaluation', 'nix-instantiate is not on PATH');
  const dir = makeTempDir('innisfree-flake-');
  try {
    const edgeJson = readPlanFixture('web-basic').edge!;
    writeFileSync(join(dir.path, 'edge.json'), edgeJson);
    writeFileSync(join(dir.path, 'flake.nix'), renderEdgeFlake(INPUT));
    // A stand-in innisfree flake whose lib functions return their arguments.
    const expr = `
      let
        flake = import ${join(dir.path, 'flake.nix')};
        innisfree.lib = {
          mkEdgeSystem = args: { system = args // { edge = builtins.baseNameOf args.edge; }; };
          mkDeploy = args: args // { nixosConfiguration = "the edge system"; };
        };
        out = flake.outputs { self = out; inherit innisfree; };
      in {
        input = flake.inputs.innisfree.url;
        edge = out.nixosConfigurations.edge.system;
        node = out.deploy.nodes.edge;
        outputs = builtins.attrNames out;
      }`;
    const result = run('nix-instantiate', ['--eval', '--strict', '--json', '--expr', expr]);
    assert.is(result.status, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout), {
      input: `path:${INPUT.innisfreeFlake}`,
      edge: { edge: 'edge.json', configHash: createHash('sha256').update(edgeJson).digest('hex') },
      node: { hostname: '203.0.113.10', nixosConfiguration: 'the edge system' },
      outputs: ['deploy', 'nixosConfigurations'],
    });
  } finally {
    dir.remove();
  }
});

S('without a hostname the node gets an unresolvable placeholder the deployer overrides', () => {
  const { hostname: _omit, ...input } = INPUT;
  const text = renderEdgeFlake(input);
  assert.match(text, 'hostname = "innisfree-web.invalid";');
  assert.match(text, 'placeholder: pass --hostname');
  assert.not.match(renderEdgeFlake(INPUT), 'placeholder');
});

S('refuses inputs that could break out of a Nix string or a flake reference', () => {
  const bad: Array<[Partial<typeof INPUT>, RegExp]> = [
    [{ innisfreeFlake: 'relative/path' }, /cannot be used as a flake input/],
    [{ innisfreeFlake: '/home/me/my checkout' }, /cannot be used as a flake input/],
    [{ innisfreeFlake: '/x"; evil = "' }, /cannot be used as a flake input/],
    [{ innisfreeFlake: '/a/../b' }, /cannot be used as a flake input/],
    [{ tunnel: 'Web"' }, /is not a tunnel name/],
    [{ hostname: '203.0.113.10"; x' }, /is not an IPv4 address or host name/],
    [{ hostname: '2001:db8::1' }, /is not an IPv4 address or host name/],
    [{ configHash: 'abc' }, /64 hex digits/],
  ];
  for (const [override, message] of bad) {
    assert.throws(() => renderEdgeFlake({ ...INPUT, ...override }), message, JSON.stringify(override));
  }
});

S('the innisfree flake comes from INNISFREE_FLAKE, else the source checkout', () => {
  assert.is(innisfreeFlakePath({ INNISFREE_FLAKE: '/nix/store/abc-source' }), '/nix/store/abc-source');
  assert.is(innisfreeFlakePath({}), packageRoot);
  assert.is(innisfreeFlakePath({ INNISFREE_FLAKE: '' }), packageRoot);
});

S.run();
