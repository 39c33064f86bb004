// Pure parts of the local provider: layout, rendered-config wrappers, edge files, parsers; and the factory.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DeployRsDeployer } from '../../src/edge/deploy-rs.js';
import { systemClock, systemExec } from '../../src/lib/context.js';
import { LocalDeployer } from '../../src/providers/local/local-deployer.js';
import { silent } from '../../src/lib/events.js';
import { createProvider, providerKit } from '../../src/providers/index.js';
import { addressesOf, listeningPorts } from '../../src/providers/local/edge-agent.js';
import {
  agentWrapperText,
  edgeStatusEnvText,
  edgeStatusWrapperText,
  forwarderCheckFor,
  sshdConfigText,
} from '../../src/providers/local/edge-runtime-files.js';
import {
  DEFAULT_BLOCK6,
  DEFAULT_BLOCKS,
  SLOT_COUNT,
  hostNetworks6FromIp,
  layoutOf,
  parseCidr6,
  pickBlock6,
  pickBlocks,
  runtimePaths,
  slotCandidates,
} from '../../src/providers/local/layout.js';
import { hostNetworksFromIp } from '../../src/addressing.js';
import { ProviderError } from '../../src/lib/errors.js';
import {
  firewallRuleset,
  forwardingRuleset,
  nftPortSet,
  nginxConfText,
} from '../../src/providers/local/rendered-edge.js';

const S = suite('local provider: pure parts');

S('layout: documentation addresses, names unique per id and slot, ≤ 15-byte link names', () => {
  const layout = layoutOf('0a1b2c3d', 126);
  assert.equal(layout.addresses, {
    edge: '203.0.113.126',
    home: '198.51.100.126',
    client: '192.0.2.126',
    destination: '203.0.113.254',
    destinationGateway: '198.51.100.254',
  });
  assert.equal(layout.namespaces, {
    edge: 'isf-edge-0a1b2c3d',
    client: 'isf-inet-0a1b2c3d',
    destination: 'isf-dest-0a1b2c3d',
  });
  assert.is(layout.links.home, 'isl126e');
  for (const name of Object.values(layout.links)) assert.ok(name.length <= 15);
  assert.throws(() => layoutOf('0a1b2c3d', 0));
  assert.throws(() => layoutOf('0a1b2c3d', 127));
  assert.throws(() => layoutOf('../etc', 1));
  const candidates = slotCandidates('ffffffff');
  assert.is(candidates.length, SLOT_COUNT);
  assert.equal(
    [...candidates].sort((a, b) => a - b),
    Array.from({ length: SLOT_COUNT }, (_, i) => i + 1),
  );
});

S('layout: picked address blocks give every address', () => {
  const layout = layoutOf('0a1b2c3d', 7, { public: '203.0.113', link: '198.51.100', client: '198.18.0' });
  assert.equal(layout.addresses, {
    edge: '203.0.113.7',
    home: '198.51.100.7',
    client: '198.18.0.7',
    destination: '203.0.113.135',
    destinationGateway: '198.51.100.135',
  });
  assert.throws(() => layoutOf('0a1b2c3d', 7, { public: '203.0.113', link: '198.51', client: '198.18.0' }));
});

