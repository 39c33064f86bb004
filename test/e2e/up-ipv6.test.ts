// `innisfree up --ipv6` with the local provider: the edge and the internet client get 2001:db8 addresses, and the
// public ports answer over IPv6 through the same Nix-rendered config as on a NixOS edge.
// - nginx (the default): `--ports 80:28080/tcp,53/udp` — curl over IPv6 and a UDP query over IPv6 from the internet
//   namespace reach services on 127.0.0.1 here; a PROXY-aware service reads the IPv6 client's address from the
//   PROXY header; SIGTERM leaves no IPv6 address, route or rule behind.
// - nftables: the edge DNATs IPv6 into the tunnel (its ULA), home kernel forwarding hands it to a service on [::],
//   which sees the IPv6 client's own address over TCP and UDP; `down` leaves nothing behind.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { type AddressInfo, type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import { runCli } from '../helpers/cli.js';
import {
  type EdgeFootprint,
  assertNothingLeft,
  footprintOf,
  localProviderUnavailable,
  randomTunnelName,
} from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';
import { type UpProcess, startUp } from '../helpers/up-process.js';

const unavailable = localProviderUnavailable();

interface World {
  dir: ReturnType<typeof makeTempDir>;
  env: Record<string, string>;
  provider: LocalProvider;
  processes: UpProcess[];
  names: string[];
  closers: Array<() => void>;
}

const world = {} as World;
const U = suite('up --ipv6 (local provider)');

function up(name: string, args: string[]): UpProcess {
  world.names.push(name);
  const process = startUp(['--provider', 'local', '--name', name, '--ipv6', ...args], world.env);
  world.processes.push(process);
  return process;
}

