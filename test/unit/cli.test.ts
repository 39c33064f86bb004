import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CliResult, repoRoot, runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

function isolatedEnv(dir: string): Record<string, string> {
  return { XDG_STATE_HOME: join(dir, 'state'), XDG_CONFIG_HOME: join(dir, 'config'), HOME: dir };
}

function assertUsage(result: CliResult, pattern: RegExp): void {
  assert.is(result.code, 2, `exit code 2 expected, got ${result.code}: ${result.stderr}`);
  assert.match(result.stderr, pattern);
  assert.is(result.stderr.trim().split('\n').length, 1, `one line expected: ${result.stderr}`);
  assert.is(result.stdout, '');
}

// ---
const shell = suite('cli: shell');

shell('--help lists the commands', async () => {
  const result = await runCli(['--help']);
  assert.is(result.code, 0);
  assert.match(result.stdout, /Usage:\s+\$ innisfree <command> \[options\]/);
  assert.match(result.stdout, /plan\s+Print the edge/);
});

shell('--version prints the package version', async () => {
  const version = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version as string;
  const result = await runCli(['--version']);
  assert.is(result.code, 0);
  assert.match(result.stdout, new RegExp(`innisfree/${version.replace(/\./g, '\\.')}`));
});

shell('each command has --help', async () => {
  const result = await runCli(['plan', '--help']);
  assert.is(result.code, 0);
  assert.match(result.stdout, /--ports <ports>/);
  assert.match(result.stdout, /Examples:/);
});

