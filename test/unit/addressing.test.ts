import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { allocate, hostNetworksFromIp, shortIdOf, ula64 } from '../../src/addressing.js';
import { UsageError } from '../../src/lib/errors.js';

const pool = '10.50.0.0/16';

// ---
const A = suite('addressing');

A('deterministic for a name when free', () => {
  const first = allocate({ name: 'web', pool, hostNetworks: [], otherTunnels: [] });
  const second = allocate({ name: 'web', pool, hostNetworks: [], otherTunnels: [] });
  assert.equal(first, second);
  assert.match(first.edgeAddress, /^10\.50\.\d+\.\d+\/30$/);
  const [edge, home] = [first.edgeAddress, first.homeAddress].map((a) => Number(a.split('/')[0]!.split('.')[3]));
  assert.is(home, edge! + 1, 'edge is the first host, home the second');
  assert.is(edge! % 4, 1);
});

A('different names usually get different slots', () => {
  const a = allocate({ name: 'web', pool, hostNetworks: [], otherTunnels: [] });
  const b = allocate({ name: 'game', pool, hostNetworks: [], otherTunnels: [] });
  assert.is.not(a.index, b.index);
});

A('skips a slot that collides with an address or route on this host', () => {
  const free = allocate({ name: 'web', pool, hostNetworks: [], otherTunnels: [] });
  const taken = allocate({
    name: 'web',
    pool,
    hostNetworks: [{ cidr: free.edgeAddress, device: 'eth0' }],
    otherTunnels: [],
  });
  assert.is.not(taken.index, free.index);
  const routed = allocate({
    name: 'web',
    pool,
    hostNetworks: [{ cidr: `${free.homeAddress.split('/')[0]}/32`, device: 'tun0' }],
    otherTunnels: [],
  });
  assert.is.not(routed.index, free.index);
});

A("ignores networks on the tunnel's own stale interface", () => {
  const free = allocate({ name: 'web', pool, hostNetworks: [], otherTunnels: [] });
  const again = allocate({
    name: 'web',
    pool,
    hostNetworks: [{ cidr: free.homeAddress, device: free.interface }],
    otherTunnels: [],
    previous: free,
  });
  assert.is(again.index, free.index);
});

A('never collides with another tunnel in the state directory', () => {
  const web = allocate({ name: 'web', pool, hostNetworks: [], otherTunnels: [] });
  // Force the same starting slot by giving the other tunnel the slot "web" would take.
  const other = allocate({
    name: 'other',
    pool,
    hostNetworks: [],
    otherTunnels: [{ name: 'web', allocation: web }],
    previous: { ...web, interface: 'isf-other' },
  });
  assert.is.not(other.index, web.index);
  assert.is.not(other.interface, web.interface);
});

A('keeps the previous allocation when it is still free', () => {
  const previous = {
    ...allocate({ name: 'web', pool, hostNetworks: [], otherTunnels: [] }),
    index: 4242,
    edgeAddress: '10.50.66.73/30',
    homeAddress: '10.50.66.74/30',
  };
  assert.is(allocate({ name: 'web', pool, hostNetworks: [], otherTunnels: [], previous }).index, 4242);
});

A('fails clearly when a route covers the whole pool', () => {
  try {
    allocate({
      name: 'web',
      pool: '10.50.0.0/29',
      hostNetworks: [{ cidr: '10.0.0.0/8', device: 'vpn0' }],
      otherTunnels: [],
    });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, UsageError);
    assert.match((error as Error).message, /no free \/30/);
    assert.match((error as UsageError).hint!, /10\.0\.0\.0\/8 on vpn0.*--address-pool/);
  }
});

A('interface names fit 15 bytes and stay unique', () => {
  const long = 'a-very-long-tunnel-name-32-chars';
  const a = allocate({ name: long, pool, hostNetworks: [], otherTunnels: [] });
  assert.ok(Buffer.byteLength(a.interface) <= 15, a.interface);
  assert.ok(Buffer.byteLength(a.edgeInterface) <= 15, a.edgeInterface);
  const b = allocate({
    name: 'a-very-long-tunnel-name-32-char2',
    pool,
    hostNetworks: [],
    otherTunnels: [{ name: long, allocation: a }],
  });
  assert.ok(Buffer.byteLength(b.interface) <= 15);
  assert.is.not(a.interface, b.interface);
  assert.is(shortIdOf('web'), 'web');
});

A('a told home interface is used as it is, the edge mirrors it, and another tunnel holding it is refused', () => {
  const told = allocate({
    name: 'a-very-long-tunnel-name',
    pool,
    hostNetworks: [],
    otherTunnels: [],
    homeInterface: 'isf-house',
  });
  assert.is(told.interface, 'isf-house');
  assert.is(told.edgeInterface, 'ise-house');
  // An automatic pick steps around it, as around any other tunnel's interface.
  const auto = allocate({ name: 'house', pool, hostNetworks: [], otherTunnels: [{ name: 'x', allocation: told }] });
  assert.is.not(auto.interface, 'isf-house');
  try {
    allocate({
      name: 'other',
      pool,
      hostNetworks: [],
      otherTunnels: [{ name: 'x', allocation: told }],
      homeInterface: 'isf-house',
    });
    assert.unreachable('a taken interface name is refused');
  } catch (error) {
    assert.instance(error, UsageError);
    assert.match((error as UsageError).message, 'isf-house is already the interface of tunnel "x"');
  }
  // The same tunnel keeps its own name across runs.
  const again = allocate({
    name: 'x',
    pool,
    hostNetworks: [],
    otherTunnels: [{ name: 'x', allocation: told }],
    homeInterface: 'isf-house',
  });
  assert.is(again.interface, 'isf-house');
});

A('IPv6 ULA pair when asked', () => {
  const a = allocate({ name: 'web', pool, ipv6Pool: 'fd49:6e6e:6973::/48', hostNetworks: [], otherTunnels: [] });
  assert.is(a.edgeAddress6, `${ula64('fd49:6e6e:6973::/48', a.index)}::1/64`);
  assert.is(a.homeAddress6, `${ula64('fd49:6e6e:6973::/48', a.index)}::2/64`);
  assert.is(ula64('fd49:6e6e:6973::/48', 255), 'fd49:6e6e:6973:ff');
  assert.is(allocate({ name: 'web', pool, hostNetworks: [], otherTunnels: [] }).edgeAddress6, undefined);
});

A('reads ip -j output', () => {
  const addr = JSON.stringify([
    { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
    {
      ifname: 'eth0',
      addr_info: [
        { family: 'inet', local: '10.50.3.7', prefixlen: 24 },
        { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
      ],
    },
  ]);
  const route = JSON.stringify([
    { dst: 'default', gateway: '10.50.3.1', dev: 'eth0' },
    { dst: '10.50.3.0/24', dev: 'eth0', type: 'unicast' },
    { dst: '192.168.9.9', dev: 'tun0' },
    { dst: '127.0.0.0/8', dev: 'lo', type: 'local' },
  ]);
  assert.equal(hostNetworksFromIp(addr, route), [
    { cidr: '127.0.0.1/8', device: 'lo' },
    { cidr: '10.50.3.7/24', device: 'eth0' },
    { cidr: '10.50.3.0/24', device: 'eth0' },
    { cidr: '192.168.9.9/32', device: 'tun0' },
  ]);
});

A.run();