/** A TCP service that answers every connection with PEER <its remote address> and closes. */
async function peerService(host: string, port = 0): Promise<number> {
  const server: Server = createServer((socket) => {
    socket.on('error', () => {});
    socket.end(`PEER ${socket.remoteAddress}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  world.closers.push(() => server.close());
  return (server.address() as AddressInfo).port;
}

/** A UDP service that answers each datagram with PEER <its sender's address>. */
async function udpPeerService(family: 'udp4' | 'udp6', host: string, port = 0): Promise<number> {
  const socket = createSocket({ type: family, ipv6Only: false });
  socket.on('message', (_m, remote) => socket.send(`PEER ${remote.address}`, remote.port, remote.address));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, resolve);
  });
  world.closers.push(() => socket.close());
  return socket.address().port;
}

/** A PROXY protocol v1 service: answers with the client address the header names. */
async function proxyAwareService(): Promise<number> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    let header = '';
    socket.on('data', (chunk: Buffer) => {
      header += chunk.toString('latin1');
      const end = header.indexOf('\r\n');
      if (end < 0) return;
      const [proxy, family, source] = header.slice(0, end).split(' ');
      socket.end(proxy === 'PROXY' ? `CLIENT ${family} ${source}\n` : `NO PROXY HEADER: ${header.slice(0, end)}\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  world.closers.push(() => server.close());
  return (server.address() as AddressInfo).port;
}

async function clientAsk(name: string, address: string, input = ''): Promise<string> {
  const result = await world.provider.runInClient(name, ['socat', '-T', '3', '-', address], {
    input,
    timeoutMs: 20_000,
  });
  return result.stdout.trim() || `(no answer: ${result.exitCode} ${result.stderr.trim()})`;
}

function stateOf(name: string): {
  home: { interface: string; address6?: string };
  edge: { wireguard: { interface: string } };
} {
  const dir = join(world.env.INNISFREE_STATE_DIR!, name);
  return {
    home: JSON.parse(readFileSync(join(dir, 'home.json'), 'utf8')),
    edge: JSON.parse(readFileSync(join(dir, 'edge', 'edge.json'), 'utf8')),
  };
}

async function footprint(name: string): Promise<EdgeFootprint> {
  const { home, edge } = stateOf(name);
  assert.ok(home.address6, 'the tunnel carries IPv6 inside (a ULA /64)');
  const ula = `${home.address6!.split('::')[0]}::`;
  return footprintOf((await world.provider.localEdge(name))!, [home.interface, edge.wireguard.interface], [ula]);
}

U.before(() => {
  if (unavailable) return;
  world.dir = makeTempDir('innisfree-up6-');
  world.env = {
    INNISFREE_STATE_DIR: join(world.dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(world.dir.path, 'local'),
    XDG_CONFIG_HOME: join(world.dir.path, 'config'),
  };
  world.provider = new LocalProvider({ env: world.env, runtimeDir: world.env.INNISFREE_LOCAL_DIR });
  world.processes = [];
  world.names = [];
  world.closers = [];
});

U.after(async () => {
  if (unavailable) return;
  for (const process of world.processes) await process.stop('SIGKILL');
  for (const name of world.names)
    await world.provider.destroyEdge(name, { emit: () => {}, signal: new AbortController().signal }).catch(() => {});
  for (const close of world.closers) close();
  world.dir.remove();
});

U(
  'nginx: curl and a UDP query over IPv6 reach home; PROXY protocol carries the IPv6 client; SIGTERM leaves nothing',
  async () => {
    if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
    const name = randomTunnelName();
    const http = await peerService('127.0.0.1', 28080);
    const dns = await udpPeerService('udp4', '127.0.0.1', 53);
    const proxied = await proxyAwareService();
    const tunnel = up(name, [
      '--ports',
      `80:${http}/tcp,53:${dns}/udp,8443:${proxied}/tcp`,
      '--proxy-protocol',
      '8443',
    ]);
    const ready = await tunnel.ready();
    const layout = (await world.provider.localEdge(name))!.layout;
    const { edge6, client6 } = layout.addresses;
    assert.ok(
      edge6?.startsWith('2001:db8:') && client6?.startsWith('2001:db8:'),
      `documentation-prefix addresses: ${edge6} ${client6}`,
    );
    assert.is(ready.ipv6, edge6, 'the ready event names the public IPv6');
    assert.match(
      String(ready.tryIt6),
      new RegExp(`ip netns exec ${layout.namespaces.client} curl .*http://\\[${edge6}\\]:80/`),
    );

    const curl = await world.provider.runInClient(
      name,
      [
        'curl',
        '-sS',
        '-6',
        '--max-time',
        '5',
        '-o',
        '/dev/null',
        '-w',
        '%{remote_ip}',
        '--http0.9',
        `http://[${edge6}]:80/`,
      ],
      { timeoutMs: 20_000 },
    );
    assert.is(curl.stdout.trim(), edge6, `curl over IPv6 reached the edge: ${curl.stderr}`);
    // nginx proxies over the tunnel's IPv4, so the service sees the tunnel address; the bytes are the service's.
    assert.match(await clientAsk(name, `TCP6:[${edge6}]:80,connect-timeout=5`), /^PEER /);
    assert.match(
      await clientAsk(name, `UDP6:[${edge6}]:53`, 'query\n'),
      /^PEER /,
      'a UDP query over IPv6 is answered from home',
    );
    assert.is(
      await clientAsk(name, `TCP6:[${edge6}]:8443,connect-timeout=5`),
      `CLIENT TCP6 ${client6}`,
      'the PROXY header names the IPv6 client',
    );
    assert.is(
      await clientAsk(name, `TCP4:${ready.ipv4}:8443,connect-timeout=5`),
      `CLIENT TCP4 ${layout.addresses.client}`,
    );

    const seen = await footprint(name);
    assert.is(await tunnel.stop('SIGTERM'), 0, tunnel.stderr());
    assertNothingLeft(seen);
  },
);

U('nftables: a service on [::] at home sees the IPv6 client over TCP and UDP; down leaves nothing', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const name = randomTunnelName();
  // Dual-stack sockets: IPv4 clients arrive DNATed to 127.0.0.1, IPv6 clients at the tunnel's ULA.
  const tcp = await peerService('::');
  const udp = await udpPeerService('udp6', '::');
  const tunnel = up(name, ['--forwarding', 'nftables', '--ports', `8080:${tcp}/tcp,5353:${udp}/udp`, '--keep']);
  const ready = await tunnel.ready();
  const { edge6, client6, client } = (await world.provider.localEdge(name))!.layout.addresses;
  assert.is(ready.ipv6, edge6);
  assert.is(await clientAsk(name, `TCP6:[${edge6}]:8080,connect-timeout=5`), `PEER ${client6}`);
  assert.is(await clientAsk(name, `UDP6:[${edge6}]:5353`, 'who\n'), `PEER ${client6}`);
  assert.is(
    await clientAsk(name, `TCP4:${ready.ipv4}:8080,connect-timeout=5`),
    `PEER ::ffff:${client}`,
    'IPv4 clients still arrive with their address',
  );

  const seen = await footprint(name);
  assert.is(await tunnel.stop('SIGTERM'), 0, tunnel.stderr());
  const down = await runCli(['down', name], world.env);
  assert.is(down.code, 0, down.stderr);
  assertNothingLeft(seen);
});

U.run();
