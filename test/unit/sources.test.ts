import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../src/lib/errors.js';
import { envLayer, fileLayer, flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (error) {
    assert.instance(error, UsageError);
    return error as UsageError;
  }
  assert.unreachable('expected a UsageError');
  throw new Error('unreachable');
}

// ---
const precedence = suite('tunnel spec: sources and precedence');

precedence('flags beat environment beat tunnel file beat config defaults', () => {
  const spec = resolveTunnelSpec([
    flagLayer({ name: 'web', region: 'ams3' }),
    envLayer({ INNISFREE_REGION: 'fra1', INNISFREE_SIZE: 's-2vcpu-2gb', INNISFREE_PORTS: '443/tcp' }),
    fileLayer('web.json', { region: 'sfo3', size: 's-1vcpu-2gb', forwarding: 'nftables', ports: ['80'] }),
    fileLayer('config.json', { region: 'lon1', forwarding: 'nginx', mtu: 1380, tokenFile: '/run/token' }),
  ]);
  assert.is(spec.name, 'web');
  assert.is(spec.region, 'ams3', 'flag wins');
  assert.is(spec.size, 's-2vcpu-2gb', 'environment beats the file');
  assert.equal(
    spec.ports.map((p) => p.publicStart),
    [443],
    'environment ports beat the file',
  );
  assert.is(spec.forwarding, 'nftables', 'the file beats config defaults');
  assert.is(spec.mtu, 1380, 'config defaults fill the rest');
});

precedence('defaults', () => {
  const spec = resolveTunnelSpec([flagLayer({ name: 'web', ports: '443' })]);
  assert.is(spec.destination, '127.0.0.1');
  assert.is(spec.provider, 'digitalocean');
  assert.is(spec.bootstrap, 'nixos-anywhere', 'no image: install NixOS over Debian');
  assert.is(spec.size, 's-1vcpu-2gb', 'nixos-anywhere needs 2 GB');
  assert.is(spec.forwarding, 'nginx');
  assert.is(spec.edgeSshPort, 22);
  assert.is(spec.wireguardPort, 51820);
  assert.is(spec.addressPool, '10.50.0.0/16');
  assert.is(spec.keep, false);
});

precedence('an image implies image bootstrap and the small size', () => {
  const spec = resolveTunnelSpec([flagLayer({ name: 'web', ports: '443', image: '12345' })]);
  assert.is(spec.bootstrap, 'image');
  assert.is(spec.size, 's-1vcpu-1gb');
});

precedence('repeated --port and --ports combine', () => {
  const spec = resolveTunnelSpec([flagLayer({ name: 'web', ports: ['443', '80:8080'], port: '19132/udp' })]);
  assert.equal(
    spec.ports.map((p) => p.source),
    ['443', '80:8080', '19132/udp'],
  );
});

precedence('boolean environment values', () => {
  assert.is(resolveTunnelSpec([flagLayer({ name: 'a', ports: '1' }), envLayer({ INNISFREE_KEEP: 'yes' })]).keep, true);
  assert.is(resolveTunnelSpec([flagLayer({ name: 'a', ports: '1' }), envLayer({ INNISFREE_KEEP: '0' })]).keep, false);
});

precedence('tunnel files take port objects', () => {
  const spec = resolveTunnelSpec([
    fileLayer('t.json', {
      name: 'mail',
      ports: [
        { public: 443, proxyProtocol: true },
        { public: '8000-8001', local: '9000-9001', protocol: 'TCP' },
        '53/udp',
      ],
    }),
  ]);
  assert.equal(
    spec.ports.map((p) => [p.publicStart, p.publicEnd, p.localStart, p.protocol, p.proxyProtocol]),
    [
      [443, 443, 443, 'tcp', true],
      [8000, 8001, 9000, 'tcp', false],
      [53, 53, 53, 'udp', false],
    ],
  );
});

precedence.run();

// ---
const errors = suite('tunnel spec: every issue names its field and source');

errors('the name defaults to "default"', () => {
  assert.is(resolveTunnelSpec([flagLayer({ ports: '443' })]).name, 'default');
});

errors('missing ports', () => {
  assert.match(usageError(() => resolveTunnelSpec([flagLayer({ name: 'web' })])).message, /^ports: no port mappings/);
});

errors('bad name from a flag', () => {
  const error = usageError(() => resolveTunnelSpec([flagLayer({ name: 'Web_1', ports: '443' })]));
  assert.match(error.message, /^--name: must be 1-32 characters/);
});

