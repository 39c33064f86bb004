// Runs INSIDE the VM test bed (a kernel with wireguard.ko; see test/vm/kernel-path.test.ts), never on the host:
// `innisfree up --provider local` as a NixOS user's home host runs it, with kernel WireGuard at home and on the edge.
// TCP and UDP go through, status says the link is the kernel's, a SIGKILLed run's kernel link is replaced by the next
// run, and SIGTERM then `down` leave nothing behind.
import { createSocket } from 'node:dgram';
import { readFileSync, readdirSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalProvider } from '../../../src/providers/local/local-provider.js';
import { runCli } from '../../helpers/cli.js';
import { assertNothingLeft, footprintOf, randomTunnelName } from '../../helpers/local-edge.js';
import { run } from '../../helpers/netns.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { type UpProcess, startUp } from '../../helpers/up-process.js';

const U = suite('up with kernel WireGuard (inside the VM)');
const READY_MS = 300_000;

const dir = makeTempDir('innisfree-vm-up-');
const env = {
  INNISFREE_STATE_DIR: join(dir.path, 'state'),
  INNISFREE_LOCAL_DIR: join(dir.path, 'local'),
  XDG_CONFIG_HOME: join(dir.path, 'config'),
};
const name = randomTunnelName();
const provider = new LocalProvider({ env, runtimeDir: env.INNISFREE_LOCAL_DIR });
const processes: UpProcess[] = [];
let http: Server;
let httpPort = 0;
const udp = createSocket('udp4');

function up(ports: string): UpProcess {
  const process = startUp(['--provider', 'local', '--name', name, '--ports', ports, '--keep'], env);
  processes.push(process);
  return process;
}

function wireguardGoRunning(): boolean {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .some((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'wireguard-go';
      } catch {
        return false;
      }
    });
}

async function throughTunnel(ipv4: string, ports: { tcp: number; udp: number }): Promise<void> {
  const get = await provider.runInClient(
    name,
    ['curl', '-sS', '--max-time', '10', `http://${ipv4}:${ports.tcp}/kernel`],
    { timeoutMs: 30_000 },
  );
  assert.is(get.stdout, 'served /kernel\n', get.stderr);
  const echo = await provider.runInClient(name, ['socat', '-T', '5', '-', `UDP:${ipv4}:${ports.udp}`], {
    input: 'ping',
    timeoutMs: 30_000,
  });
  assert.is(echo.stdout, 'echo:ping');
}

function homeInterface(): string {
  return (JSON.parse(readFileSync(join(env.INNISFREE_STATE_DIR, name, 'home.json'), 'utf8')) as { interface: string })
    .interface;
}

U.before(async () => {
  http = createServer((req, res) => res.end(`served ${req.url}\n`));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  httpPort = (http.address() as AddressInfo).port;
  udp.on('message', (message, remote) =>
    udp.send(Buffer.concat([Buffer.from('echo:'), message]), remote.port, remote.address),
  );
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
});

U.after(async () => {
  for (const process of processes) await process.stop('SIGKILL');
  await provider.destroyEdge(name, { emit: () => {}, signal: new AbortController().signal }).catch(() => {});
  http.close();
  udp.close();
  dir.remove();
});

U(
  'kernel links at both ends carry TCP and UDP; status reads the kernel link; SIGKILL leaves a link the next up ' +
    'replaces',
  async () => {
    const ports = `8080:${httpPort}/tcp,5353:${udp.address().port}/udp`;
    const first = up(ports);
    const ready = await first.ready(READY_MS);
    const ipv4 = String(ready.ipv4);
    await throughTunnel(ipv4, { tcp: 8080, udp: 5353 });
    const ifname = homeInterface();
    assert.is(await linkKindOf(ifname), 'wireguard', 'the home link is a kernel device');
    const edge = await provider.localEdge(name);
    const edgeIf = (
      JSON.parse(readFileSync(join(env.INNISFREE_STATE_DIR, name, 'edge', 'edge.json'), 'utf8')) as {
        wireguard: { interface: string };
      }
    ).wireguard.interface;
    assert.is(await linkKindOf(edgeIf, edge!.layout.namespaces.edge), 'wireguard', 'the edge link is a kernel device');
    assert.not.ok(wireguardGoRunning(), 'no wireguard-go anywhere');

    // status samples the link periodically: wait for a sample that names the implementation.
    let report: { dataPlane?: { implementation?: string; rxBytes: number } | null } | undefined;
    for (let i = 0; i < 60 && !report?.dataPlane?.implementation; i++) {
      const status = await runCli(['status', name, '--json'], env);
      assert.is(status.code, 0, status.stderr);
      report = (JSON.parse(status.stdout) as { status: typeof report }).status;
      if (!report?.dataPlane?.implementation) await new Promise((r) => setTimeout(r, 1000));
    }
    assert.is(report?.dataPlane?.implementation, 'kernel');
    assert.ok((report?.dataPlane?.rxBytes ?? 0) > 0, 'rx counted by the kernel');
    const text = await runCli(['status', name], env);
    assert.match(text.stdout, new RegExp(`wireguard\\s+${ifname} \\(kernel\\)`));

    // A crash: no daemon dies with the process, so the kernel device stays until the next run replaces it.
    await first.stop('SIGKILL');
    assert.is(await linkKindOf(ifname), 'wireguard', 'a SIGKILLed run leaves its kernel link');
    const second = up(ports);
    const again = await second.ready(READY_MS);
    assert.is(String(again.ipv4), ipv4, 'the same edge');
    await throughTunnel(ipv4, { tcp: 8080, udp: 5353 });
    const links = (await run('ip', ['-o', 'link', 'show'])).stdout
      .split('\n')
      .filter((line) => line.includes(` ${ifname}:`));
    assert.is(links.length, 1, 'one link of that name');

    const footprint = footprintOf(edge!, [ifname, edgeIf]);
    assert.is(await second.stop('SIGTERM'), 0, second.stderr());
    assert.is(await linkKindOf(ifname), undefined, 'SIGTERM removed the home link');
    const down = await runCli(['down', name], env);
    assert.is(down.code, 0, down.stderr);
    assertNothingLeft(footprint);
  },
);

async function linkKindOf(ifname: string, netns?: string): Promise<string | undefined> {
  const result = await run('ip', [...(netns ? ['-n', netns] : []), '-d', '-j', 'link', 'show', 'dev', ifname]);
  if (result.code !== 0) return undefined;
  return (JSON.parse(result.stdout) as Array<{ linkinfo?: { info_kind?: string } }>)[0]?.linkinfo?.info_kind;
}

U.run();
