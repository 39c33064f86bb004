// modules/home.nix evaluated with nixpkgs' lib and the stub option declarations: each tunnel becomes a hardened
// `innisfree-<name>` service running `innisfree up --keep` with flags the CLI really has, the token as a systemd
// credential, and a firewall opening only the tunnel's local ports on its WireGuard interface.
// Needs NIXPKGS_LIB pointing at a nixpkgs (or nixpkgs.lib) checkout; without it the suite says it skipped.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import { hasNix, nixpkgsLib, repoRoot, run, skipped } from '../helpers/nix.js';

interface Service {
  wantedBy: string[];
  after: string[];
  path: string[];
  environment: Record<string, string>;
  launcher: string;
  serviceConfig: Record<string, unknown>;
  reloadTriggers: string[];
  restartIfChanged: boolean;
  reloadIfChanged: boolean;
}

interface Evaluated {
  failedAssertions: string[];
  services: Record<string, Service>;
  etc: Record<string, { source: string; text: string | null }>;
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

S('a tunnel becomes innisfree-<name> running `innisfree up --keep` with the CLI flags', () => {
  if (!ready()) return;
  const c = evaluate({ web });
  assert.equal(c.failedAssertions, []);
  assert.equal(Object.keys(c.services), ['innisfree-web']);
  const service = c.services['innisfree-web']!;
  const argv = launcherArgv(service.launcher);
  assert.match(argv[0]!, /\/bin\/innisfree$/);
  assert.equal(argv.slice(1), [
    'up',
    '--keep',
    '--provider',
    'digitalocean',
    '--name',
    'web',
    '--file',
    '/etc/innisfree/tunnels/web.json',
    '--forwarding',
    'nginx',
    '--region',
    'fra1',
    '--image',
    'innisfree-edge',
    '--reserved-ip',
    '203.0.113.10',
    '--ipv6',
    '--token-file',
    '$CREDENTIALS_DIRECTORY/token',
  ]);
  // What a reload can change is in the tunnel file, not on the command line.
  const file = c.etc['innisfree/tunnels/web.json'];
  assert.ok(file, Object.keys(c.etc).join(', '));
  assert.equal(JSON.parse(file.text!), {
    ports: ['443/tcp', '80:8080', '27015-27030/udp', '8443:443/tcp'],
    destination: '192.168.1.20',
    proxyProtocol: ['8443'],
  });
  assert.equal(service.reloadTriggers, [file.source], 'the tunnel file is the reload trigger');
  // Every flag the launcher passes is one `innisfree up` declares (src/cli.ts tunnelOptions).
  const known = cliTunnelFlags();
  for (const arg of argv.filter((a) => a.startsWith('--')))
    assert.ok(known.includes(arg), `${arg} is a flag of the CLI`);
});

S('reservedIpv6 reaches the CLI as --reserved-ipv6', () => {
  if (!ready()) return;
  const { image: _image, ...stock } = web;
  const argv = launcherArgv(evaluate({ web: { ...stock, reservedIpv6: 'new' } }).services['innisfree-web']!.launcher);
  const at = argv.indexOf('--reserved-ipv6');
  assert.ok(at > 0, argv.join(' '));
  assert.is(argv[at + 1], 'new');
  assert.ok(cliTunnelFlags().includes('--reserved-ipv6'));
});

S('kernel forwarding at home: --home-forwarding and --masquerade reach the CLI; nft is on PATH', () => {
  if (!ready()) return;
  const service = evaluate({ web: { ...web, homeForwarding: 'kernel', masquerade: true, ipv6: false } }).services[
    'innisfree-web'
  ]!;
  const argv = launcherArgv(service.launcher);
  const at = argv.indexOf('--home-forwarding');
  assert.ok(at > 0, argv.join(' '));
  assert.is(argv[at + 1], 'kernel');
  assert.is(
    JSON.parse(
      evaluate({ web: { ...web, homeForwarding: 'kernel', masquerade: true, ipv6: false } }).etc[
        'innisfree/tunnels/web.json'
      ]!.text!,
    ).masquerade,
    true,
    'masquerade is in the tunnel file',
  );
  const known = cliTunnelFlags();
  for (const arg of argv.filter((a) => a.startsWith('--')))
    assert.ok(known.includes(arg), `${arg} is a flag of the CLI`);
  assert.ok(
    service.path.some((p) => p.endsWith('-nftables')),
    'nftables on PATH',
  );
  // The PROXY version is in the tunnel file, with the other settings a reload can change.
  const v2 = JSON.parse(
    evaluate({ web: { ...web, proxyProtocolVersion: 2 } }).etc['innisfree/tunnels/web.json']!.text!,
  ) as Record<string, unknown>;
  assert.is(v2.proxyProtocolVersion, 2, 'proxyProtocolVersion reaches the CLI through the tunnel file');
  assert.not.ok(
    'proxyProtocolVersion' in (JSON.parse(evaluate({ web }).etc['innisfree/tunnels/web.json']!.text!) as object),
    'unset: the CLI default',
  );
  const plain = launcherArgv(evaluate({ web }).services['innisfree-web']!.launcher);
  assert.not.ok(
    plain.includes('--home-forwarding') || plain.includes('--masquerade') || plain.includes('--proxy-protocol-version'),
    'defaults leave the choice to the CLI',
  );
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
    const file = JSON.parse(c.etc['innisfree/tunnels/lan.json']!.text!) as { ports: string[] };
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

S(
  'ports, destinations, PROXY protocol and masquerade reload the unit; region, size, image and forwarding restart it',
  () => {
    if (!ready()) return;
    const base = evaluate({ web }).services['innisfree-web']!;
    assert.match(String(base.serviceConfig.ExecReload), /\/bin\/innisfree reload web$/);
    assert.is(base.restartIfChanged, true, "NixOS' default: a changed unit restarts");
    assert.is(base.reloadIfChanged, false, 'only the reload triggers reload');
    const unitOf = (s: Service) => JSON.stringify({ ...s, reloadTriggers: [] });
    const reloads = [{ ports: ['443/tcp', '8080/tcp'] }, { destination: '192.168.1.30' }, { proxyProtocol: [443] }];
    for (const change of reloads) {
      const changed = evaluate({ web: { ...web, ...change } }).services['innisfree-web']!;
      assert.is(
        unitOf(changed),
        unitOf(base),
        `${JSON.stringify(change)}: the unit is the same, so it is not restarted`,
      );
      assert.not.equal(
        changed.reloadTriggers,
        base.reloadTriggers,
        `${JSON.stringify(change)}: the reload trigger changed`,
      );
    }
    for (const change of [
      { region: 'ams3' },
      { size: 's-2vcpu-4gb' },
      { image: 'innisfree-edge-2' },
      { forwarding: 'nftables' },
    ]) {
      const changed = evaluate({ web: { ...web, ...change } }).services['innisfree-web']!;
      assert.is.not(
        changed.launcher,
        base.launcher,
        `${JSON.stringify(change)}: the launcher changed, so the unit restarts`,
      );
    }
  },
);

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
  for (const tool of ['wireguard-tools', 'iproute2', 'openssh', 'nix', 'deploy-rs']) {
    assert.ok(
      service.path.some((p) => p.endsWith(`-${tool}`)),
      `${tool} on PATH`,
    );
  }
});

S('the firewall opens the local ports on the tunnel interface; DNAT tunnels get loose reverse-path checks', () => {
  if (!ready()) return;
  const c = evaluate({
    web: { ...web, name: 'averylongname-x' },
    dns: { ports: ['53/udp,53/tcp'], forwarding: 'nftables', destination: 'none', tokenFile: '/run/secrets/t' },
    off: { ports: ['1/tcp'], tokenFile: '/run/secrets/t', enable: false },
    closed: { ports: ['25/tcp'], tokenFile: '/run/secrets/t', openFirewall: false },
  });
  assert.equal(Object.keys(c.services).sort(), ['innisfree-averylongname-x', 'innisfree-closed', 'innisfree-dns']);
  assert.equal(c.firewall.interfaces, {
    'isf-avery-b7c0': {
      allowedTCPPortRanges: [
        { from: 443, to: 443 },
        { from: 8080, to: 8080 },
      ],
      allowedUDPPortRanges: [{ from: 27015, to: 27030 }],
    },
    'isf-dns': { allowedTCPPortRanges: [{ from: 53, to: 53 }], allowedUDPPortRanges: [{ from: 53, to: 53 }] },
  });
  assert.is(c.firewall.checkReversePath, 'loose');
  assert.is(evaluate({ web }).firewall.checkReversePath, true, 'unchanged without DNAT tunnels');
  assert.ok(c.kernelModules.includes('wireguard'));
  assert.is(c.users.innisfree?.isSystemUser, true);
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
function cliTunnelFlags(): string[] {
  const source = readFileSync(join(repoRoot, 'src', 'cli.ts'), 'utf8');
  const block = source.slice(source.indexOf('function tunnelOptions'), source.indexOf('const COMMANDS'));
  return [...block.matchAll(/--([a-z0-9-]+)/g)].map((m) => `--${m[1]}`);
}