errors('bad forwarding from the environment', () => {
  const error = usageError(() =>
    resolveTunnelSpec([flagLayer({ name: 'web', ports: '443' }), envLayer({ INNISFREE_FORWARDING: 'haproxy' })]),
  );
  assert.match(error.message, /^INNISFREE_FORWARDING: .*nginx.*nftables/);
});

errors('bad destination from a file', () => {
  const error = usageError(() =>
    resolveTunnelSpec([fileLayer('web.json', { name: 'web', ports: '443', destination: 'not a host' })]),
  );
  assert.match(error.message, /^web\.json: destination: must be an IPv4\/IPv6 address, a host name, or "none"/);
});

errors('several issues become several named lines', () => {
  const error = usageError(() =>
    resolveTunnelSpec([flagLayer({ name: 'web', ports: '443', provider: 'aws', reservedIp: '1.2.3' })]),
  );
  const lines = error.message.split('\n');
  assert.ok(
    lines.some((l) => l.startsWith('--provider: ')),
    error.message,
  );
  assert.ok(
    lines.some((l) => l.startsWith('--reserved-ip: must be an IPv4 address')),
    error.message,
  );
});

errors('unknown field in a file', () => {
  const error = usageError(() => fileLayer('config.json', { prots: '443' }));
  assert.match(error.message, /config\.json: .*unknown field "prots"/);
});

errors('wrong type in a file', () => {
  const error = usageError(() => fileLayer('web.json', { keep: 'yes' }));
  assert.match(error.message, /^web\.json: keep: /);
});

errors('non-numeric port option', () => {
  assert.match(
    usageError(() => flagLayer({ wireguardPort: 'abc' })).message,
    /^--wireguard-port: "abc" is not a whole number/,
  );
});

errors('non-boolean environment value', () => {
  assert.match(
    usageError(() => envLayer({ INNISFREE_IPV6: 'maybe' })).message,
    /^INNISFREE_IPV6: "maybe" is not a boolean/,
  );
});

errors('flag without value', () => {
  assert.match(usageError(() => flagLayer({ region: true })).message, /^--region: needs a value/);
});

errors('image bootstrap without an image', () => {
  const error = usageError(() => resolveTunnelSpec([flagLayer({ name: 'web', ports: '443', bootstrap: 'image' })]));
  assert.match(error.message, /--bootstrap: "image" needs an image/);
  assert.match(error.hint ?? '', /innisfree image upload/);
});

errors('nixos-anywhere on a 1 GB size', () => {
  const error = usageError(() => resolveTunnelSpec([flagLayer({ name: 'web', ports: '443', size: 's-1vcpu-1gb' })]));
  assert.match(error.message, /--size: "s-1vcpu-1gb" has 1 GB of RAM; nixos-anywhere needs 2 GB/);
});

errors('PROXY protocol with nftables forwarding', () => {
  const error = usageError(() =>
    resolveTunnelSpec([flagLayer({ name: 'web', ports: '443', proxyProtocol: '443', forwarding: 'nftables' })]),
  );
  assert.match(error.message, /PROXY protocol needs nginx forwarding/);
});

errors('reserved IP with the local provider', () => {
  const error = usageError(() =>
    resolveTunnelSpec([flagLayer({ name: 'web', ports: '443', provider: 'local', reservedIp: '192.0.2.7' })]),
  );
  assert.match(error.message, /--reserved-ip: only the digitalocean provider/);
});

errors('reserved ports follow the moved SSH port', () => {
  const error = usageError(() =>
    resolveTunnelSpec([flagLayer({ name: 'web', ports: '2222', edgeSshPort: 2222, provider: 'local' })]),
  );
  assert.match(error.message, /"2222".*SSH/);
});

errors('a moved SSH port on DigitalOcean is refused before anything is created', () => {
  const error = usageError(() =>
    resolveTunnelSpec([flagLayer({ name: 'web', ports: '443', edgeSshPort: 2222, image: '1' })]),
  );
  assert.match(error.message, /^--edge-ssh-port: DigitalOcean edges keep SSH on port 22/);
});

