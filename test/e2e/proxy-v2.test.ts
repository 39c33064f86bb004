// PROXY protocol v2 end to end with real nginx on both sides, on loopback: an "edge" nginx stream server with
// `proxy_protocol on` (which sends v1, the only version nginx's stream module writes), the home forwarder of a
// tunnel planned with --proxy-protocol 443 --proxy-protocol-version 2, and a PROXY-aware service: nginx listening
// with `proxy_protocol`, answering with the client address it parsed. A tap between forwarder and service records
// the first bytes, so the test knows the header that nginx parsed was v2, not the v1 passed through.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startForwarder } from '../../src/home/forwarder/index.js';
import { plan } from '../../src/plan.js';
import { DEBIAN_STREAM_MODULE } from '../../src/providers/local/rendered-edge.js';
import { flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import { needsCommand } from '../helpers/netns.js';
import { makeTempDir } from '../helpers/tmp.js';

const S = suite('PROXY protocol v2 from the home forwarder, parsed by nginx');
const skip = needsCommand('nginx')();
const CLIENT = '127.0.0.9';
const V2_SIGNATURE = '0d0a0d0a000d0a515549540a';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Forwards to `port` and keeps the first bytes of each connection. */
async function tap(port: number, seen: Buffer[]): Promise<{ server: Server; port: number }> {
  const server = createServer((socket: Socket) => {
    let first = true;
    const upstream = connect(port, '127.0.0.1');
    socket.on('data', (chunk: Buffer) => {
      if (first) seen.push(Buffer.from(chunk.subarray(0, 28)));
      first = false;
      upstream.write(chunk);
    });
    socket.on('end', () => upstream.end());
    upstream.pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, port: (server.address() as { port: number }).port };
}

function ask(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: CLIENT });
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.on('end', () => resolve(text.trim()));
    socket.on('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer within 5 s')));
  });
}

if (skip) {
  console.log(`  SKIPPED: PROXY v2 with nginx: ${skip}`);
} else {
  S(
    'nginx (v1) → forwarder (v2) → nginx with proxy_protocol: the service parses the client address from a v2 header',
    async () => {
      const dir = makeTempDir('innisfree-proxy-v2-');
      const [edgePort, forwarderPort, servicePort] = [await freePort(), await freePort(), await freePort()];
      const seen: Buffer[] = [];
      const tapped = await tap(servicePort, seen);
      // The home side exactly as plan() makes it for this tunnel, listening on loopback instead of the tunnel address.
      const spec = resolveTunnelSpec([
        flagLayer({ name: 'web', ports: '443', proxyProtocol: '443', proxyProtocolVersion: '2' }),
      ]);
      const { home, edge } = plan({
        spec,
        allocation: {
          index: 0,
          pool: '10.50.0.0/16',
          interface: 'isf-web',
          edgeInterface: 'ise-web',
          homeAddress: '10.50.0.2/30',
          edgeAddress: '10.50.0.1/30',
        },
        keys: { homeWireguardPublicKey: `${'x'.repeat(42)}A=`, sshPublicKey: 'ssh-ed25519 AAAA test' },
      });
      assert.is(edge.ports[0]!.proxyProtocol, true, 'the edge sends PROXY (v1)');
      const forwarder = await startForwarder(
        home.forwards.map((f) => ({
          ...f,
          listenAddress: '127.0.0.1',
          listenPort: forwarderPort,
          targetPort: tapped.port,
        })),
      );
      const conf = join(dir.path, 'nginx.conf');
      writeFileSync(
        conf,
        [
          ...(existsSync(DEBIAN_STREAM_MODULE) ? [`load_module ${DEBIAN_STREAM_MODULE};`] : []),
          `pid ${join(dir.path, 'nginx.pid')};`,
          'error_log stderr warn;',
          'events { worker_connections 64; }',
          'stream {',
          // The edge: what nginx forwarding renders for a PROXY port.
          `  server { listen 127.0.0.1:${edgePort}; proxy_pass 127.0.0.1:${forwarderPort}; proxy_protocol on; }`,
          // The service: PROXY-aware, says what it parsed.
          `  server { listen 127.0.0.1:${servicePort} proxy_protocol; return "$proxy_protocol_addr ` +
            `$proxy_protocol_server_port\\n"; }`,
          '}',
          '',
        ].join('\n'),
      );
      const nginx = spawn('nginx', ['-p', dir.path, '-c', conf, '-g', 'daemon off;'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      nginx.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      try {
        let answer = '';
        for (let attempt = 0; attempt < 50 && answer === ''; attempt++) {
          answer = await ask(edgePort).catch(() => '');
          if (answer === '') await new Promise((r) => setTimeout(r, 100));
        }
        assert.is(
          answer,
          `${CLIENT} ${edgePort}`,
          `the service parsed the client address and the public port (nginx: ${stderr})`,
        );
        assert.ok(seen.length >= 1);
        assert.is(
          seen[seen.length - 1]!.subarray(0, 12).toString('hex'),
          V2_SIGNATURE,
          'the header the service parsed was v2',
        );
        assert.is(seen[seen.length - 1]![12], 0x21, 'version 2, PROXY command');
      } finally {
        nginx.kill('SIGTERM');
        await new Promise((r) => nginx.once('exit', r));
        await forwarder.close();
        tapped.server.close();
        dir.remove();
      }
    },
  );
}

S.run();
