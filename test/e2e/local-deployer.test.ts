// The local deployer on a real local edge: the Nix-rendered config applied in the edge namespace, a client in the
// internet namespace reaching home services (TCP and UDP) through nginx and a wireguard-go tunnel, a reload that
// keeps an open connection on an unchanged port, a failing activation rolled back, an unconfirmed activation
// reverted by the edge, and kernel DNAT with nftables.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { DeployRequest, SshTarget } from '../../src/edge/deployer-port.js';
import { readEdgeStatus } from '../../src/edge/edge-status.js';
import { pinHostKey } from '../../src/edge/known-hosts.js';
import { runSsh, waitReady } from '../../src/edge/ssh.js';
import { generateWireguardKeyPair } from '../../src/lib/keys.js';
import { systemClock, systemExec } from '../../src/lib/context.js';
import { RolledBackError } from '../../src/lib/errors.js';
import { type ProgressEvent, silent } from '../../src/lib/events.js';
import { LocalDeployer, LocalProvider } from '../../src/providers/local/index.js';
import { rendererPath } from '../../src/providers/local/rendered-edge.js';
import { type EdgeConfig, type EdgePort, serializeEdgeConfig } from '../../src/spec/edge-config.js';
import {
  type EdgeFootprint,
  assertNothingLeft,
  footprintOf,
  identityFor,
  localProviderUnavailable,
  randomTunnelName,
  specFor,
} from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';
import { wireguardSocketPath } from '../../src/home/wireguard.js';

const S = suite('local deployer: Nix-rendered config on a local edge');
const skip =
  localProviderUnavailable() ??
  (existsSync('/usr/bin/nix-instantiate') ? undefined : 'nix-instantiate is not installed');
const signal = new AbortController().signal;

interface World {
  runtime: { path: string; remove(): void };
  state: { path: string; remove(): void };
  provider: LocalProvider;
  name: string;
  edgeIp: string;
  clientNs: string;
  target: SshTarget;
  sshPublicKey: string;
  home: {
    key: ReturnType<typeof generateWireguardKeyPair>;
    interface: string;
    address: string;
    edgeAddress: string;
    process?: ChildProcess;
  };
  edgeInterface: string;
  servers: Array<{ close(): void }>;
  tornDown?: boolean;
}

let world: World;

/** A free /30 in 10.231.0.0/16 for the tunnel (home = .2, edge = .1), not on any interface here. */
function freeTunnelNet(): { edge: string; home: string } {
  const used = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
  for (;;) {
    const base = `10.231.${randomInt(0, 256)}.${randomInt(0, 64) * 4}`;
    const [a, b, c, d] = base.split('.').map(Number) as [number, number, number, number];
    const edge = `${a}.${b}.${c}.${d + 1}`;
    const home = `${a}.${b}.${c}.${d + 2}`;
    if (!used.includes(` ${edge}/`) && !used.includes(` ${home}/`)) return { edge, home };
  }
}

function edgeConfig(
  ports: Array<Omit<EdgePort, 'proxyProtocol'>>,
  forwarding: 'nginx' | 'nftables' = 'nginx',
): EdgeConfig {
  return {
    enable: true,
    name: world.name,
    ports: ports.map((p) => ({ ...p, proxyProtocol: false })),
    forwarding,
    ipv6: false,
    wireguard: {
      interface: world.edgeInterface,
      listenPort: 51820,
      address: `${world.home.edgeAddress}/30`,
      mtu: 1420,
      peer: { publicKey: world.home.key.publicKey, address: world.home.address },
    },
    ssh: { port: 22, authorizedKeys: [world.sshPublicKey] },
  };
}

/** Writes edge.json into the tunnel's edge/ directory, as `up` does, and returns its hash. */
function writeEdgeJson(config: EdgeConfig): string {
  const text = serializeEdgeConfig(config);
  const dir = join(world.state.path, 'edge');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'edge.json'), text);
  return createHash('sha256').update(text).digest('hex');
}