S('address blocks: none overlaps an address or route of this host; a LAN on 192.0.2.0/24 moves the clients', () => {
  // This very machine: eth0 is 192.0.2.2/24, its default route via 192.0.2.1.
  const devMachine = hostNetworksFromIp(
    JSON.stringify([
      { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
      { ifname: 'eth0', addr_info: [{ family: 'inet', local: '192.0.2.2', prefixlen: 24 }] },
    ]),
    JSON.stringify([
      { dst: 'default', gateway: '192.0.2.1', dev: 'eth0' },
      { dst: '192.0.2.0/24', dev: 'eth0' },
      { type: 'local', dst: '192.0.2.2', dev: 'eth0', table: 'local' },
    ]),
  );
  const blocks = pickBlocks(devMachine);
  assert.equal(blocks, { public: '203.0.113', link: '198.51.100', client: '198.18.0' });
  assert.equal(pickBlocks([]), DEFAULT_BLOCKS, 'free defaults are kept');
  // Other local edges' /32s on their isl<slot>e/d links are slots of the same blocks, not collisions.
  assert.equal(
    pickBlocks([
      { cidr: '203.0.113.5/32', device: 'isl5e' },
      { cidr: '198.51.100.133/32', device: 'isl5d' },
    ]),
    DEFAULT_BLOCKS,
  );
  // A route covering a block (any prefix), on any other device, moves that role to the next free block.
  assert.equal(
    pickBlocks([
      { cidr: '203.0.0.0/16', device: 'vpn0' },
      { cidr: '198.18.0.0/24', device: 'br0' },
    ]),
    { public: '198.18.1', link: '198.51.100', client: '192.0.2' },
  );
  const everything = [
    { cidr: '192.0.0.0/8', device: 'a' },
    { cidr: '198.0.0.0/8', device: 'b' },
    { cidr: '203.0.0.0/8', device: 'c' },
  ];
  assert.throws(
    () => pickBlocks(everything),
    (error: Error) =>
      error instanceof ProviderError && /no free address block left for a local edge/.test(error.message),
  );
});

S('IPv6 layout: the edge and the client get /128s of the picked 2001:db8 /48; none without a block', () => {
  const layout = layoutOf('0a1b2c3d', 126, DEFAULT_BLOCKS, '2001:db8:1f');
  assert.is(layout.addresses.edge6, '2001:db8:1f:1::7e');
  assert.is(layout.addresses.client6, '2001:db8:1f:3::7e');
  assert.is(layoutOf('0a1b2c3d', 126).addresses.edge6, undefined);
  assert.throws(() => layoutOf('0a1b2c3d', 1, DEFAULT_BLOCKS, 'fd00:1:2'), /2001:db8/);
  assert.throws(() => layoutOf('0a1b2c3d', 1, DEFAULT_BLOCKS, '2001:db8:1:2'));
});

S(
  'IPv6 block: none overlaps an IPv6 address or route of this host; link-local, multicast and default are no collision',
  () => {
    // This very machine: fd00::2/64 on eth0, link-local, multicast, a default route.
    const devMachine = hostNetworks6FromIp(
      JSON.stringify([
        { ifname: 'lo', addr_info: [{ family: 'inet6', local: '::1', prefixlen: 128 }] },
        {
          ifname: 'eth0',
          addr_info: [
            { family: 'inet', local: '192.0.2.2', prefixlen: 24 },
            { family: 'inet6', local: 'fd00::2', prefixlen: 64 },
            { family: 'inet6', local: 'fe80::fc:ff:fe00:1', prefixlen: 64 },
          ],
        },
      ]),
      JSON.stringify([
        { dst: 'fd00::/64', dev: 'eth0' },
        { dst: 'fe80::/64', dev: 'eth0' },
        { dst: 'default', gateway: 'fd00::1', dev: 'eth0' },
        { type: 'multicast', dst: 'ff00::/8', dev: 'eth0', table: 'local' },
        { type: 'local', dst: '::1', dev: 'lo', table: 'local' },
      ]),
    );
    assert.equal(devMachine, [
      { cidr: 'fd00::2/64', device: 'eth0' },
      { cidr: 'fd00::/64', device: 'eth0' },
    ]);
    assert.is(pickBlock6(devMachine), DEFAULT_BLOCK6);
    // A LAN in the documentation prefix (the default /48 or a covering route) moves the block on.
    assert.is(pickBlock6([{ cidr: '2001:db8:1f:5::2/64', device: 'eth1' }]), '2001:db8:100');
    assert.is(
      pickBlock6([
        { cidr: '2001:db8:1f::/48', device: 'eth1' },
        { cidr: '2001:db8:100::1/128', device: 'eth2' },
      ]),
      '2001:db8:101',
    );
    assert.throws(
      () => pickBlock6([{ cidr: '2001:db8::/32', device: 'vpn0' }]),
      (error: Error) => error instanceof ProviderError && /vpn0/.test(error.hint ?? ''),
    );
    assert.equal(parseCidr6('2001:db8:1f::/48'), { network: 0x20010db8001fn << 80n, prefix: 48 });
    assert.is(parseCidr6('2001:db8::1::2'), undefined);
    assert.is(parseCidr6('203.0.113.1/32'), undefined);
  },
);

S('nginx.conf wraps the rendered main, events and stream text with private pid and error log', () => {
  const nginxMain = {
    eventsConfig: 'worker_connections 24576;',
    appendConfig: 'worker_processes auto;\nworker_rlimit_nofile 50176;\n',
  };
  const text = nginxConfText(
    { nginxStream: 'server {\n    listen 80;\n    proxy_pass 10.50.0.2:8080;\n}\n', nginxMain },
    { pid: '/r/nginx.pid', errorLog: '/r/error.log' },
    true,
  );
  assert.is(
    text,
    [
      '# innisfree local edge: the Nix-rendered nginx configuration',
      'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
      'pid /r/nginx.pid;',
      'error_log /r/error.log notice;',
      'worker_processes auto;\nworker_rlimit_nofile 50176;',
      'events { worker_connections 24576; }',
      'stream {',
      'server {\n    listen 80;\n    proxy_pass 10.50.0.2:8080;\n}',
      '}',
      '',
    ].join('\n'),
  );
  assert.not.match(nginxConfText({ nginxStream: '', nginxMain }, { pid: 'p', errorLog: 'e' }, false), /load_module/);
});

S(
  'nft rules: compact port sets, an input firewall with SSH and WireGuard always open, atomic table replacement',
  () => {
    assert.is(nftPortSet([443, 80, 27016, 27015, 27017, 80]), '{ 80, 443, 27015-27017 }');
    const firewall = firewallRuleset({ tcp: [22, 443], udp: [19132, 51820] }, 2222, 51821);
    assert.match(
      firewall,
      /^table inet innisfree-firewall\ndelete table inet innisfree-firewall\ntable inet innisfree-firewall \{/,
    );
    assert.match(firewall, /policy drop;/);
    assert.match(firewall, /tcp dport \{ 22, 443, 2222 \} accept/);
    assert.match(firewall, /udp dport \{ 19132, 51820-51821 \} accept/);
    assert.is(
      forwardingRuleset({ family: 'inet', content: 'chain prerouting {\n}\n' }),
      'table inet innisfree\ndelete table inet innisfree\ntable inet innisfree {\nchain prerouting {\n}\n}\n',
    );
  },
);

S('edge files: sshd keys-only with the edge PATH; wrappers quote their paths; status settings', () => {
  const paths = runtimePaths('/run/innisfree/local', 'web');
  const sshd = sshdConfigText(paths, 2222);
  for (const line of [
    'Port 2222',
    'HostKey /run/innisfree/local/web/ssh_host_ed25519_key',
    'AuthorizedKeysFile /run/innisfree/local/web/authorized_keys',
    'PasswordAuthentication no',
    'PermitRootLogin prohibit-password',
    'SetEnv PATH=/run/innisfree/local/web/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ' +
      'HOME=/run/innisfree/local/web/home INNISFREE_LOCAL_EDGE_DIR=/run/innisfree/local/web',
  ]) {
    assert.ok(sshd.split('\n').includes(line), line);
  }
  assert.is(
    agentWrapperText("/opt/it's/node", '/a/agent.js'),
    `#!/bin/sh\nexec '/opt/it'\\''s/node' '/a/agent.js' "$@"\n`,
  );
  assert.is(
    edgeStatusEnvText({
      name: 'web',
      interface: 'ise-web',
      forwarding: 'nginx',
      hashFile: '/h',
      forwarderCheck: forwarderCheckFor('nginx', '/n/nginx.pid', 'inet'),
    }),
    [
      "INNISFREE_EDGE_NAME='web'",
      "INNISFREE_EDGE_INTERFACE='ise-web'",
      "INNISFREE_EDGE_FORWARDING='nginx'",
      "INNISFREE_EDGE_HASH_FILE='/h'",
      `INNISFREE_EDGE_FORWARDER_CHECK='kill -0 "$(cat '\\''/n/nginx.pid'\\'' 2>/dev/null)"'`,
      '',
    ].join('\n'),
  );
  assert.is(forwarderCheckFor('nftables', '/n', 'ip'), 'nft list table ip innisfree');
  assert.is(
    edgeStatusWrapperText('/e/status.env', '/p/nix/edge-status.sh'),
    "#!/bin/sh\nset -a\n. '/e/status.env'\nset +a\nexec bash '/p/nix/edge-status.sh'\n",
  );
});

S('parsers for ss and ip -j output', () => {
  const tcp = 'LISTEN 0      511          0.0.0.0:8080       0.0.0.0:*\nLISTEN 0 128 [::]:22 [::]:*\n';
  assert.equal(listeningPorts('tcp', tcp), ['tcp/8080', 'tcp/22']);
  assert.equal(listeningPorts('udp', 'UNCONN 0 0 0.0.0.0:9000 0.0.0.0:*\n'), ['udp/9000']);
  const json = JSON.stringify([
    {
      addr_info: [
        { local: '10.50.0.1', prefixlen: 30, scope: 'global' },
        { local: 'fe80::1', prefixlen: 64, scope: 'link' },
      ],
    },
  ]);
  assert.equal(addressesOf(json), ['10.50.0.1/30']);
});

S('the deployer for each provider', async () => {
  const ctx = { exec: systemExec, env: {} };
  assert.instance(await providerKit('local').deployer(ctx), LocalDeployer);
  assert.instance(await providerKit('digitalocean').deployer(ctx), DeployRsDeployer);
});

S('the provider factory makes the local provider', async () => {
  const provider = await createProvider('local', {
    clock: systemClock,
    emit: silent,
    env: { INNISFREE_LOCAL_DIR: '/nonexistent-innisfree' },
    signal: new AbortController().signal,
  });
  assert.is(provider.name, 'local');
  assert.equal(await provider.listEdges(), []);
  assert.is(await provider.findEdge('web'), undefined);
});

S.run();
