// The forwarder on loopback, in-process: behaviour that needs no namespace (the namespace tests in test/e2e cover
// the same paths through a real WireGuard tunnel and the CLI).
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Forwarder, startForwarder } from '../../src/home/forwarder/index.js';
import { DataPlaneError } from '../../src/lib/errors.js';
import type { HomeForward } from '../../src/plan.js';
import { TunnelStatus } from '../../src/state/status.js';
import { type TrafficServer, runCheck, startTrafficServer } from '../helpers/traffic.js';

const LOOPBACK = '127.0.0.1';

function forward(protocol: 'tcp' | 'udp', targetPort: number, listenPort = 0): HomeForward {
  return { protocol, listenAddress: LOOPBACK, listenPort, targetHost: LOOPBACK, targetPort };
}

/** A port nothing listens on (bound and released at once). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function portOf(forwarder: Forwarder, protocol: 'tcp' | 'udp'): number {
  return forwarder.listeners().find((l) => l.protocol === protocol)!.port;
}

async function expectCheck(check: Parameters<typeof runCheck>[0]): Promise<string> {
  const result = await runCheck(check, 20_000);
  assert.ok(result.ok, `${check.kind}: ${result.detail}`);
  return result.detail;
}

async function until(what: string, probe: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

function openClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: LOOPBACK, port, allowHalfOpen: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with how the connection ended: "end" (FIN), an error code, or "open" if it is still up after ms. */
function closedWithin(socket: Socket, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('open'), ms);
    socket.once('end', () => {
      clearTimeout(timer);
      resolve('end');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code ?? 'error');
    });
    socket.resume();
  });
}

// ---
const tcp = suite('forwarder: TCP on loopback');
let server: TrafficServer;
let forwarder: Forwarder;

tcp.before.each(async () => {
  server = await startTrafficServer(LOOPBACK, 0);
  forwarder = await startForwarder([forward('tcp', server.port), forward('udp', server.port)]);
});
tcp.after.each(async () => {
  await forwarder.close();
  await server.close();
});

tcp('round trips with random payloads, half-close included, and counts the bytes', async () => {
  const port = portOf(forwarder, 'tcp');
  await expectCheck({ kind: 'tcp-echo', host: LOOPBACK, port, bytes: 1 });
  await expectCheck({ kind: 'tcp-echo', host: LOOPBACK, port, bytes: 300_000 });
  await expectCheck({ kind: 'tcp-upload', host: LOOPBACK, port, bytes: 8_000_000 });
  await expectCheck({ kind: 'tcp-download', host: LOOPBACK, port, bytes: 8_000_000 });
  await until('connections to close', () => forwarder.counters()[0]!.active === 0);
  const counters = forwarder.counters()[0]!;
  assert.is(counters.protocol, 'tcp');
  assert.is(counters.opened, 4);
  assert.is(counters.errors, 0);
  // Mode bytes, payloads, the 25-byte download header; replies: echoes, the 64-character hash, the download.
  assert.is(counters.bytesIn, 1 + 1 + 1 + 300_000 + 1 + 8_000_000 + 25);
  assert.is(counters.bytesOut, 1 + 300_000 + 64 + 8_000_000);
});

tcp('many concurrent connections', async () => {
  await expectCheck({
    kind: 'tcp-concurrent',
    host: LOOPBACK,
    port: portOf(forwarder, 'tcp'),
    connections: 200,
    bytes: 20_000,
  });
  await until('connections to close', () => forwarder.counters()[0]!.active === 0);
  assert.is(forwarder.counters()[0]!.opened, 200);
});

tcp('a reset connection does not disturb the others', async () => {
  const port = portOf(forwarder, 'tcp');
  const victim = await openClient(port);
  victim.write('E');
  victim.write(randomBytes(100_000));
  const healthy = expectCheck({ kind: 'tcp-upload', host: LOOPBACK, port, bytes: 20_000_000 });
  await delay(20);
  victim.resetAndDestroy();
  await healthy;
  await until('the reset to be counted', () => forwarder.counters()[0]!.errors === 1);
});

tcp('close() ends live connections promptly', async () => {
  const client = await openClient(portOf(forwarder, 'tcp'));
  client.write('E');
  await until('the connection to register', () => forwarder.counters()[0]!.active === 1);
  const ended = closedWithin(client, 3_000);
  const started = Date.now();
  await forwarder.close();
  assert.ok(Date.now() - started < 2_000, 'close() took too long');
  assert.is.not(await ended, 'open');
});

