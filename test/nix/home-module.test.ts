// modules/home.nix evaluated with nixpkgs' lib and the stub option declarations: each tunnel becomes a tunnel file
// that a build step checks with `innisfree check --file` (here: the real CLI on the same JSON), a hardened
// `innisfree-<name>` service running `innisfree up --file` on it, the token as a systemd credential, and a firewall
// opening only the tunnel's local ports on the WireGuard interface the file names.
// Needs NIXPKGS_LIB pointing at a nixpkgs (or nixpkgs.lib) checkout; without it the suite says it skipped.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shortIdOf } from '../../src/addressing.js';
import { fileLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import { type CliResult, cliPath, runCli } from '../helpers/cli.js';
import { hasNix, nixpkgsLib, repoRoot, run, skipped } from '../helpers/nix.js';
import { makeTempDir } from '../helpers/tmp.js';

interface Service {
  wantedBy: string[];
  after: string[];
  path: string[];
  environment: Record<string, string>;
  launcher: string;
  serviceConfig: Record<string, unknown>;
  reloadTriggers: string[];
  restartTriggers: string[];
  restartIfChanged: boolean;
  reloadIfChanged: boolean;
}

interface Evaluated {
  failedAssertions: string[];
  services: Record<string, Service>;
  etc: Record<string, { source: string; text: string | null; check: string | null }>;
  users: Record<string, Record<string, unknown>>;
  kernelModules: string[];
  firewall: {
    checkReversePath: unknown;
    interfaces: Record<string, { allowedTCPPortRanges: unknown[]; allowedUDPPortRanges: unknown[] }>;
  };
}

const lib = nixpkgsLib();
const ready = (): boolean => {
  if (!hasNix) return (skipped('home module evaluation', 'nix-instantiate is not on PATH'), false);
  if (!lib.path) return (skipped('home module evaluation', lib.reason), false);
  return true;
};

function evaluate(tunnels: unknown): Evaluated {
  const result = run(
    'nix-instantiate',
    [
      '--eval',
      '--strict',
      '--json',
      'test/nix/eval-home-module.nix',
      '--arg',
      'nixpkgsLib',
      lib.path!,
      '--argstr',
      'tunnelsJson',
      JSON.stringify(tunnels),
    ],
    { cwd: repoRoot },
  );
  if (result.status !== 0) throw new Error(`evaluation failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as Evaluated;
}

/** The argv of the launcher's exec line, unquoted as the shell would (the launcher uses escapeShellArgs). */
function launcherArgv(launcher: string): string[] {
  const line = launcher.trim().replace(/^exec /, '');
  const argv: string[] = [];
  for (const match of line.matchAll(/'((?:[^']|'\\'')*)'|"([^"]*)"|(\S+)/g)) {
    argv.push(match[1] !== undefined ? match[1].replace(/'\\''/g, "'") : (match[2] ?? match[3]!));
  }
  return argv;
}

const web = {
  ports: [
    '443/tcp',
    '80:8080',
    { public: '27015-27030', protocol: 'udp' },
    { public: 8443, local: 443, proxyProtocol: true },
  ],
  destination: '192.168.1.20',
  region: 'fra1',
  image: 'innisfree-edge',
  ipv6: true,
  reservedIp: '203.0.113.10',
  tokenFile: '/run/secrets/digitalocean-token',
};

const S = suite('home module');

/** The tunnel file the module writes for `web` (its JSON), as a plain object. */
const fileOf = (c: Evaluated, name = 'web'): Record<string, unknown> => {
  const file = c.etc[`innisfree/tunnels/${name}.json`];
  assert.ok(file?.text, Object.keys(c.etc).join(', '));
  return JSON.parse(file.text) as Record<string, unknown>;
};

/** `innisfree check --file` (the built CLI) on a tunnel file's JSON, named as the module's build step names it. */
async function cliCheck(json: Record<string, unknown>, name = 'web'): Promise<CliResult> {
  const dir = makeTempDir('innisfree-home-check-');
  try {
    writeFileSync(join(dir.path, `${name}.json`), JSON.stringify(json));
    return await runCli(['check', '--file', join(dir.path, `${name}.json`)], {
      INNISFREE_STATE_DIR: join(dir.path, 'state'),
      XDG_CONFIG_HOME: join(dir.path, 'config'),
      HOME: dir.path,
    });
  } finally {
    dir.remove();
  }
}

S('a tunnel becomes innisfree-<name> running `innisfree up --file` on its tunnel file, checked at build time', () => {
  if (!ready()) return;
  const c = evaluate({ web });
  assert.equal(c.failedAssertions, []);
  assert.equal(Object.keys(c.services), ['innisfree-web']);
  const service = c.services['innisfree-web']!;
  const argv = launcherArgv(service.launcher);
  assert.match(argv[0]!, /\/bin\/innisfree$/);
  // No tunnel setting on the command line: only the file and the token's run-time path.
  assert.equal(argv.slice(1), [
    'up',
    '--file',
    '/etc/innisfree/tunnels/web.json',
    '--token-file',
    '$CREDENTIALS_DIRECTORY/token',
  ]);
  const known = cliTunnelFlags();
  for (const arg of argv.filter((a) => a.startsWith('--')))
    assert.ok(known.includes(arg), `${arg} is a flag of the CLI`);
  // The tunnel file holds every setting, the interface included, and no secret.
  assert.equal(fileOf(c), {
    name: 'web',
    provider: 'digitalocean',
    keep: true,
    ports: ['443/tcp', '80:8080', '27015-27030/udp', '8443:443/tcp'],
    destination: '192.168.1.20',
    forwarding: 'nginx',
    homeInterface: 'isf-web',
    proxyProtocol: ['8443'],
    region: 'fra1',
    image: 'innisfree-edge',
    reservedIp: '203.0.113.10',
    ipv6: true,
  });
  const file = c.etc['innisfree/tunnels/web.json']!;
  assert.not.match(file.text!, 'digitalocean-token', 'the token path is not in the store');
  // The /etc entry is the output of the check: it runs the package's own CLI on the file, then is the file.
  const script = file.check!;
  assert.match(script, /^cp \/nix\/store\/[0-9a-f]{32}-innisfree-web-unchecked\.json web\.json$/m);
  assert.match(
    script,
    /^\/nix\/store\/0{32}-innisfree-0\.1\.0\/bin\/innisfree check --file web\.json$/m,
    'the build runs innisfree check --file',
  );
  assert.match(script, /^cp web\.json \$out$/m);
  assert.ok(script.indexOf(' check --file') < script.indexOf('$out'), 'nothing is output before the check passed');
  assert.equal(service.reloadTriggers, [file.source], 'the checked tunnel file is the reload trigger');
});

S('the real `innisfree check` accepts the tunnel files the module writes', async () => {
  if (!ready()) return;
  const { image: _image, ...stock } = web;
  const configs: Array<Record<string, unknown>> = [
    web,
    { ...stock, reservedIpv6: 'new' },
    { ...web, homeForwarding: 'kernel', masquerade: true, ipv6: false },
    { ...web, ports: ['443/tcp', '27015-27030/udp'], proxyProtocol: [443], proxyProtocolVersion: 2 },
    { ...web, name: 'averylongname-x', interface: 'isf-house', wireguardPort: 51821, keepalive: 15, mtu: 1380 },
    {
      ports: ['443/tcp@192.168.1.21', { public: 53, protocol: 'udp', destination: 'fd00::53' }, '80:8080'],
      tokenFile: '/run/secrets/t',
      dns: 'home.example.org',
      bootstrap: 'nixos-anywhere',
      size: 's-2vcpu-4gb',
      region: 'ams3',
    },
  ];
  for (const config of configs) {
    const json = fileOf(evaluate({ web: config }), String(config.name ?? 'web'));
    const result = await cliCheck(json, String(config.name ?? 'web'));
    assert.is(result.code, 0, `${JSON.stringify(json)}: ${result.stderr}`);
    assert.match(
      result.stdout,
      /^\/.+\.json: tunnel "[a-z0-9-]+" is valid \(provider digitalocean; .+; interface isf-/,
    );
  }
});

S('a tunnel the CLI would refuse fails the check, so the system does not build', async () => {
  if (!ready()) return;
  // Each passes the module's option types; the CLI refuses it, with exit 2 and one line.
  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...web, forwarding: 'nftables' }, /PROXY protocol needs nginx forwarding/],
    [{ ...web, image: null, bootstrap: 'image' }, /bootstrap: "image" needs an image id or name/],
    [{ ...web, homeForwarding: 'kernel', destination: 'nas.lan', proxyProtocol: [] }, /kernel forwarding needs/],
    [{ ...web, reservedIpv6: 'new' }, /custom images no IPv6/],
    [{ ...web, ports: ['22/tcp'] }, /22/],
  ];
  for (const [config, why] of refused) {
    const c = evaluate({ web: config });
    assert.equal(c.failedAssertions, [], 'the module itself lets it through');
    const result = await cliCheck(fileOf(c));
    assert.is(result.code, 2, `${JSON.stringify(config)}: exit 2 expected, got ${result.code}: ${result.stderr}`);
    assert.is(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /^innisfree: web\.json: /);
    assert.match(result.stderr, why);
  }
});

S('reservedIpv6, kernel forwarding, masquerade and the PROXY version are in the tunnel file', () => {
  if (!ready()) return;
  const { image: _image, ...stock } = web;
  assert.is(fileOf(evaluate({ web: { ...stock, reservedIpv6: 'new' } })).reservedIpv6, 'new');
  const kernel = fileOf(evaluate({ web: { ...web, homeForwarding: 'kernel', masquerade: true, ipv6: false } }));
  assert.is(kernel.homeForwarding, 'kernel');
  assert.is(kernel.masquerade, true);
  assert.not.ok('ipv6' in kernel, 'ipv6 off: left out (a reserved IPv6 would imply it)');
  assert.is(fileOf(evaluate({ web: { ...web, proxyProtocolVersion: 2 } })).proxyProtocolVersion, 2);
  const plain = fileOf(evaluate({ web }));
  for (const field of ['homeForwarding', 'masquerade', 'proxyProtocolVersion', 'size', 'bootstrap', 'mtu'])
    assert.not.ok(field in plain, `${field} unset: the CLI's default`);
});

S(
  'per-port destinations: "@HOST" strings and `destination` on entries reach the tunnel file\'s ports; the ' +
    'firewall opens the local ports',
  () => {
    if (!ready()) return;
    const c = evaluate({
      lan: {
        ports: [
          '443/tcp@192.168.1.21',
          { public: 8443, local: 9443, destination: '192.168.1.22' },
          { public: 53, protocol: 'udp', destination: 'fd00::53' },
          '80:8080',
        ],
        destination: '127.0.0.1',
        tokenFile: '/run/secrets/t',
      },
    });
    assert.equal(c.failedAssertions, []);
    const file = fileOf(c, 'lan') as { ports: string[] };
    assert.equal(file.ports, ['443/tcp@192.168.1.21', '8443:9443/tcp@192.168.1.22', '53/udp@fd00::53', '80:8080']);
    // The CLI reads that text as the module meant it.
    const spec = resolveTunnelSpec([fileLayer('/etc/innisfree/tunnels/lan.json', file)]);
    assert.equal(
      spec.ports.map((p) => p.destination),
      ['192.168.1.21', '192.168.1.22', 'fd00::53', undefined],
    );
    assert.equal(c.firewall.interfaces['isf-lan'], {
      allowedTCPPortRanges: [
        { from: 443, to: 443 },
        { from: 8080, to: 8080 },
        { from: 9443, to: 9443 },
      ],
      allowedUDPPortRanges: [{ from: 53, to: 53 }],
    });
    // A destination that would break the --ports text is refused by the option's type.
    assert.throws(
      () => evaluate({ bad: { ports: [{ public: 443, destination: 'a,b' }], tokenFile: '/run/secrets/t' } }),
      /destination|not of type/,
    );
  },
);

S('ports, destinations, PROXY protocol and masquerade reload the unit; edge and link settings restart it', () => {
  if (!ready()) return;
  const base = evaluate({ web }).services['innisfree-web']!;
  assert.match(String(base.serviceConfig.ExecReload), /\/bin\/innisfree reload web$/);
  assert.is(base.restartIfChanged, true, "NixOS' default: a changed unit restarts");
  assert.is(base.reloadIfChanged, false, 'only the reload triggers reload');
  const unitOf = (s: Service) => JSON.stringify({ ...s, reloadTriggers: [] });
  const reloads = [
    { ports: ['443/tcp', '8080/tcp'] },
    { destination: '192.168.1.30' },
    { proxyProtocol: [443] },
    { masquerade: true, homeForwarding: 'kernel', ipv6: false },
  ];
  for (const change of reloads) {
    const changed = evaluate({ web: { ...web, ...change } }).services['innisfree-web']!;
    const other = change.homeForwarding ? evaluate({ web: { ...web, homeForwarding: 'kernel', ipv6: false } }) : null;
    const before = other ? other.services['innisfree-web']! : base;
    assert.is(
      unitOf(changed),
      unitOf(before),
      `${JSON.stringify(change)}: the unit is the same, so it is not restarted`,
    );
    assert.not.equal(
      changed.reloadTriggers,
      before.reloadTriggers,
      `${JSON.stringify(change)}: the reload trigger changed`,
    );
  }
  for (const change of [
    { region: 'ams3' },
    { size: 's-2vcpu-4gb' },
    { image: 'innisfree-edge-2' },
    { forwarding: 'nftables', proxyProtocol: [], ports: ['443/tcp'] },
    { homeForwarding: 'proxy' },
    { interface: 'isf-house' },
    { mtu: 1380 },
  ]) {
    const changed = evaluate({ web: { ...web, ...change } }).services['innisfree-web']!;
    assert.is(changed.launcher, base.launcher, `${JSON.stringify(change)}: the command line stays the same`);
    assert.not.equal(
      changed.restartTriggers,
      base.restartTriggers,
      `${JSON.stringify(change)}: the restart trigger changed, so the unit restarts`,
    );
  }
});

S('the service: state and cache directories, token credential, capabilities, restart and SIGTERM', () => {
  if (!ready()) return;
  const service = evaluate({ web }).services['innisfree-web']!;
  assert.equal(service.environment, {
    INNISFREE_STATE_DIR: '/var/lib/innisfree',
    HOME: '/var/cache/innisfree',
    XDG_CACHE_HOME: '/var/cache/innisfree',
  });
  const sc = service.serviceConfig;
  assert.is(sc.StateDirectory, 'innisfree');
  assert.is(sc.StateDirectoryMode, '0700');
  assert.equal(sc.LoadCredential, ['token:/run/secrets/digitalocean-token']);
  assert.not.match(service.launcher, 'digitalocean-token', 'the token path is not in the command line');
  assert.equal(sc.AmbientCapabilities, ['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE']);
  assert.equal(sc.CapabilityBoundingSet, ['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE']);
  assert.is(sc.User, 'innisfree');
  assert.is(sc.Restart, 'on-failure');
  assert.is(sc.RestartPreventExitStatus, '2');
  assert.is(sc.KillSignal, 'SIGTERM');
  assert.is(sc.KillMode, 'mixed', 'only the CLI gets SIGTERM; it stops its children');
  assert.ok(service.wantedBy.includes('multi-user.target'));
  assert.ok(service.after.includes('network-online.target'));
  // The tools come from the package's wrapper (nix/package.nix), not from a second list in the module.
  assert.equal(service.path, []);
  const wrapper = readFileSync(join(repoRoot, 'nix', 'package.nix'), 'utf8');
  const tools = /runtimeTools = \[([^\]]*)\]/.exec(wrapper)?.[1] ?? '';
  for (const tool of [
    'wireguard-tools',
    'wireguard-go',
    'iproute2',
    'nftables',
    'procps',
    'openssh',
    'nix',
    'deploy-rs',
  ])
    assert.match(tools, new RegExp(`^\\s*${tool}$`, 'm'), `${tool} on the wrapper's PATH`);
});

