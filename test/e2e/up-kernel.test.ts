// `innisfree up --forwarding nftables` with the local provider and the default destination: kernel DNAT on the
// edge and at home, so TCP and UDP services on 127.0.0.1 here see the internet client's own address; `status` shows
// the nftables counters; a LAN host (the provider's destination namespace) that routes via this host sees it too.
// SIGTERM, and SIGKILL followed by the next run, leave no nftables table, rule, route or sysctl change behind.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { type AddressInfo, type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import { runCli } from '../helpers/cli.js';
import { localProviderUnavailable, randomTunnelName } from '../helpers/local-edge.js';
import { run } from '../helpers/netns.js';
import { makeTempDir } from '../helpers/tmp.js';
import { type UpProcess, startUp } from '../helpers/up-process.js';

const unavailable = localProviderUnavailable();

interface World {
  dir: ReturnType<typeof makeTempDir>;
  env: Record<string, string>;
  name: string;
  tcp: Server;
  tcpPort: number;
  udp: ReturnType<typeof createSocket>;
  udpPort: number;
  provider: LocalProvider;
  processes: UpProcess[];
}

const world = {} as World;
const U = suite('up: kernel forwarding at home (local provider, nftables edge)');

function up(args: string[]): UpProcess {
  const process = startUp(
    ['--provider', 'local', '--name', world.name, '--forwarding', 'nftables', ...args],
    world.env,
  );
  world.processes.push(process);
  return process;
}

async function clientAsk(ipv4: string, protocol: 'tcp' | 'udp', port: number): Promise<string> {
  const address = protocol === 'tcp' ? `TCP:${ipv4}:${port},connect-timeout=5` : `UDP:${ipv4}:${port}`;
  const result = await world.provider.runInClient(world.name, ['socat', '-T', '3', '-', address], {
    input: protocol === 'udp' ? 'who\n' : '',
    timeoutMs: 20_000,
  });
  return result.stdout.trim() || `(no answer: ${result.exitCode} ${result.stderr.trim()})`;
}

interface HomeJson {
  interface: string;
  forwarding: string;
  policyRouting: { table: number } | null;
}

function homeJson(): HomeJson {
  return JSON.parse(readFileSync(join(world.env.INNISFREE_STATE_DIR!, world.name, 'home.json'), 'utf8')) as HomeJson;
}

async function leftovers(home: HomeJson): Promise<string[]> {
  const found: string[] = [];
  const tables = (await run('nft', ['list', 'tables'])).stdout;
  if (tables.includes(`innisfree-home-${home.interface}`)) found.push(`nft table innisfree-home-${home.interface}`);
  const table = String(home.policyRouting?.table);
  for (const family of ['-4', '-6']) {
    const rules = JSON.parse((await run('ip', [family, '-j', 'rule', 'show'])).stdout || '[]') as Array<{
      table?: string;
    }>;
    if (rules.some((r) => r.table === table)) found.push(`ip ${family} rule into table ${table}`);
    if ((await run('ip', [family, 'route', 'show', 'table', table])).stdout.trim() !== '')
      found.push(`routes in table ${table}`);
  }
  if ((await run('ip', ['link', 'show', 'dev', home.interface])).code === 0) found.push(`link ${home.interface}`);
  return found;
}

const GLOBAL_SYSCTLS = [
  'net.ipv4.conf.all.route_localnet',
  'net.ipv4.conf.default.route_localnet',
  'net.ipv4.conf.all.forwarding',
  'net.ipv4.ip_forward',
];

async function globalSysctls(): Promise<string> {
  return (await run('sysctl', GLOBAL_SYSCTLS)).stdout;
}