tcp.run();

// ---
const limits = suite('forwarder: TCP limits and failures');

limits('destination down: the client sees the connection closed and the error is counted', async () => {
  const dead = await freePort();
  const f = await startForwarder([forward('tcp', dead)]);
  try {
    const detail = await expectCheck({ kind: 'tcp-closed', host: LOOPBACK, port: portOf(f, 'tcp') });
    assert.match(detail, /closed by/);
    await until('the failure to be counted', () => f.counters()[0]!.errors === 1 && f.counters()[0]!.active === 0);
  } finally {
    await f.close();
  }
});

limits('backpressure: a service that does not read stops the client instead of filling memory', async () => {
  let held: Socket | undefined;
  const hash = createHash('sha256');
  let received = 0;
  const slow: Server = createServer((socket) => {
    held = socket;
    socket.pause();
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
    });
  });
  await new Promise<void>((resolve) => slow.listen(0, LOOPBACK, () => resolve()));
  const f = await startForwarder([forward('tcp', (slow.address() as { port: number }).port)]);
  try {
    const client = await openClient(portOf(f, 'tcp'));
    const total = 96 * 1024 * 1024;
    const sent = createHash('sha256');
    const chunk = randomBytes(1024 * 1024);
    for (let i = 0; i < total / chunk.length; i++) {
      client.write(chunk);
      sent.update(chunk);
    }
    client.end();
    await delay(500);
    const buffered = f.counters()[0]!.bytesIn;
    // What the forwarder took from the client is bounded by socket buffers, far below what the client queued.
    assert.ok(
      buffered < 40 * 1024 * 1024,
      `forwarder read ${buffered} bytes from a client whose service reads nothing`,
    );
    held!.resume();
    await until('all bytes to arrive', () => received === total, 20_000);
    assert.is(hash.digest('hex'), sent.digest('hex'));
    client.destroy();
  } finally {
    await f.close();
    await new Promise<void>((resolve) => slow.close(() => resolve()));
  }
});

limits('connection cap: connections over the cap are closed and counted, those under it work', async () => {
  const target = await startTrafficServer(LOOPBACK, 0);
  const f = await startForwarder([forward('tcp', target.port)], { maxConnections: 2 });
  try {
    const port = portOf(f, 'tcp');
    const first = await openClient(port);
    const second = await openClient(port);
    await until('two connections', () => f.counters()[0]!.active === 2);
    const third = await openClient(port);
    assert.is.not(await closedWithin(third, 2_000), 'open');
    assert.is(f.counters()[0]!.errors, 1);
    first.destroy();
    second.destroy();
    await until('the slots to free up', () => f.counters()[0]!.active === 0);
    await expectCheck({ kind: 'tcp-echo', host: LOOPBACK, port, bytes: 1000 });
  } finally {
    await f.close();
    await target.close();
  }
});

limits('idle timeout closes a silent connection and spares a busy one', async () => {
  const target = await startTrafficServer(LOOPBACK, 0);
  const f = await startForwarder([forward('tcp', target.port)], { tcpIdleTimeoutMs: 300 });
  try {
    const port = portOf(f, 'tcp');
    const idle = await openClient(port);
    idle.write('E');
    const busy = await openClient(port);
    busy.write('E');
    let echoed = 0;
    busy.on('data', (d: Buffer) => (echoed += d.length));
    const ticker = setInterval(() => busy.write('x'), 100);
    const idleEnd = closedWithin(idle, 2_000);
    await delay(900);
    clearInterval(ticker);
    assert.is.not(await idleEnd, 'open', 'the idle connection was not closed');
    assert.not.ok(busy.destroyed || busy.readableEnded, 'the busy connection was closed');
    assert.ok(echoed >= 5);
    busy.destroy();
  } finally {
    await f.close();
    await target.close();
  }
});

limits(
  'a listener that cannot bind fails the whole start, naming address and port, and leaves nothing bound',
  async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, LOOPBACK, () => resolve()));
    const busy = (holder.address() as { port: number }).port;
    const free = await freePort();
    try {
      await startForwarder([forward('tcp', 9, free), forward('tcp', 9, busy)]);
      assert.unreachable('started on a busy port');
    } catch (error) {
      assert.instance(error, DataPlaneError);
      assert.is((error as DataPlaneError).exitCode, 7);
      assert.match((error as Error).message, `cannot listen on 127.0.0.1:${busy}/tcp: the address is already in use`);
      assert.match((error as DataPlaneError).hint ?? '', /--destination none/);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
    // The listener that did bind was closed again.
    const again = createServer();
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.listen(free, LOOPBACK, () => resolve());
    });
    await new Promise<void>((resolve) => again.close(() => resolve()));
  },
);