S('the firewall opens the local ports on the interface the tunnel file names; DNAT tunnels get loose rp checks', () => {
  if (!ready()) return;
  const c = evaluate({
    web: { ...web, name: 'averylongname-x' },
    dns: { ports: ['53/udp,53/tcp'], forwarding: 'nftables', destination: 'none', tokenFile: '/run/secrets/t' },
    told: { ports: ['25/tcp'], tokenFile: '/run/secrets/t', interface: 'isf-mail_1' },
    off: { ports: ['1/tcp'], tokenFile: '/run/secrets/t', enable: false },
    closed: { ports: ['25/tcp'], tokenFile: '/run/secrets/t', openFirewall: false },
  });
  assert.equal(Object.keys(c.services).sort(), [
    'innisfree-averylongname-x',
    'innisfree-closed',
    'innisfree-dns',
    'innisfree-told',
  ]);
  assert.equal(c.firewall.interfaces, {
    'isf-avery-b7c0': {
      allowedTCPPortRanges: [
        { from: 443, to: 443 },
        { from: 8080, to: 8080 },
      ],
      allowedUDPPortRanges: [{ from: 27015, to: 27030 }],
    },
    'isf-dns': { allowedTCPPortRanges: [{ from: 53, to: 53 }], allowedUDPPortRanges: [{ from: 53, to: 53 }] },
    'isf-mail_1': { allowedTCPPortRanges: [{ from: 25, to: 25 }], allowedUDPPortRanges: [] },
  });
  // Exactly the names the CLI is told.
  for (const [name, expected] of [
    ['averylongname-x', 'isf-avery-b7c0'],
    ['dns', 'isf-dns'],
    ['told', 'isf-mail_1'],
  ])
    assert.is(fileOf(c, name).homeInterface, expected);
  assert.is(c.firewall.checkReversePath, 'loose');
  assert.is(evaluate({ web }).firewall.checkReversePath, true, 'unchanged without DNAT tunnels');
  assert.ok(c.kernelModules.includes('wireguard'));
  assert.is(c.users.innisfree?.isSystemUser, true);
});