function request(configHash: string, events: ProgressEvent[] = []): DeployRequest {
  return {
    tunnel: world.name,
    edgeDir: join(world.state.path, 'edge'),
    configHash,
    target: world.target,
    emit: (e) => events.push(e),
    signal,
  };
}

function deployer(env: Record<string, string> = {}, confirmTimeoutSeconds = 30): LocalDeployer {
  return new LocalDeployer({ exec: systemExec, env, ssh: runSsh, confirmTimeoutSeconds });
}

/** Brings up the home end of the tunnel in this namespace (wireguard-go + wg), once the edge's key is known. */
async function bringUpHome(edgePublicKey: string, extraAllowed: string[] = []): Promise<void> {
  const { home } = world;
  if (!home.process) {
    home.process = spawn('wireguard-go', ['-f', home.interface], { stdio: 'ignore' });
    for (let i = 0; !existsSync(wireguardSocketPath(home.interface)); i++) {
      if (i > 100) throw new Error('home wireguard-go did not start');
      await delay(50);
    }
    const keyFile = join(world.state.path, 'home-wg.key');
    writeFileSync(keyFile, `${home.key.privateKey}\n`, { mode: 0o600 });
    execFileSync('wg', ['set', home.interface, 'private-key', keyFile]);
    execFileSync('ip', ['addr', 'add', `${home.address}/30`, 'dev', home.interface]);
    execFileSync('ip', ['link', 'set', home.interface, 'mtu', '1420', 'up']);
  }
  execFileSync('wg', [
    'set',
    home.interface,
    'peer',
    edgePublicKey,
    'endpoint',
    `${world.edgeIp}:51820`,
    'allowed-ips',
    [`${home.edgeAddress}/32`, ...extraAllowed].join(','),
    'persistent-keepalive',
    '1',
  ]);
}

/** TCP and UDP echo services on the home tunnel address, replying with a prefix so the path is unmistakable. */
async function startEcho(port: number, tag: string): Promise<void> {
  const tcp: Server = createServer((socket) => {
    socket.on('data', (data) => socket.write(`${tag}:${data.toString()}`));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(port, world.home.address, resolve));
  const udp = createSocket('udp4');
  udp.on('message', (message, from) => udp.send(`${tag}:${message.toString()}`, from.port, from.address));
  await new Promise<void>((resolve) => udp.bind(port, world.home.address, resolve));
  world.servers.push({ close: () => tcp.close() }, { close: () => udp.close() });
}

// A one-shot client: sends its text and prints the first reply (nothing after 2 s of silence or on an error). It
// keeps its side open until the reply, as real clients do (nginx closes a half-closed stream session at once).
const CLIENT = `
const [protocol, host, port, text] = process.argv.slice(1);
const done = (reply) => { process.stdout.write(reply); process.exit(0); };
setTimeout(() => done(''), 2000);
if (protocol === 'tcp') {
  const socket = require('node:net').connect(Number(port), host, () => socket.write(text));
  socket.on('data', (data) => done(data.toString()));
  socket.on('error', () => done(''));
} else {
  const socket = require('node:dgram').createSocket('udp4');
  socket.on('message', (data) => done(data.toString()));
  socket.send(text, Number(port), host);
}`;

/** One request from the internet client to the edge's public port; the reply, or "" when nothing came back. */
async function fromClient(protocol: 'tcp' | 'udp', port: number, text: string): Promise<string> {
  const result = await world.provider.runInClient(
    world.name,
    [process.execPath, '-e', CLIENT, protocol, world.edgeIp, String(port), text],
    {
      timeoutMs: 8000,
    },
  );
  return result.stdout;
}

/**
 * The first request after the home link or the edge's WireGuard changed: WireGuard may need a new handshake first
 * (up to ~15 s when one side kept a session the other lost), so ask again until the expected reply or 30 s passed.
 * Returns the last reply, so a wrong or missing one still fails the assertion that uses it.
 */
async function onceTunnelCarries(
  protocol: 'tcp' | 'udp',
  port: number,
  text: string,
  expected: string,
): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const reply = await fromClient(protocol, port, text);
    if (reply === expected || Date.now() > deadline) return reply;
    await delay(250);
  }
}

