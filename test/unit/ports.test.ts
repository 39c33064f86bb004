import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../src/lib/errors.js';
import {
  applyProxyProtocol,
  checkPortDestinations,
  expandPorts,
  formatPortRange,
  parsePortList,
  parsePortToken,
  validatePortSet,
} from '../../src/spec/ports.js';

const reserved = { ssh: 22, wireguard: 51820 };

function rejects(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (error) {
    assert.instance(error, UsageError);
    assert.match((error as Error).message, pattern);
    assert.is((error as UsageError).exitCode, 2);
    return;
  }
  assert.unreachable(`expected a UsageError matching ${pattern}`);
}

// ---
const parse = suite('ports: parsing');

parse('single port defaults to tcp and the same local port', () => {
  assert.equal(parsePortToken('443'), {
    protocol: 'tcp',
    publicStart: 443,
    publicEnd: 443,
    localStart: 443,
    localEnd: 443,
    proxyProtocol: false,
    source: '443',
  });
});

parse('protocol in any case', () => {
  assert.is(parsePortToken('19132/UDP').protocol, 'udp');
  assert.is(parsePortToken('19132/Udp').protocol, 'udp');
  assert.is(parsePortToken('80/TCP').protocol, 'tcp');
});

parse('public:local mapping', () => {
  const range = parsePortToken('80:8080/tcp');
  assert.is(range.publicStart, 80);
  assert.is(range.localStart, 8080);
});

parse('ranges on both sides', () => {
  const range = parsePortToken('8000-8010:9000-9010/tcp');
  assert.equal([range.publicStart, range.publicEnd, range.localStart, range.localEnd], [8000, 8010, 9000, 9010]);
  const udp = parsePortToken('27015-27030/udp');
  assert.equal([udp.publicStart, udp.publicEnd, udp.localStart, udp.localEnd], [27015, 27030, 27015, 27030]);
});

parse('comma-separated and repeated values combine', () => {
  const ranges = parsePortList(['443/tcp,80:8080/tcp', '19132/udp']);
  assert.equal(ranges.map(formatPortRange), ['443/tcp', '80:8080/tcp', '19132/udp']);
});

parse('whitespace around entries is ignored', () => {
  assert.equal(parsePortList([' 443/tcp , 80 ']).map(formatPortRange), ['443/tcp', '80/tcp']);
});

// ---
const reject = suite('ports: rejected input names the bad token');

reject('port above 65535', () => rejects(() => parsePortToken('70000/tcp'), /"70000\/tcp".*70000.*1-65535/));
reject('port 0', () => rejects(() => parsePortToken('0/udp'), /"0\/udp".*outside 1-65535/));
reject('local port out of range', () => rejects(() => parsePortToken('80:65536'), /"80:65536"/));
reject('unknown protocol', () => rejects(() => parsePortToken('53/sctp'), /"53\/sctp".*unknown protocol "sctp"/));
reject('garbage', () => rejects(() => parsePortToken('http'), /"http" is not a port mapping/));
reject('negative', () => rejects(() => parsePortToken('-5'), /"-5" is not a port mapping/));
reject('empty entry in a list', () => rejects(() => parsePortList(['80,,443']), /empty port mapping/));
reject('trailing comma', () => rejects(() => parsePortList(['80,']), /empty port mapping/));
reject('empty value', () => rejects(() => parsePortList(['']), /empty port mapping/));
reject('unequal range lengths', () =>
  rejects(
    () => parsePortToken('8000-8010:9000-9005/tcp'),
    /"8000-8010:9000-9005\/tcp" maps 11 public ports to 6 local ports/,
  ),
);
reject('range to single port', () =>
  rejects(() => parsePortToken('8000-8010:9000'), /maps 11 public ports to 1 local port/),
);
reject('backwards range', () => rejects(() => parsePortToken('9000-8000/tcp'), /runs backwards/));
reject('no mappings at all', () => rejects(() => validatePortSet([], reserved), /no port mappings/));
reject('duplicate public port', () =>
  rejects(
    () => validatePortSet(parsePortList(['443/tcp,443:8443/tcp']), reserved),
    /"443\/tcp" and "443:8443\/tcp".*given twice/,
  ),
);
reject('overlapping ranges', () =>
  rejects(
    () => validatePortSet(parsePortList(['8000-8010/udp', '8005/UDP']), reserved),
    /"8000-8010\/udp" and "8005\/UDP".*overlap/,
  ),
);
reject('edge SSH port', () => rejects(() => validatePortSet(parsePortList(['22/tcp']), reserved), /"22\/tcp".*SSH/));
reject('range covering the SSH port', () =>
  rejects(() => validatePortSet(parsePortList(['20-30']), reserved), /"20-30".*22\/tcp.*SSH/),
);
reject('WireGuard port', () =>
  rejects(() => validatePortSet(parsePortList(['51820/udp']), reserved), /"51820\/udp".*WireGuard/),
);
reject('moved SSH port is reserved instead', () =>
  rejects(() => validatePortSet(parsePortList(['2222/tcp']), { ssh: 2222, wireguard: 51820 }), /"2222\/tcp".*SSH/),
);
reject('PROXY protocol on udp', () =>
  rejects(
    () => validatePortSet([{ ...parsePortToken('53/udp'), proxyProtocol: true }], reserved),
    /PROXY protocol on UDP/,
  ),
);

