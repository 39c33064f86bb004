// The edge's nginx as the README's headline example uses it, end to end on the local provider (which runs the
// nginx.conf the Nix side renders): public 443/tcp and 80/tcp both serve, and a client that half-closes (sends,
// then shuts its write side, as `nc -N` or an HTTP/1.0 client may) still gets its reply through nginx.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Server, type Socket, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import { localProviderUnavailable, randomTunnelName } from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';
import { type UpProcess, startUp } from '../helpers/up-process.js';

const unavailable = localProviderUnavailable();
const S = suite('edge nginx: the headline 443/tcp,80/tcp tunnel and half-closing clients');

const world = {} as {
  dir: ReturnType<typeof makeTempDir>;
  env: Record<string, string>;
  name: string;
  provider: LocalProvider;
  servers: Server[];
  up?: UpProcess;
};

/** A service that answers only after the client finished sending: it replies to EOF with what it received. */
async function replyOnEof(tag: string): Promise<number> {
  const server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('end', () => socket.end(`${tag} got ${received} bytes\n`));
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  world.servers.push(server);
  return (server.address() as AddressInfo).port;
}

// Sends a request, shuts the write side, then reads until the server closes (or 5 s pass).
const HALF_CLOSE_CLIENT = `
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"x" * 1000)
s.shutdown(socket.SHUT_WR)
data = b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
sys.stdout.write(data.decode())
`;

async function halfCloseRequest(ipv4: string, port: number): Promise<string> {
  const result = await world.provider.runInClient(
    world.name,
    ['python3', '-c', HALF_CLOSE_CLIENT, ipv4, String(port)],
    { timeoutMs: 20_000 },
  );
  return result.stdout;
}

S.before(async () => {
  if (unavailable) return;
  world.dir = makeTempDir('innisfree-edge-nginx-');
  world.env = {
    INNISFREE_STATE_DIR: join(world.dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(world.dir.path, 'local'),
    XDG_CONFIG_HOME: join(world.dir.path, 'config'),
  };
  world.name = randomTunnelName();
  world.servers = [];
  world.provider = new LocalProvider({ env: world.env, runtimeDir: world.env.INNISFREE_LOCAL_DIR });
});

S.after(async () => {
  if (unavailable) return;
  await world.up?.stop('SIGKILL');
  await world.provider
    .destroyEdge(world.name, { emit: () => {}, signal: new AbortController().signal })
    .catch(() => {});
  for (const server of world.servers) server.close();
  world.dir.remove();
});

S('public 443/tcp and 80/tcp both answer, and a half-closing client gets its reply on each', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const https = await replyOnEof('https');
  const http = await replyOnEof('http');
  world.up = startUp(
    ['--provider', 'local', '--name', world.name, '--ports', `443:${https}/tcp,80:${http}/tcp`],
    world.env,
  );
  const ready = await world.up.ready();
  const ipv4 = ready.ipv4 as string;
  assert.is(await halfCloseRequest(ipv4, 443), 'https got 1000 bytes\n');
  assert.is(await halfCloseRequest(ipv4, 80), 'http got 1000 bytes\n');
  assert.is(await world.up.stop('SIGTERM'), 0, world.up.stderr());
});

S.run();