errors('home forwarding combinations that cannot work exit 2 with one line', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [
      { homeForwarding: 'kernel', destination: 'none' },
      /^--home-forwarding: kernel forwarding needs a destination, but the destination is "none"$/,
    ],
    [
      { homeForwarding: 'kernel', destination: 'nas.lan' },
      /^--home-forwarding: kernel forwarding needs an IPv4 destination, not "nas\.lan"$/,
    ],
    [
      { homeForwarding: 'kernel', destination: 'fd00::10' },
      /^--home-forwarding: kernel forwarding needs an IPv4 destination/,
    ],
    [
      { masquerade: true, homeForwarding: 'proxy', destination: '192.168.1.20' },
      /^--masquerade: only kernel forwarding masquerades/,
    ],
    [
      { masquerade: true, destination: 'none' },
      /^--masquerade: masquerading needs kernel forwarding to an IPv4 destination, not "none"$/,
    ],
    [{ masquerade: true, destination: 'nas.lan' }, /^--masquerade: masquerading needs kernel forwarding/],
    [{ masquerade: true }, /^--masquerade: the destination 127\.0\.0\.1 is this host/],
    [{ homeForwarding: 'turbo' }, /^--home-forwarding: .*"auto"\|"kernel"\|"proxy"/],
  ];
  for (const [flags, pattern] of cases) {
    const error = usageError(() => resolveTunnelSpec([flagLayer({ name: 'web', ports: '443', ...flags })]));
    assert.match(error.message, pattern, JSON.stringify(flags));
    assert.ok(error.hint, `a hint for ${JSON.stringify(flags)}`);
  }
});

errors('home forwarding from a tunnel file and the environment', () => {
  const spec = resolveTunnelSpec([
    fileLayer('web.json', {
      name: 'web',
      ports: ['443'],
      homeForwarding: 'kernel',
      destination: '192.168.1.20',
      masquerade: true,
    }),
  ]);
  assert.is(spec.homeForwarding, 'kernel');
  assert.is(spec.masquerade, true);
  const fromEnv = resolveTunnelSpec([envLayer({ INNISFREE_HOME_FORWARDING: 'proxy', INNISFREE_PORTS: '443' })]);
  assert.is(fromEnv.homeForwarding, 'proxy');
  assert.is(fromEnv.masquerade, false);
  assert.is(resolveTunnelSpec([flagLayer({ ports: '443' })]).homeForwarding, 'auto');
});

errors('per-port destinations from the flags, the environment and a tunnel file', () => {
  const flags = resolveTunnelSpec([flagLayer({ ports: '443/tcp@192.168.1.20,2222' })]);
  assert.equal(
    flags.ports.map((p) => p.destination),
    ['192.168.1.20', undefined],
  );
  assert.is(flags.destination, '127.0.0.1', 'the tunnel-wide destination stays the default');
  const env = resolveTunnelSpec([envLayer({ INNISFREE_PORTS: '53/udp@192.168.1.53' })]);
  assert.is(env.ports[0]!.destination, '192.168.1.53');
  const file = resolveTunnelSpec([
    fileLayer('web.json', {
      ports: ['80/tcp@192.168.1.21', { public: 443, local: 8443, destination: '192.168.1.20' }, { public: 2222 }],
      destination: '192.168.1.5',
    }),
  ]);
  assert.equal(
    file.ports.map((p) => p.destination),
    ['192.168.1.21', '192.168.1.20', undefined],
  );
  assert.is(file.ports[1]!.source, '443:8443/tcp@192.168.1.20');
  const fileError = usageError(() =>
    resolveTunnelSpec([fileLayer('web.json', { ports: [{ public: 443, destination: '300.1.1.1' }] })]),
  );
  assert.match(
    fileError.message,
    /^ports: "443\/tcp@300\.1\.1\.1" names the destination "300\.1\.1\.1", which is no IPv4 address/,
  );
});