U.before(async () => {
  if (unavailable) return;
  world.dir = makeTempDir('innisfree-upk-');
  world.env = {
    INNISFREE_STATE_DIR: join(world.dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(world.dir.path, 'local'),
    XDG_CONFIG_HOME: join(world.dir.path, 'config'),
  };
  world.name = randomTunnelName();
  world.processes = [];
  world.provider = new LocalProvider({ env: world.env, runtimeDir: world.env.INNISFREE_LOCAL_DIR });
  world.tcp = createServer((socket) => {
    socket.on('error', () => {});
    socket.end(`PEER ${socket.remoteAddress}\n`);
  });
  await new Promise<void>((resolve) => world.tcp.listen(0, '127.0.0.1', resolve));
  world.tcpPort = (world.tcp.address() as AddressInfo).port;
  world.udp = createSocket('udp4');
  world.udp.on('message', (_m, remote) => world.udp.send(`PEER ${remote.address}`, remote.port, remote.address));
  await new Promise<void>((resolve) => world.udp.bind(0, '127.0.0.1', resolve));
  world.udpPort = world.udp.address().port;
});

U.after(async () => {
  if (unavailable) return;
  for (const process of world.processes) await process.stop('SIGKILL');
  await world.provider
    .destroyEdge(world.name, { emit: () => {}, signal: new AbortController().signal })
    .catch(() => {});
  world.tcp.close();
  world.udp.close();
  world.dir.remove();
});

U('services on 127.0.0.1 see the internet client; status shows kernel counters; SIGTERM leaves nothing', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const sysctls = await globalSysctls();
  const tunnel = up(['--ports', `8080:${world.tcpPort}/tcp,5353:${world.udpPort}/udp`, '--keep']);
  const ready = await tunnel.ready();
  const ipv4 = ready.ipv4 as string;
  const home = homeJson();
  assert.is(home.forwarding, 'kernel', 'the default destination on a host with nft and root: kernel');
  const client = (await world.provider.localEdge(world.name))!.layout.addresses.client;
  assert.is(await clientAsk(ipv4, 'tcp', 8080), `PEER ${client}`);
  assert.is(await clientAsk(ipv4, 'udp', 5353), `PEER ${client}`);

  const status = await runCli(['status', world.name], world.env);
  assert.is(status.code, 0, status.stderr);
  // The running process samples every few seconds; the line is there from the first sample on.
  assert.match(status.stdout, new RegExp(`${world.tcpPort}/tcp\\s+\\d+ connections, in .*, out .* \\(kernel\\)`));
  assert.is(await tunnel.stop('SIGTERM'), 0, tunnel.stderr());
  assert.equal(await leftovers(home), []);
  assert.is(await globalSysctls(), sysctls, 'no global sysctl changed');
});

U('a LAN host that routes via this host sees the client (--home-forwarding kernel)', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const destination = await world.provider.ensureDestination(world.name);
  const layout = (await world.provider.localEdge(world.name))!.layout;
  // This host as the LAN host's router: it forwards towards it, and the LAN host's default route points here.
  await run('sysctl', ['-q', '-w', `net.ipv4.conf.${layout.links.destination}.forwarding=1`]);
  await run('ip', [
    '-n',
    destination.namespace,
    'route',
    'replace',
    'default',
    'via',
    layout.addresses.destinationGateway,
  ]);
  const service = spawn(
    'ip',
    [
      'netns',
      'exec',
      destination.namespace,
      'socat',
      `TCP-LISTEN:${world.tcpPort},bind=${destination.address},fork,reuseaddr`,
      'SYSTEM:echo PEER $SOCAT_PEERADDR',
    ],
    { stdio: 'ignore' },
  );
  try {
    for (
      let i = 0;
      i < 50 &&
      !(await run('ip', ['netns', 'exec', destination.namespace, 'ss', '-ltn'])).stdout.includes(`:${world.tcpPort}`);
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const tunnel = up([
      '--ports',
      `8080:${world.tcpPort}/tcp`,
      '--keep',
      '--destination',
      destination.address,
      '--home-forwarding',
      'kernel',
    ]);
    const ready = await tunnel.ready();
    const home = homeJson();
    assert.is(home.forwarding, 'kernel');
    assert.is(await clientAsk(ready.ipv4 as string, 'tcp', 8080), `PEER ${layout.addresses.client}`);
    assert.is(await tunnel.stop('SIGTERM'), 0, tunnel.stderr());
    assert.equal(await leftovers(home), []);
  } finally {
    service.kill('SIGKILL');
  }
});

U('after SIGKILL, the next up replaces what the crashed one left, and its SIGTERM leaves nothing', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const sysctls = await globalSysctls();
  const args = ['--ports', `8080:${world.tcpPort}/tcp,5353:${world.udpPort}/udp`, '--keep'];
  const crashed = up(args);
  await crashed.ready();
  const home = homeJson();
  await crashed.stop('SIGKILL');
  const stale = await leftovers(home);
  assert.ok(
    stale.includes(`nft table innisfree-home-${home.interface}`),
    `the crashed run left its table: ${stale.join(', ')}`,
  );
  const next = up(args);
  const ready = await next.ready();
  const tables = (await run('nft', ['list', 'tables'])).stdout
    .split('\n')
    .filter((l) => l.includes(`innisfree-home-${home.interface}`));
  assert.is(tables.length, 1, 'one table, not two');
  const client = (await world.provider.localEdge(world.name))!.layout.addresses.client;
  assert.is(await clientAsk(ready.ipv4 as string, 'tcp', 8080), `PEER ${client}`);
  assert.is(await next.stop('SIGTERM'), 0, next.stderr());
  assert.equal(await leftovers(home), []);
  assert.is(await globalSysctls(), sysctls);
});

U.run();