shell('an unknown command exits 2 with the closest name', async () => {
  assertUsage(await runCli(['pln']), /unknown command "pln" \(hint: did you mean "plan"\?/);
});

shell('an unknown command without a close match still exits 2', async () => {
  assertUsage(await runCli(['frobnicate']), /unknown command "frobnicate"/);
});

shell('an unknown flag exits 2 with the closest flag', async () => {
  const dir = makeTempDir();
  try {
    assertUsage(
      await runCli(['plan', '--name', 'web', '--prots', '443'], isolatedEnv(dir.path)),
      /unknown option --prots for "plan" \(hint: did you mean --ports\?/,
    );
  } finally {
    dir.remove();
  }
});

shell.run();

// ---
const plan = suite('cli: plan');

plan('prints EdgeConfig JSON that validates against the committed schema, byte-identical twice', async () => {
  const dir = makeTempDir();
  try {
    const env = isolatedEnv(dir.path);
    const args = ['plan', '--name', 'web', '--ports', '443/tcp,80:8080/tcp,19132/udp', '--json'];
    const first = await runCli(args, env);
    const second = await runCli(args, env);
    assert.is(first.code, 0, first.stderr);
    assert.is(first.stdout, second.stdout);
    const ajv = new Ajv2020({ strict: false });
    const validate = ajv.compile(JSON.parse(readFileSync(join(repoRoot, 'nix', 'edge-config.schema.json'), 'utf8')));
    const edge = JSON.parse(first.stdout) as {
      ports: Array<{ publicPort: number; localPort: number; protocol: string }>;
    };
    const valid = validate(JSON.parse(first.stdout));
    assert.ok(valid, ajv.errorsText(validate.errors));
    assert.equal(
      edge.ports.map((p) => `${p.publicPort}:${p.localPort}/${p.protocol}`),
      ['80:8080/tcp', '443:443/tcp', '19132:19132/udp'],
    );
  } finally {
    dir.remove();
  }
});

plan('two tunnels on one host get different addresses and interface names', async () => {
  const dir = makeTempDir();
  try {
    const env = isolatedEnv(dir.path);
    const homes = [];
    for (const name of ['web', 'game']) {
      const result = await runCli(['plan', '--name', name, '--ports', '443', '--json', '--home'], env);
      assert.is(result.code, 0, result.stderr);
      homes.push(JSON.parse(result.stdout) as { interface: string; address: string });
    }
    assert.is.not(homes[0]!.interface, homes[1]!.interface);
    assert.is.not(homes[0]!.address, homes[1]!.address);
    // The tunnels' /30s do not overlap.
    const slot = (a: string) =>
      a
        .split('/')[0]!
        .split('.')
        .map(Number)
        .reduce((x, y) => x * 256 + y, 0) >>> 2;
    assert.is.not(slot(homes[0]!.address), slot(homes[1]!.address));
  } finally {
    dir.remove();
  }
});

plan('the human output shows both sides', async () => {
  const dir = makeTempDir();
  try {
    const result = await runCli(
      ['plan', '--name', 'web', '--ports', '443,19132/udp', '--destination', 'none'],
      isolatedEnv(dir.path),
    );
    assert.is(result.code, 0, result.stderr);
    assert.match(result.stdout, /Edge configuration \(services\.innisfree/);
    assert.match(result.stdout, /WireGuard interface\s+isf-web/);
    assert.match(result.stdout, /forwarder\s+none: the service listens on the tunnel address itself/);
  } finally {
    dir.remove();
  }
});

plan('numeric-looking values reach the command as typed', async () => {
  const dir = makeTempDir();
  try {
    const result = await runCli(['plan', '--name', '007', '--ports', '443', '--json'], isolatedEnv(dir.path));
    assert.is(result.code, 0, result.stderr);
    assert.is(JSON.parse(result.stdout).name, '007');
    // A positional argument after a boolean option, too (mri made "0042" 42), and a kebab-case boolean does not swallow
    // the word after it (mri took "web" as the value of --release-ip).
    const status = await runCli(['status', '--json', '0042'], isolatedEnv(dir.path));
    assert.match(status.stderr, /no tunnel named "0042"/);
    const down = await runCli(['down', '--release-ip', 'web', '--provider', 'local'], isolatedEnv(dir.path));
    assert.match(down.stderr, /no tunnel named "web"/);
  } finally {
    dir.remove();
  }
});

plan('sources: environment and config.json', async () => {
  const dir = makeTempDir();
  try {
    const env = { ...isolatedEnv(dir.path), INNISFREE_NAME: 'env-web', INNISFREE_PORTS: '8443/tcp' };
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(join(dir.path, 'config', 'innisfree'), { recursive: true });
    writeFileSync(
      join(dir.path, 'config', 'innisfree', 'config.json'),
      JSON.stringify({ forwarding: 'nftables', mtu: 1400 }),
    );
    const result = await runCli(['plan', '--json'], env);
    assert.is(result.code, 0, result.stderr);
    const edge = JSON.parse(result.stdout) as { name: string; forwarding: string; wireguard: { mtu: number } };
    assert.is(edge.name, 'env-web');
    assert.is(edge.forwarding, 'nftables');
    assert.is(edge.wireguard.mtu, 1400);
  } finally {
    dir.remove();
  }
});

plan.run();

// ---
const rejects = suite('cli: every rejected input exits 2 naming the bad token');

const cases: Array<[string, string[], RegExp]> = [
  ['port out of range', ['--ports', '443,70000/tcp'], /"70000\/tcp".*outside 1-65535/],
  ['unequal range lengths', ['--ports', '8000-8010:9000-9005'], /"8000-8010:9000-9005"/],
  ['overlapping public ports', ['--ports', '27015-27030/udp,27020/udp'], /"27015-27030\/udp" and "27020\/udp"/],
  ['duplicate public port', ['--ports', '443,443/TCP'], /"443" and "443\/TCP"/],
  ['reserved SSH port', ['--ports', '22'], /"22".*SSH/],
  ['reserved WireGuard port', ['--ports', '51820/udp'], /"51820\/udp".*WireGuard/],
  ['empty spec', ['--ports', ''], /ports: /],
  ['empty entry', ['--ports', '443,,80'], /empty port mapping/],
  ['bad protocol', ['--ports', '443/quic'], /"443\/quic".*unknown protocol "quic"/],
  ['bad name', ['--name', 'Bad_Name'], /--name: must be/],
  ['bad destination', ['--destination', 'bad host!'], /--destination: must be/],
  ['bad forwarding', ['--forwarding', 'haproxy'], /--forwarding: /],
];

for (const [what, args, pattern] of cases) {
  rejects(what, async () => {
    const dir = makeTempDir();
    try {
      const defaults = args.includes('--ports') ? [] : ['--ports', '443'];
      const full = ['plan', '--name', 'web', ...defaults, ...args];
      assertUsage(await runCli(full, isolatedEnv(dir.path)), pattern);
    } finally {
      dir.remove();
    }
  });
}

rejects('a missing --file', async () => {
  const dir = makeTempDir();
  try {
    assertUsage(
      await runCli(['plan', '--file', join(dir.path, 'nope.json')], isolatedEnv(dir.path)),
      /--file: .*does not exist/,
    );
  } finally {
    dir.remove();
  }
});

rejects('nothing is written for rejected input', async () => {
  const dir = makeTempDir();
  try {
    await runCli(['plan', '--name', 'web', '--ports', '70000'], isolatedEnv(dir.path));
    const { existsSync } = await import('node:fs');
    assert.not.ok(existsSync(join(dir.path, 'state', 'innisfree', 'web')));
  } finally {
    dir.remove();
  }
});

rejects.run();