S('the default interface is the one the CLI would pick on its own, so existing hosts keep theirs', () => {
  if (!ready()) return;
  const names = ['web', 'dns', 'ten-chars1', 'eleven-char', 'averylongname-x', 'abcd--efghijk', 'a----bcdefghijkl'];
  const c = evaluate(Object.fromEntries(names.map((name) => [name, { ports: ['443'], tokenFile: '/run/secrets/t' }])));
  assert.equal(c.failedAssertions, []);
  for (const name of names) assert.is(fileOf(c, name).homeInterface, `isf-${shortIdOf(name)}`, name);
});

S('interfaces: two tunnels with one name are refused, a name the CLI would refuse does not evaluate', () => {
  if (!ready()) return;
  const c = evaluate({
    web: { ports: ['443'], tokenFile: '/run/secrets/t', name: 'averylongname-x' },
    other: { ports: ['80'], tokenFile: '/run/secrets/t', interface: 'isf-avery-b7c0' },
  });
  assert.is(c.failedAssertions.length, 2, c.failedAssertions.join('\n'));
  assert.match(
    c.failedAssertions.join('\n'),
    'services.innisfree.tunnels.other.interface: isf-avery-b7c0 is also the interface of web on this host',
  );
  for (const bad of ['eth0', 'isf-', 'isf-twelve-chars', 'isf-a b'])
    assert.throws(
      () => evaluate({ web: { ports: ['443'], tokenFile: '/run/secrets/t', interface: bad } }),
      /interface|not of type/,
      bad,
    );
});

