// innisfree check --file: a tunnel file up would accept exits 0 with one confirmation line; anything else exits 2
// with one line saying what, why and what to do. Spec only: no state directory appears, no token is needed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CliResult, runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const S = suite('check --file');

/** Runs `innisfree check` in a fresh directory holding `files`, with a state dir that must stay absent. */
async function check(
  files: Record<string, string>,
  args: (dir: string) => string[],
): Promise<CliResult & { stateMade: boolean }> {
  const dir = makeTempDir('innisfree-check-');
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir.path, name), text);
    const state = join(dir.path, 'state');
    const result = await runCli(['check', ...args(dir.path)], {
      INNISFREE_STATE_DIR: state,
      XDG_CONFIG_HOME: join(dir.path, 'config'),
      HOME: dir.path,
    });
    return { ...result, stateMade: existsSync(state) };
  } finally {
    dir.remove();
  }
}

function assertRefused(result: CliResult & { stateMade: boolean }, pattern: RegExp): void {
  assert.is(result.code, 2, `exit 2 expected, got ${result.code}: ${result.stderr}`);
  assert.is(result.stderr.trim().split('\n').length, 1, `one line expected: ${result.stderr}`);
  assert.match(result.stderr, /^innisfree: .+ \(hint: .+\)\n$/);
  assert.match(result.stderr, pattern);
  assert.not.match(result.stderr, /internal error/);
  assert.is(result.stdout, '');
  assert.not.ok(result.stateMade, 'no state directory');
}

const tunnel = (fields: Record<string, unknown>): string => JSON.stringify(fields);

S('a valid tunnel file: exit 0, one line naming the tunnel, its provider and ports; no state, no token', async () => {
  const result = await check(
    {
      'web.json': tunnel({
        name: 'web',
        ports: ['443/tcp', { public: 8443, local: 443, proxyProtocol: true }],
        destination: '192.168.1.20',
        image: 'innisfree-edge',
        keep: true,
        tokenFile: '/run/secrets/never-read',
      }),
    },
    (dir) => ['--file', join(dir, 'web.json')],
  );
  assert.is(result.code, 0, result.stderr);
  assert.is(result.stderr, '');
  assert.match(
    result.stdout,
    /^\/.+\/web\.json: tunnel "web" is valid \(provider digitalocean; 2 port mappings: 443\/tcp, 8443:443\/tcp\)\n$/,
  );
  assert.not.ok(result.stateMade, 'check makes no state directory');
});

S('a told home interface is checked and named in the confirmation', async () => {
  const ok = await check({ 't.json': tunnel({ name: 'web', ports: ['443'], homeInterface: 'isf-web' }) }, (dir) => [
    '--file',
    join(dir, 't.json'),
  ]);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /; interface isf-web\)\n$/);
  for (const [homeInterface, why] of [
    ['eth0', /homeInterface: must be "isf-"/],
    ['isf-twelve-chars', /15 characters at most/],
    ['isf-a b', /must be "isf-"/],
  ] as const) {
    assertRefused(
      await check({ 't.json': tunnel({ name: 'web', ports: ['443'], homeInterface }) }, (dir) => [
        '--file',
        join(dir, 't.json'),
      ]),
      why,
    );
  }
});

S('invalid tunnels: exit 2 and the line up would print', async () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ports: ['70000/tcp'] }, /"70000\/tcp" uses port 70000, outside 1-65535/],
    [{ ports: ['443'], colour: 'red' }, /t\.json: \(top level\): unknown field "colour"/],
    [{ ports: 443 }, /t\.json: ports/],
    [{}, /ports: no port mappings given/],
    [{ ports: ['443'], name: 'Not_A_Label' }, /name: must be 1-32 characters/],
    [{ ports: ['443'], bootstrap: 'image' }, /bootstrap: "image" needs an image id or name/],
    [{ ports: ['443'], forwarding: 'nftables', proxyProtocol: ['443'] }, /PROXY protocol needs nginx forwarding/],
  ];
  for (const [fields, why] of cases) {
    assertRefused(await check({ 't.json': tunnel(fields) }, (dir) => ['--file', join(dir, 't.json')]), why);
  }
});

S('not JSON, missing, a directory, no --file: one line each, exit 2', async () => {
  assertRefused(
    await check({ 't.json': '{ "ports": [' }, (dir) => ['--file', join(dir, 't.json')]),
    /not valid JSON.*hint: fix or remove/,
  );
  assertRefused(await check({}, (dir) => ['--file', join(dir, 'gone.json')]), /gone\.json does not exist/);
  assertRefused(
    await check({}, (dir) => {
      mkdirSync(join(dir, 'sub'));
      return ['--file', join(dir, 'sub')];
    }),
    /not a regular file/,
  );
  assertRefused(await check({}, () => []), /check: needs the tunnel file.*innisfree check --file PATH/);
  assertRefused(await check({}, () => ['--file']), /--file/);
  assertRefused(
    await check({ 't.json': tunnel({ ports: ['443'] }) }, (dir) => ['--file', join(dir, 't.json'), '--file', 'x']),
    /--file is given more than once/,
  );
});

S.run();

const told = suite('--home-interface: the CLI is told the home WireGuard interface');

told('plan uses the told name on both ends, and a second tunnel cannot take it', async () => {
  const dir = makeTempDir('innisfree-home-interface-');
  try {
    const env = {
      INNISFREE_STATE_DIR: join(dir.path, 'state'),
      XDG_CONFIG_HOME: join(dir.path, 'config'),
      HOME: dir.path,
    };
    const plan = await runCli(
      ['plan', '--name', 'a-long-tunnel-name', '--ports', '443', '--home-interface', 'isf-house', '--json', '--home'],
      env,
    );
    assert.is(plan.code, 0, plan.stderr);
    assert.is((JSON.parse(plan.stdout) as { interface: string }).interface, 'isf-house');
    const edge = await runCli(['plan', '--name', 'a-long-tunnel-name', '--ports', '443', '--json'], {
      ...env,
      INNISFREE_HOME_INTERFACE: 'isf-house',
    });
    assert.is(edge.code, 0, edge.stderr);
    assert.is((JSON.parse(edge.stdout) as { wireguard: { interface: string } }).wireguard.interface, 'ise-house');
    const taken = await runCli(['plan', '--name', 'other', '--ports', '80', '--home-interface', 'isf-house'], env);
    assert.is(taken.code, 2, taken.stderr);
    assert.is(taken.stderr.trim().split('\n').length, 1, taken.stderr);
    assert.match(taken.stderr, /isf-house is already the interface of tunnel "a-long-tunnel-name" on this host/);
    const bad = await runCli(['plan', '--ports', '80', '--home-interface', 'eth0'], env);
    assert.is(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /^innisfree: --home-interface: must be "isf-"/);
  } finally {
    dir.remove();
  }
});

told.run();
