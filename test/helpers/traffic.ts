// Traffic for data-plane tests, usable in-process or as a separate process inside a namespace:
//   node traffic.js serve HOST PORT          TCP + UDP servers on HOST:PORT; prints "READY <port>"
//   node traffic.js check JSON               runs the checks in JSON (see Check) and prints one JSON result line
//
// TCP protocol: the client's first byte picks a mode.
//   'E'  echo everything until the client half-closes, then half-close back (tests half-close).
//   'H'  read until the client half-closes, then answer the sha256 (hex) of what arrived.
//   'S'  + 8-byte length + 16-byte seed: send that many bytes of AES-CTR keystream from the seed, then close.
// UDP: every datagram is echoed to its sender.
// Payloads are random or keystream, so a forwarder that reorders, drops or duplicates bytes is caught by the hash.
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { type Socket, connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { built } from './cli.js';

export interface TrafficServer {
  port: number;
  close(): Promise<void>;
}

export async function startTrafficServer(host: string, port: number): Promise<TrafficServer> {
  const sockets = new Set<Socket>();
  const tcp = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let chosen = false;
    // A client that half-closes before choosing a mode gets a half-close back.
    socket.once('end', () => chosen || socket.end());
    socket.once('readable', function first() {
      const head = socket.read(1) as Buffer | null;
      if (!head) return socket.once('readable', first);
      chosen = true;
      const mode = String.fromCharCode(head[0]!);
      if (mode === 'E') {
        socket.pipe(socket);
      } else if (mode === 'H') {
        const hash = createHash('sha256');
        socket.on('data', (chunk: Buffer) => hash.update(chunk));
        socket.on('end', () => socket.end(hash.digest('hex')));
      } else if (mode === 'S') {
        const readHeader = (): void => {
          const header = socket.read(24) as Buffer | null;
          if (!header) return void socket.once('readable', readHeader);
          streamKeystream(socket, header.readBigUInt64BE(0), header.subarray(8, 24));
        };
        readHeader();
      } else {
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => resolve());
  });
  const boundPort = (tcp.address() as { port: number }).port;
  const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  udp.on('message', (message, remote) => udp.send(message, remote.port, remote.address));
  udp.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(boundPort, host, () => resolve());
  });
  return {
    port: boundPort,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    },
  };
}

function keystream(seed: Buffer): (length: number) => Buffer {
  const cipher = createCipheriv('aes-128-ctr', seed, Buffer.alloc(16));
  return (length) => cipher.update(Buffer.alloc(length));
}

function streamKeystream(socket: Socket, total: bigint, seed: Buffer): void {
  const next = keystream(seed);
  let left = Number(total);
  const pump = (): void => {
    while (left > 0) {
      const size = Math.min(left, 256 * 1024);
      left -= size;
      if (!socket.write(next(size))) return void socket.once('drain', pump);
    }
    socket.end();
  };
  pump();
}

export type Check =
  | { kind: 'tcp-echo'; host: string; port: number; bytes: number }
  | { kind: 'tcp-upload'; host: string; port: number; bytes: number }
  | { kind: 'tcp-download'; host: string; port: number; bytes: number }
  | { kind: 'tcp-concurrent'; host: string; port: number; connections: number; bytes: number }
  | { kind: 'tcp-closed'; host: string; port: number }
  | { kind: 'udp-echo'; host: string; port: number; datagrams: number; size: number };

export interface CheckResult {
  kind: Check['kind'];
  ok: boolean;
  detail: string;
  ms: number;
}

export async function runCheck(check: Check, timeoutMs = 60_000): Promise<CheckResult> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const detail = await Promise.race([perform(check), timeout]);
    return { kind: check.kind, ok: true, detail, ms: Date.now() - started };
  } catch (error) {
    return { kind: check.kind, ok: false, detail: (error as Error).message, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

async function perform(check: Check): Promise<string> {
  switch (check.kind) {
    case 'tcp-echo':
      return tcpEcho(check.host, check.port, randomBytes(check.bytes));
    case 'tcp-upload':
      return tcpUpload(check.host, check.port, check.bytes);
    case 'tcp-download':
      return tcpDownload(check.host, check.port, check.bytes);
    case 'tcp-concurrent': {
      const results = await Promise.allSettled(
        Array.from({ length: check.connections }, () => tcpEcho(check.host, check.port, randomBytes(check.bytes))),
      );
      const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      if (failed.length > 0)
        throw new Error(
          `${failed.length}/${check.connections} connections failed: ${(failed[0]!.reason as Error).message}`,
        );
      return `${check.connections} connections echoed ${check.bytes} bytes each`;
    }
    case 'tcp-closed':
      return tcpClosed(check.host, check.port);
    case 'udp-echo':
      return udpEcho(check.host, check.port, check.datagrams, check.size);
  }
}

function open(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Sends payload after an 'E', half-closes, and expects exactly the payload back followed by the server's FIN. */
async function tcpEcho(host: string, port: number, payload: Buffer): Promise<string> {
  const socket = await open(host, port);
  const received: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(received)));
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed before the echo ended')));
  });
  socket.write('E');
  socket.end(payload);
  const echoed = await done;
  socket.destroy();
  if (!echoed.equals(payload)) throw new Error(`echo mismatch: sent ${payload.length} bytes, got ${echoed.length}`);
  return `echoed ${payload.length} bytes after half-close`;
}