limits('an address that is not on this host is explained', async () => {
  try {
    await startForwarder([
      { protocol: 'udp', listenAddress: '192.0.2.1', listenPort: 5000, targetHost: LOOPBACK, targetPort: 5000 },
    ]);
    assert.unreachable('bound a foreign address');
  } catch (error) {
    assert.instance(error, DataPlaneError);
    assert.match(
      (error as Error).message,
      'cannot listen on 192.0.2.1:5000/udp: 192.0.2.1 is not an address of this host',
    );
  }
});

limits('bad forwards are refused before anything binds', async () => {
  for (const bad of [
    { ...forward('tcp', 80), listenAddress: 'localhost' },
    { ...forward('tcp', 80), targetPort: 0 },
    { ...forward('udp', 80), targetHost: 'none' },
  ]) {
    try {
      await startForwarder([bad]);
      assert.unreachable(`accepted ${JSON.stringify(bad)}`);
    } catch (error) {
      assert.instance(error, DataPlaneError);
    }
  }
});

limits.run();

// ---
const udp = suite('forwarder: UDP on loopback');

function udpClient(): Promise<{
  send(port: number, data: Buffer): void;
  next(ms?: number): Promise<Buffer | undefined>;
  close(): void;
}> {
  const socket = createSocket('udp4');
  const inbox: Buffer[] = [];
  const waiters: Array<(message: Buffer) => void> = [];
  socket.on('message', (message: Buffer) => {
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else inbox.push(message);
  });
  return new Promise((resolve) =>
    socket.bind(0, LOOPBACK, () =>
      resolve({
        send: (port, data) => socket.send(data, port, LOOPBACK),
        next: (ms = 1_000) =>
          inbox.length > 0
            ? Promise.resolve(inbox.shift())
            : new Promise((done) => {
                const timer = setTimeout(() => {
                  waiters.splice(waiters.indexOf(waiter), 1);
                  done(undefined);
                }, ms);
                const waiter = (message: Buffer): void => {
                  clearTimeout(timer);
                  done(message);
                };
                waiters.push(waiter);
              }),
        close: () => socket.close(),
      }),
    ),
  );
}

udp('round trips, one session per client, replies to the right client, idle expiry', async () => {
  const target = await startTrafficServer(LOOPBACK, 0);
  const f = await startForwarder([forward('udp', target.port)], { udpIdleTimeoutMs: 300 });
  try {
    const port = portOf(f, 'udp');
    await expectCheck({ kind: 'udp-echo', host: LOOPBACK, port, datagrams: 50, size: 1200 });
    const a = await udpClient();
    const b = await udpClient();
    const payloadA = randomBytes(700);
    const payloadB = randomBytes(900);
    a.send(port, payloadA);
    b.send(port, payloadB);
    assert.equal(await a.next(), payloadA);
    assert.equal(await b.next(), payloadB);
    const counters = f.counters()[0]!;
    assert.is(counters.opened, 3);
    assert.is(counters.active, 3);
    assert.is(counters.bytesIn, 50 * 1200 + 700 + 900);
    assert.is(counters.bytesOut, 50 * 1200 + 700 + 900);
    await until('sessions to expire', () => f.counters()[0]!.active === 0, 2_000);
    // A client that comes back after expiry gets a fresh session and still its replies.
    a.send(port, payloadA);
    assert.equal(await a.next(), payloadA);
    assert.is(f.counters()[0]!.opened, 4);
    a.close();
    b.close();
  } finally {
    await f.close();
    await target.close();
  }
});

udp('session cap: datagrams from a client over the cap are dropped and counted', async () => {
  const target = await startTrafficServer(LOOPBACK, 0);
  const f = await startForwarder([forward('udp', target.port)], { maxUdpSessions: 1 });
  try {
    const port = portOf(f, 'udp');
    const a = await udpClient();
    const b = await udpClient();
    a.send(port, Buffer.from('first'));
    assert.equal((await a.next())?.toString(), 'first');
    b.send(port, Buffer.from('second'));
    assert.is(await b.next(300), undefined);
    assert.is(f.counters()[0]!.errors, 1);
    a.close();
    b.close();
  } finally {
    await f.close();
    await target.close();
  }
});