S('refuses a missing token, a token in the store and empty ports, saying what to do', () => {
  if (!ready()) return;
  const c = evaluate({
    a: { ports: ['443/tcp'] },
    b: { ports: ['443/tcp'], tokenFile: '/nix/store/0000-token' },
    d: { ports: [], tokenFile: '/run/secrets/t' },
  });
  const text = c.failedAssertions.join('\n');
  assert.is(c.failedAssertions.length, 3);
  assert.match(text, 'services.innisfree.tunnels.a.tokenFile is not set');
  assert.match(text, 'services.innisfree.tunnels.b.tokenFile is in the Nix store');
  assert.match(text, 'services.innisfree.tunnels.d.ports is empty');
});

S('nothing is configured without tunnels', () => {
  if (!ready()) return;
  const c = evaluate({});
  assert.equal(c.services, {});
  assert.equal(c.failedAssertions, []);
  assert.is(c.users.innisfree, undefined);
});

S.run();

/** The long flags `innisfree up` accepts: those of plan's tunnel options in src/cli.ts (up shares them) plus --keep. */
/** The flags `innisfree up` takes, from its own --help (what the module passes must be among them). */
function cliTunnelFlags(): string[] {
  const help = spawnSync(process.execPath, [cliPath, 'up', '--help'], { encoding: 'utf8' });
  assert.is(help.status, 0, help.stderr);
  return [...help.stdout.matchAll(/^\s+(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1]!);
}