async function edgeStatus() {
  return readEdgeStatus(runSsh, world.target);
}

S.before(async () => {
  if (skip) return;
  const name = randomTunnelName();
  const runtime = makeTempDir('innisfree-localdep-rt-');
  const state = makeTempDir('innisfree-localdep-state-');
  const provider = new LocalProvider({ env: {}, runtimeDir: runtime.path });
  const identity = identityFor(name);
  const net = freeTunnelNet();
  const suffix = randomBytes(3).toString('hex');
  world = {
    runtime,
    state,
    provider,
    name,
    edgeIp: '',
    clientNs: '',
    target: undefined as unknown as SshTarget,
    sshPublicKey: identity.sshPublicKey,
    home: { key: generateWireguardKeyPair(), interface: `ith${suffix}`, address: net.home, edgeAddress: net.edge },
    edgeInterface: `ite${suffix}`,
    servers: [],
  };
  const { edge } = await provider.ensureEdge({ spec: specFor(name, '8080/tcp'), identity, emit: silent, signal });
  world.edgeIp = edge.ipv4;
  world.clientNs = await provider.clientNamespace(name);
  const keyPath = join(state.path, 'id_ed25519');
  writeFileSync(keyPath, identity.clientPrivateKey, { mode: 0o600 });
  world.target = {
    host: edge.ipv4,
    port: 22,
    user: 'root',
    privateKeyPath: keyPath,
    knownHostsPath: join(state.path, 'known_hosts'),
  };
  await pinHostKey(world.target.knownHostsPath, edge.ipv4, 22, identity.hostKey.publicKey);
  await waitReady(world.target, { timeoutMs: 10_000, clock: systemClock, emit: silent, signal });
});

/** Stops the home end and the edge; returns what they had made, captured while it still existed. */
async function tearDown(): Promise<EdgeFootprint | undefined> {
  for (const server of world.servers.splice(0)) server.close();
  if (world.home.process) {
    world.home.process.kill('SIGTERM');
    for (let i = 0; i < 60 && existsSync(wireguardSocketPath(world.home.interface)); i++) await delay(50);
    world.home.process = undefined;
  }
  const local = await world.provider.localEdge(world.name);
  const footprint = local ? footprintOf(local, [world.edgeInterface, world.home.interface]) : undefined;
  await world.provider.destroyEdge(world.name, { emit: silent, signal });
  world.runtime.remove();
  world.state.remove();
  return footprint;
}

// A safety net when a test failed before the last one ran; the last test checks the teardown itself.
S.after(async () => {
  if (!skip && !world.tornDown) await tearDown();
});