udp('destination down: the session ends on the ICMP error', async () => {
  const f = await startForwarder([forward('udp', await freePort())]);
  try {
    const a = await udpClient();
    a.send(portOf(f, 'udp'), Buffer.from('anyone?'));
    await until('the session to end', () => f.counters()[0]!.opened === 1 && f.counters()[0]!.active === 0);
    assert.is(f.counters()[0]!.errors, 1);
    a.close();
  } finally {
    await f.close();
  }
});

udp('counters have the shape status.json records', async () => {
  const f = await startForwarder([forward('tcp', 9), forward('udp', 9)]);
  try {
    const status = {
      version: 1,
      name: 'web',
      phase: 'ready',
      pid: 1,
      provider: 'local',
      updatedAt: new Date().toISOString(),
      edge: null,
      plannedConfigHash: null,
      deployedConfigHash: null,
      message: null,
      dataPlane: {
        sampledAt: new Date().toISOString(),
        interface: 'isf-web',
        latestHandshake: 0,
        rxBytes: 0,
        txBytes: 0,
        endpoint: null,
        ports: f.counters(),
      },
    };
    assert.ok(TunnelStatus.safeParse(status).success);
    assert.equal(
      f.counters().map((c) => c.protocol),
      ['tcp', 'udp'],
    );
  } finally {
    await f.close();
  }
});

udp.run();

// ---
const reload = suite('forwarder: update in place (reload)');

/** Writes a few bytes on an echo connection and resolves whether they came back. */
function echoes(socket: Socket, ms = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const payload = randomBytes(8).toString('hex');
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(payload)) done(true);
    };
    const timer = setTimeout(() => done(false), ms);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(ok);
    };
    socket.on('data', onData);
    socket.write(payload);
  });
}

reload(
  'a held connection on an unchanged port survives adding and removing another; the removed one closes after its grace',
  async () => {
    const target = await startTrafficServer(LOOPBACK, 0);
    const [portA, portB] = [await freePort(), await freePort()];
    const fwd = await startForwarder([forward('tcp', target.port, portA)]);
    try {
      const held = await openClient(portA);
      held.write('E');
      assert.ok(await echoes(held), 'A echoes');

      const added = await fwd.update([forward('tcp', target.port, portA), forward('tcp', target.port, portB)], 0);
      assert.equal(
        added.added.map((f) => f.listenPort),
        [portB],
      );
      assert.equal(added.removed, []);
      const onB = await openClient(portB);
      onB.write('E');
      assert.ok(await echoes(onB), 'B answers once added');
      assert.ok(await echoes(held), 'A survives adding B');
      assert.is(fwd.counters()[0]!.opened, 1, "A's counters carry on");

      const started = Date.now();
      const removed = await fwd.update([forward('tcp', target.port, portA)], 300);
      assert.equal(
        removed.removed.map((f) => f.listenPort),
        [portB],
      );
      assert.equal(
        fwd.listeners().map((l) => l.port),
        [portA],
        'B leaves the counters at once',
      );
      assert.is.not(await closedWithin(onB, 3_000), 'open', "B's connection is closed after the grace");
      assert.ok(Date.now() - started >= 250, `not before the grace (${Date.now() - started} ms)`);
      const refused = await openClient(portB).then(
        (s) => (s.destroy(), 'connected'),
        (e: NodeJS.ErrnoException) => e.code,
      );
      assert.is(refused, 'ECONNREFUSED');
      assert.ok(await echoes(held), 'A survives removing B');
      held.destroy();
    } finally {
      await fwd.close();
      await target.close();
    }
  },
);

reload('a listener that cannot bind fails the update and leaves the running ones as they were', async () => {
  const target = await startTrafficServer(LOOPBACK, 0);
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, LOOPBACK, () => resolve()));
  const taken = (blocker.address() as { port: number }).port;
  const portA = await freePort();
  const fwd = await startForwarder([forward('tcp', target.port, portA)]);
  try {
    const error = await fwd
      .update([forward('tcp', target.port, portA), forward('tcp', target.port, taken)], 0)
      .catch((e: unknown) => e);
    assert.instance(error, DataPlaneError);
    assert.match((error as Error).message, /already in use/);
    assert.equal(
      fwd.listeners().map((l) => l.port),
      [portA],
    );
    await expectCheck({ kind: 'tcp-echo', host: LOOPBACK, port: portA, bytes: 1000 });
  } finally {
    await fwd.close();
    await target.close();
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  }
});

reload.run();