errors('per-port destinations that cannot be combined exit 2 with one line', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [
      { ports: '443/tcp@192.168.1.20,2222', destination: 'none' },
      /^--ports: "443\/tcp@192\.168\.1\.20" names its own destination, but the tunnel's destination is "none"/,
    ],
    [
      { ports: '443/tcp@192.168.1.20,8443:443/tcp' },
      /^--ports: .* both arrive at local port tcp\/443 but name different destinations/,
    ],
    [
      { ports: '443/tcp@nas.lan,2222', homeForwarding: 'kernel' },
      new RegExp(
        /^--home-forwarding: kernel forwarding needs an IPv4 destination, not "nas\.lan" /.source +
          /\(--ports: "443\/tcp@nas\.lan"\)$/.source,
      ),
    ],
    [
      { ports: '443/tcp@fd00::20', homeForwarding: 'kernel' },
      /^--home-forwarding: kernel forwarding needs an IPv4 destination, not "fd00::20"/,
    ],
    [
      { ports: '443/tcp@nas.lan', masquerade: true, destination: '192.168.1.20' },
      /^--masquerade: masquerading needs kernel forwarding to an IPv4 destination, not "nas\.lan" \(--ports/,
    ],
    [
      { ports: '443/tcp@127.0.0.2,2222', masquerade: true },
      new RegExp(
        /^--masquerade: the destinations 127\.0\.0\.2, 127\.0\.0\.1 are this host; masquerading /.source +
          /applies to another host only$/.source,
      ),
    ],
    [
      { ports: '443/tcp@192.168.1.20', masquerade: true, homeForwarding: 'proxy' },
      /^--masquerade: only kernel forwarding masquerades/,
    ],
  ];
  for (const [flags, pattern] of cases) {
    const error = usageError(() => resolveTunnelSpec([flagLayer({ name: 'web', ...flags })]));
    assert.match(error.message, pattern, JSON.stringify(flags));
    assert.not.match(error.message, /\n/, 'one line');
    assert.ok(error.hint, `a hint for ${JSON.stringify(flags)}`);
    assert.is(error.exitCode, 2);
  }
  // Masquerading with one destination on another host is fine, even when the others are on this host.
  const mixed = resolveTunnelSpec([flagLayer({ ports: '443/tcp@192.168.1.20,2222', masquerade: true })]);
  assert.is(mixed.masquerade, true);
});

errors('PROXY protocol version: 1 by default, 2 from flag, environment or file; what cannot work is refused', () => {
  assert.is(resolveTunnelSpec([flagLayer({ ports: '443', proxyProtocol: '443' })]).proxyProtocolVersion, 1);
  assert.is(
    resolveTunnelSpec([flagLayer({ ports: '443', proxyProtocol: '443', proxyProtocolVersion: '2' })])
      .proxyProtocolVersion,
    2,
  );
  assert.is(
    resolveTunnelSpec([
      envLayer({ INNISFREE_PORTS: '443', INNISFREE_PROXY_PROTOCOL: 'all', INNISFREE_PROXY_PROTOCOL_VERSION: '2' }),
    ]).proxyProtocolVersion,
    2,
  );
  assert.is(
    resolveTunnelSpec([
      fileLayer('web.json', { ports: [{ public: 443, proxyProtocol: true }], proxyProtocolVersion: 2 }),
    ]).proxyProtocolVersion,
    2,
  );
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ports: '443', proxyProtocol: '443', proxyProtocolVersion: '3' }, /^--proxy-protocol-version: must be 1 or 2$/],
    [
      { ports: '443', proxyProtocolVersion: '2' },
      /^--proxy-protocol-version: no port of the tunnel has PROXY protocol/,
    ],
    [
      { ports: '443', proxyProtocol: '443', proxyProtocolVersion: '2', destination: 'none' },
      new RegExp(
        /^--proxy-protocol-version: PROXY v2 comes from the home forwarder, and with the /.source +
          /destination "none" there is none/.source,
      ),
    ],
    [
      { ports: '443', proxyProtocol: '443', proxyProtocolVersion: '2', homeForwarding: 'kernel' },
      new RegExp(
        /^--proxy-protocol-version: PROXY v2 comes from the home forwarder .* --home-forwarding /.source +
          /kernel passes bytes unchanged$/.source,
      ),
    ],
    [
      { ports: '443,8443:443', proxyProtocol: '443', proxyProtocolVersion: '2' },
      new RegExp(
        /^--proxy-protocol-version: "443" and "8443:443" arrive at local port tcp\/443, one with /.source +
          /PROXY protocol and one without$/.source,
      ),
    ],
    [{ ports: '53/udp', proxyProtocol: '53/udp' }, /^ports: "53\/udp" asks for PROXY protocol on UDP$/],
    [
      { ports: '443', proxyProtocol: '443', forwarding: 'nftables' },
      /^--proxy-protocol: PROXY protocol needs nginx forwarding$/,
    ],
  ];
  for (const [flags, pattern] of cases) {
    const error = usageError(() => resolveTunnelSpec([flagLayer({ name: 'web', ...flags })]));
    assert.match(error.message, pattern, JSON.stringify(flags));
    assert.ok(error.hint, `a hint for ${JSON.stringify(flags)}`);
  }
  const udpInFile = usageError(() =>
    resolveTunnelSpec([fileLayer('web.json', { ports: [{ public: 53, protocol: 'udp', proxyProtocol: true }] })]),
  );
  assert.match(udpInFile.message, /asks for PROXY protocol on UDP/);
});

errors.run();