if (skip) {
  S('skipped', () => console.log(`  SKIPPED local deployer tests: ${skip}`));
} else {
  S('a TCP and a UDP port reach home services through nginx and the tunnel', async () => {
    const hash = writeEdgeJson(
      edgeConfig([
        { protocol: 'tcp', publicPort: 8080, localPort: 18080 },
        { protocol: 'udp', publicPort: 9000, localPort: 19000 },
      ]),
    );
    const events: ProgressEvent[] = [];
    const result = await deployer().apply(request(hash, events));
    assert.equal(result, { configHash: hash });
    assert.ok(
      events.some((e) => e.type === 'log' && /NixOS activation is the one thing it does not reproduce/.test(e.message)),
      'the deployer says what it does not reproduce',
    );
    assert.ok(
      events.some((e) => e.type === 'log' && e.source === 'local-edge' && /generation 1 is active/.test(e.message)),
    );

    const status = await edgeStatus();
    assert.is(status.configHash, hash);
    assert.is(status.wireguard.interface, world.edgeInterface);
    assert.ok(status.wireguard.up);
    // What nginx really bound, read with ss in the edge namespace: the planned public ports, nothing else.
    assert.equal(status.forwarder, {
      kind: 'nginx',
      active: true,
      listening: [
        { protocol: 'tcp', port: 8080 },
        { protocol: 'udp', port: 9000 },
      ],
    });
    assert.is(status.wireguard.peers[0]?.publicKey, world.home.key.publicKey);

    await bringUpHome(status.wireguard.publicKey!);
    await startEcho(18080, 'home-tcp');
    await startEcho(19000, 'home-udp');
    assert.is(await onceTunnelCarries('tcp', 8080, 'hello\n', 'home-tcp:hello\n'), 'home-tcp:hello\n');
    assert.is(await fromClient('udp', 9000, 'ping'), 'home-udp:ping');
    // The firewall opens exactly the public ports (and SSH, WireGuard): nothing else is reachable.
    assert.is(await fromClient('tcp', 18080, 'x'), '');
  });

  S('a reload with an added port keeps an open connection on an unchanged port', async () => {
    const client = spawn('ip', ['netns', 'exec', world.clientNs, 'socat', '-', `TCP:${world.edgeIp}:8080`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let received = '';
    client.stdout.on('data', (d: Buffer) => (received += d.toString()));
    const waitFor = async (text: string) => {
      for (let i = 0; !received.includes(text); i++) {
        if (i > 100) throw new Error(`no "${text}" on the open connection (got ${JSON.stringify(received)})`);
        await delay(50);
      }
    };
    try {
      client.stdin.write('before\n');
      await waitFor('home-tcp:before\n');
      await startEcho(18081, 'home-tcp2');
      const hash = writeEdgeJson(
        edgeConfig([
          { protocol: 'tcp', publicPort: 8080, localPort: 18080 },
          { protocol: 'udp', publicPort: 9000, localPort: 19000 },
          { protocol: 'tcp', publicPort: 8081, localPort: 18081 },
        ]),
      );
      await deployer().apply(request(hash));
      assert.is((await edgeStatus()).configHash, hash);
      client.stdin.write('after\n');
      await waitFor('home-tcp:after\n');
      assert.is(client.exitCode, null, 'the connection is still open');
      assert.is(await fromClient('tcp', 8081, 'new\n'), 'home-tcp2:new\n');
      assert.is(await fromClient('udp', 9000, 'still'), 'home-udp:still');
    } finally {
      client.kill('SIGTERM');
    }
  });

  S('a failing activation is rolled back: RolledBackError, and the old ports keep working', async () => {
    const before = (await edgeStatus()).configHash;
    await startEcho(18082, 'home-tcp3');
    const hash = writeEdgeJson(
      edgeConfig([
        { protocol: 'tcp', publicPort: 8080, localPort: 18080 },
        { protocol: 'tcp', publicPort: 8082, localPort: 18082 },
      ]),
    );
    try {
      await deployer({ INNISFREE_LOCAL_FAIL_ACTIVATION: '1' }).apply(request(hash));
      assert.unreachable('the activation was told to fail');
    } catch (error) {
      assert.instance(error, RolledBackError);
      assert.is((error as RolledBackError).exitCode, 6);
      assert.match(
        (error as Error).message,
        /rolled back: activation failed .*rolled back to generation 2; the previous configuration is still serving/,
      );
    }
    assert.is((await edgeStatus()).configHash, before);
    assert.is(await fromClient('tcp', 8080, 'old\n'), 'home-tcp:old\n');
    assert.is(await fromClient('tcp', 8081, 'old2\n'), 'home-tcp2:old2\n');
    assert.is(await fromClient('udp', 9000, 'u'), 'home-udp:u');
    assert.is(await fromClient('tcp', 8082, 'new\n'), '', 'the rolled-back port is closed');
  });

  S('an activation nobody confirms is reverted by the edge when the confirmation times out', async () => {
    const before = (await edgeStatus()).configHash;
    const config = edgeConfig([{ protocol: 'tcp', publicPort: 8083, localPort: 18080 }]);
    const edgeJson = serializeEdgeConfig(config);
    const renderedPath = join(world.state.path, 'edge', 'edge.json');
    writeFileSync(renderedPath, edgeJson);
    const rendered = JSON.parse(
      execFileSync(
        'nix-instantiate',
        ['--eval', '--strict', '--json', rendererPath(), '--argstr', 'edgeJson', renderedPath],
        { encoding: 'utf8' },
      ),
    );
    const configHash = createHash('sha256').update(edgeJson).digest('hex');
    // What the deployer does, minus the confirmation.
    const activation = await runSsh(world.target, 'innisfree-local-edge activate --confirm-timeout 1', {
      input: JSON.stringify({ edgeJson, rendered, configHash }),
    });
    assert.is(activation.exitCode, 0, activation.stderr);
    const { generation } = JSON.parse(activation.stdout) as { generation: number };
    assert.is((await edgeStatus()).configHash, configHash, 'active while waiting for confirmation');
    assert.is(await fromClient('tcp', 8083, 'brief\n'), 'home-tcp:brief\n');
    let reverted = false;
    for (let i = 0; i < 60 && !reverted; i++) {
      await delay(100);
      reverted = (await edgeStatus()).configHash === before;
    }
    assert.ok(reverted, 'the edge went back to the previous generation');
    assert.is(await fromClient('tcp', 8083, 'gone\n'), '');
    assert.is(await fromClient('tcp', 8080, 'kept\n'), 'home-tcp:kept\n');
    const late = await runSsh(world.target, `innisfree-local-edge confirm --generation ${generation}`);
    assert.is(late.exitCode, 3, 'a late confirmation is refused');
  });

  S('nftables forwarding: kernel DNAT over the tunnel, nginx stopped', async () => {
    const clientIp = world.clientNs ? (await world.provider.localEdge(world.name))!.layout.addresses.client : '';
    const hash = writeEdgeJson(
      edgeConfig(
        [
          { protocol: 'tcp', publicPort: 8080, localPort: 18080 },
          { protocol: 'udp', publicPort: 9000, localPort: 19000 },
        ],
        'nftables',
      ),
    );
    await deployer().apply(request(hash));
    const status = await edgeStatus();
    assert.is(status.configHash, hash);
    assert.equal(status.forwarder, { kind: 'nftables', active: true, listening: null });
    // Without masquerading, home sees the real client address and must answer it through the tunnel.
    await bringUpHome(status.wireguard.publicKey!, [`${clientIp}/32`]);
    execFileSync('ip', ['route', 'replace', `${clientIp}/32`, 'dev', world.home.interface]);
    try {
      assert.is(await onceTunnelCarries('tcp', 8080, 'dnat\n', 'home-tcp:dnat\n'), 'home-tcp:dnat\n');
      assert.is(await fromClient('udp', 9000, 'dnat-udp'), 'home-udp:dnat-udp');
      const nginx = await runSsh(world.target, 'ss -Hltnp | grep -c nginx || true');
      assert.is(nginx.stdout.trim(), '0', 'nginx no longer runs');
    } finally {
      execFileSync('ip', ['route', 'del', `${clientIp}/32`, 'dev', world.home.interface]);
    }
  });

  S('tearing down leaves no namespace, link, route, process, socket or file behind', async () => {
    world.tornDown = true;
    const footprint = await tearDown();
    assert.ok(footprint, 'the edge existed until now');
    assertNothingLeft(footprint!);
    assert.not.match(
      execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }),
      new RegExp(`: ${world.home.interface}:`),
      'home link left behind',
    );
  });
}

S.run();