reject.run();

// ---
const accept = suite('ports: accepted sets');

accept('same port number on tcp and udp is fine', () => {
  validatePortSet(parsePortList(['53/tcp,53/udp']), reserved);
});

accept('22/udp and 51820/tcp are not reserved', () => {
  validatePortSet(parsePortList(['22/udp,51820/tcp']), reserved);
});

accept('expansion is one entry per port, sorted', () => {
  const ports = expandPorts(parsePortList(['19132/udp', '8000-8002:9000-9002/tcp', '443']));
  assert.equal(
    ports.map((p) => `${p.publicPort}:${p.localPort}/${p.protocol}`),
    ['443:443/tcp', '8000:9000/tcp', '8001:9001/tcp', '8002:9002/tcp', '19132:19132/udp'],
  );
});

accept('PROXY protocol marks listed ports and splits ranges', () => {
  const ranges = applyProxyProtocol(parsePortList(['443,8000-8002/tcp,53/udp']), ['443,8001']);
  const ports = expandPorts(ranges);
  assert.equal(
    ports.map((p) => `${p.publicPort}/${p.protocol}${p.proxyProtocol ? '+pp' : ''}`),
    ['443/tcp+pp', '8000/tcp', '8001/tcp+pp', '8002/tcp', '53/udp'],
  );
});

accept('PROXY protocol "all" marks every TCP port', () => {
  const ports = expandPorts(applyProxyProtocol(parsePortList(['443,80/tcp,53/udp']), ['all']));
  assert.equal(
    ports.filter((p) => p.proxyProtocol).map((p) => p.publicPort),
    [80, 443],
  );
});

accept('PROXY protocol on a port that is not forwarded is rejected', () => {
  rejects(
    () => applyProxyProtocol(parsePortList(['443']), ['8443']),
    /"8443\/tcp" is not one of the tunnel's public ports/,
  );
});

// ---
const own = suite('ports: per-port destinations (PUBLIC[:LOCAL][/PROTO]@HOST)');