async function tcpUpload(host: string, port: number, bytes: number): Promise<string> {
  const socket = await open(host, port);
  const seed = randomBytes(16);
  const next = keystream(seed);
  const local = createHash('sha256');
  let answer = '';
  const done = new Promise<string>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
  socket.write('H');
  let left = bytes;
  while (left > 0) {
    const chunk = next(Math.min(left, 256 * 1024));
    left -= chunk.length;
    local.update(chunk);
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  socket.end();
  const remote = await done;
  socket.destroy();
  const expected = local.digest('hex');
  if (remote !== expected) throw new Error(`upload hash mismatch: sent ${expected}, server saw ${remote || 'nothing'}`);
  return `uploaded ${bytes} bytes, sha256 ${expected.slice(0, 16)}… matches`;
}

async function tcpDownload(host: string, port: number, bytes: number): Promise<string> {
  const socket = await open(host, port);
  const seed = randomBytes(16);
  const header = Buffer.alloc(25);
  header.write('S', 0);
  header.writeBigUInt64BE(BigInt(bytes), 1);
  seed.copy(header, 9);
  const remote = createHash('sha256');
  let count = 0;
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      count += chunk.length;
      remote.update(chunk);
    });
    socket.on('end', resolve);
    socket.on('error', reject);
  });
  socket.end(header);
  await done;
  socket.destroy();
  const next = keystream(seed);
  const local = createHash('sha256');
  for (let left = bytes; left > 0; left -= 1 << 20) local.update(next(Math.min(left, 1 << 20)));
  const [got, want] = [remote.digest('hex'), local.digest('hex')];
  if (count !== bytes || got !== want)
    throw new Error(`download mismatch: ${count}/${bytes} bytes, sha256 ${got} vs ${want}`);
  return `downloaded ${bytes} bytes, sha256 ${want.slice(0, 16)}… matches`;
}

/** Connects and expects the far side to close the connection (FIN or RST) without sending anything. */
async function tcpClosed(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let data = 0;
    socket.on('data', (chunk: Buffer) => (data += chunk.length));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (data > 0) reject(new Error(`received ${data} bytes before ${error.code}`));
      else resolve(`closed by ${error.code}`);
    });
    socket.on('end', () => {
      socket.destroy();
      if (data > 0) reject(new Error(`received ${data} bytes before the close`));
      else resolve('closed by FIN');
    });
  });
}

async function udpEcho(host: string, port: number, count: number, size: number): Promise<string> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(port, host, () => resolve());
    });
    let retries = 0;
    for (let i = 0; i < count; i++) {
      const payload = randomBytes(Math.max(4, size));
      payload.writeUInt32BE(i, 0);
      for (let attempt = 0; ; attempt++) {
        const reply = await new Promise<Buffer | undefined>((resolve) => {
          const timer = setTimeout(() => finish(undefined), 500);
          const onMessage = (message: Buffer): void => {
            if (message.length >= 4 && message.readUInt32BE(0) === i) finish(message);
          };
          const finish = (value: Buffer | undefined): void => {
            clearTimeout(timer);
            socket.off('message', onMessage);
            resolve(value);
          };
          socket.on('message', onMessage);
          socket.send(payload);
        });
        if (reply) {
          if (!reply.equals(payload)) throw new Error(`datagram ${i} came back changed`);
          break;
        }
        retries++;
        if (attempt >= 5) throw new Error(`no reply to datagram ${i} after ${attempt + 1} tries`);
      }
    }
    return `${count} datagrams of ${size} bytes echoed${retries ? ` (${retries} retries)` : ''}`;
  } finally {
    socket.close();
  }
}

/** Runs checks from a separate process inside a namespace (the test process itself cannot enter one). */
export async function checksIn(
  ns: {
    run(
      command: string,
      args: readonly string[],
      options?: { timeoutMs?: number },
    ): Promise<{ code: number | null; stdout: string; stderr: string }>;
  },
  checks: Check[],
): Promise<CheckResult[]> {
  const result = await ns.run(process.execPath, [built('test/helpers/traffic.ts'), 'check', JSON.stringify(checks)], {
    timeoutMs: 180_000,
  });
  const line = result.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as CheckResult[];
  } catch {
    throw new Error(`traffic checks exited with ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
}

/** Fails with every failed check's detail. */
export function assertChecks(results: readonly CheckResult[]): void {
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) throw new Error(failed.map((r) => `${r.kind}: ${r.detail}`).join('; '));
}

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  if (command === 'serve') {
    const server = await startTrafficServer(args[0] ?? '127.0.0.1', Number(args[1] ?? 0));
    process.stdout.write(`READY ${server.port}\n`);
    const stop = (): void => void server.close().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    return;
  }
  if (command === 'check') {
    const checks = JSON.parse(args[0] ?? '[]') as Check[];
    const results = [];
    for (const check of checks) results.push(await runCheck(check));
    process.stdout.write(`${JSON.stringify(results)}\n`);
    process.exit(results.every((r) => r.ok) ? 0 : 1);
  }
  process.stderr.write('usage: traffic.js serve HOST PORT | traffic.js check JSON\n');
  process.exit(2);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