own('an address, an IPv6 address (bare or in brackets) or a host name after "@"', () => {
  const v4 = parsePortToken('443/tcp@192.168.1.20');
  assert.equal(
    { ...v4 },
    {
      protocol: 'tcp',
      publicStart: 443,
      publicEnd: 443,
      localStart: 443,
      localEnd: 443,
      proxyProtocol: false,
      destination: '192.168.1.20',
      source: '443/tcp@192.168.1.20',
    },
  );
  assert.is(parsePortToken('8000-8001:9000-9001/udp@nas.lan').destination, 'nas.lan');
  assert.is(parsePortToken('53@[fd00::53]').destination, 'fd00::53');
  assert.is(parsePortToken('53/udp@fd00::53').destination, 'fd00::53');
  assert.is(parsePortToken('443/tcp').destination, undefined, 'no "@": the tunnel destination');
  assert.equal(
    parsePortList(['443/tcp@192.168.1.20,80:8080@192.168.1.21,22']).map((r) => r.destination),
    ['192.168.1.20', '192.168.1.21', undefined],
  );
});

own('bad destinations are one line naming the mapping', () => {
  rejects(() => parsePortToken('443/tcp@'), /^ports: "443\/tcp@" has an empty destination after "@"$/);
  rejects(
    () => parsePortToken('443/tcp@256.1.1.1'),
    /^ports: "443\/tcp@256\.1\.1\.1" names the destination "256\.1\.1\.1", which is no IPv4 address/,
  );
  rejects(
    () => parsePortToken('443/tcp@no_such!host'),
    /names the destination "no_such!host", which is no address or host name/,
  );
  rejects(() => parsePortToken('443/tcp@none'), /names the destination "none"/);
  rejects(() => parsePortToken('443/tcp@a@b'), /names the destination "a@b"/);
  rejects(
    () => parsePortToken('443/tpc@192.168.1.20'),
    /^ports: "443\/tpc@192\.168\.1\.20" has unknown protocol "tpc"$/,
  );
});

own('expansion, ranges and the canonical text keep the destination', () => {
  const ranges = parsePortList(['8000-8002/tcp@192.168.1.20', '8003/tcp']);
  const ports = expandPorts(ranges);
  assert.equal(
    ports.map((p) => p.destination),
    ['192.168.1.20', '192.168.1.20', '192.168.1.20', undefined],
  );
  assert.equal(ranges.map(formatPortRange), ['8000-8002/tcp@192.168.1.20', '8003/tcp']);
  assert.is(formatPortRange(parsePortToken('53/udp@fd00::53')), '53/udp@[fd00::53]');
});

own('two mappings that arrive at one local port must name the same destination', () => {
  checkPortDestinations(parsePortList(['443/tcp@192.168.1.20', '8443:443/tcp@192.168.1.20']), '127.0.0.1');
  checkPortDestinations(parsePortList(['443/tcp@192.168.1.20', '443/udp@192.168.1.21']), '127.0.0.1');
  rejects(
    () => checkPortDestinations(parsePortList(['443/tcp@192.168.1.20', '8443:443/tcp']), '127.0.0.1'),
    new RegExp(
      /^ports: "443\/tcp@192\.168\.1\.20" and "8443:443\/tcp" both arrive at local port tcp\/443 /.source +
        /but name different destinations \(192\.168\.1\.20, 127\.0\.0\.1\)$/.source,
    ),
  );
  rejects(
    () => checkPortDestinations(parsePortList(['440-450/udp@a.lan', '1445:445/udp@b.lan']), '127.0.0.1'),
    /local port udp\/445/,
  );
});

own('--proxy-protocol names public ports, never a destination', () => {
  rejects(
    () => applyProxyProtocol(parsePortList(['443/tcp@192.168.1.20']), ['443@192.168.1.20']),
    /^--proxy-protocol: "443@192\.168\.1\.20" is not a public TCP port or range$/,
  );
  rejects(
    () => applyProxyProtocol(parsePortList(['443/tcp@192.168.1.20']), ['443/tcp@192.168.1.20']),
    /must name public ports only/,
  );
  assert.is(
    applyProxyProtocol(parsePortList(['443/tcp@192.168.1.20']), ['443'])[0]!.destination,
    '192.168.1.20',
    'marking keeps the destination',
  );
});

parse.run();
accept.run();
own.run();
