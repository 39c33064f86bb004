// TCP port forwarding: every accepted connection gets its own connection to the destination; bytes are copied both
// ways with backpressure (a full receiver pauses the sender), a FIN is passed on as a FIN (half-close), and a reset
// or error on one side resets the other. One connection's failure never touches another.
//
// The hot path is a read callback per direction that hands the bytes to the other socket's write: no allocation,
// logging or accounting per chunk (byte counts come from the sockets themselves). Reads land in pooled buffers
// (the `onread` option of net.Socket) rather than in a fresh buffer per read: a bulk transfer then creates no
// garbage, which keeps V8's collector out of the way — with per-read buffers it ran full collections many times a
// second and used most of the CPU the copy itself needs (see docs/benchmarks.md).
import { type Server, Socket, connect, createServer } from 'node:net';
import type { HomeForward } from '../../plan.js';
import { DataPlaneError } from '../../lib/errors.js';
import { type OnFatal, type PortCounters, type PortForwarder, bindError, describeListen } from './common.js';
import { translateV1 } from './proxy-header.js';

export interface TcpForwardOptions {
  /** Connections at once on this port; more are refused (closed at accept). */
  maxConnections: number;
  /** Close a connection after this long without a byte in either direction; 0: never. */
  idleTimeoutMs: number;
  /** Give up connecting to the destination after this long. */
  connectTimeoutMs: number;
}

// A socket keeps one buffer for its next read: a small one after a small read, so thousands of quiet connections
// stay cheap, and a large one once data streams.
const SMALL_BUFFER = 4 * 1024;
const LARGE_BUFFER = 64 * 1024;
// Enough to keep busy connections supplied; beyond that buffers go back to the allocator (4 MiB per pool at most).
const SMALL_POOL_LIMIT = 1024;
const LARGE_POOL_LIMIT = 64;
const smallPool: Buffer[] = [];
const largePool: Buffer[] = [];

function takeBuffer(large: boolean): Buffer {
  return (large ? largePool.pop() : smallPool.pop()) ?? Buffer.allocUnsafeSlow(large ? LARGE_BUFFER : SMALL_BUFFER);
}

function returnBuffer(buffer: Buffer): void {
  if (buffer.length === LARGE_BUFFER) {
    if (largePool.length < LARGE_POOL_LIMIT) largePool.push(buffer);
  } else if (smallPool.length < SMALL_POOL_LIMIT) {
    smallPool.push(buffer);
  }
}

/**
 * One direction of a connection: reads of the source socket (through `onread`) are written to `to`. A buffer handed
 * to write() stays in flight until its write callback (callbacks come in write order) and only then is reused.
 */
class Direction {
  to: Socket | undefined;
  private readonly inFlight: Buffer[] = [];
  private next: Buffer | undefined;
  private lastReadFilled = false;
  /** Set while a PROXY v1 header is awaited, to be passed on as v2 (the connection's first bytes only). */
  private header: { pending: Buffer; onInvalid: (reason: string) => void } | undefined;

  expectProxyV1(onInvalid: (reason: string) => void): void {
    this.header = { pending: Buffer.alloc(0), onInvalid };
  }

  get awaitingHeader(): boolean {
    return this.header !== undefined;
  }

  /** Bytes that are no pooled buffer (copied here), while the header is awaited. */
  readHeader(bytes: Buffer): boolean {
    const header = this.header!;
    header.pending = Buffer.concat([header.pending, bytes]);
    const parsed = translateV1(header.pending);
    if (parsed.state === 'incomplete') return true;
    this.header = undefined;
    if (parsed.state === 'invalid') {
      header.onInvalid(parsed.reason);
      return false;
    }
    return this.to!.write(Buffer.concat([parsed.v2, header.pending.subarray(parsed.length)]));
  }

  private readonly written = (): void => {
    returnBuffer(this.inFlight.shift()!);
  };

  readonly onread = {
    buffer: (): Buffer => (this.next = takeBuffer(this.lastReadFilled)),
    // Returning false pauses the source (readStop) until the destination drains.
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      const chunk = buffer as Buffer;
      this.lastReadFilled = bytes === chunk.length;
      this.next = undefined;
      if (this.header) {
        const more = this.readHeader(chunk.subarray(0, bytes));
        returnBuffer(chunk);
        return more;
      }
      this.inFlight.push(chunk);
      return this.to!.write(chunk.subarray(0, bytes), this.written);
    },
  };

  /** The buffer kept for the next read goes back to the pool once the source socket is closed. */
  release(): void {
    if (this.next) returnBuffer(this.next);
    this.next = undefined;
  }
}

/** Resets a socket (RST) where TCP allows it, else closes it: the far side learns the connection failed. */
function abort(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || socket.readyState === 'opening') socket.destroy();
  else socket.resetAndDestroy();
}

/**
 * net.Server cannot give accepted sockets an `onread` buffer, so the accepted connection's handle is moved into a
 * socket that has one. This relies on net.Socket's `_handle` (stable across Node releases, but not documented): where
 * it is missing the accepted socket is used as it is, with a `data` handler — correct, only slower.
 */
function adoptAccepted(accepted: Socket, direction: Direction): Socket {
  const holder = accepted as unknown as { _handle?: { readStart?: unknown } | null };
  const handle = holder._handle;
  if (!handle || typeof handle.readStart !== 'function') {
    accepted.on('data', (chunk: Buffer) => {
      const more = direction.awaitingHeader ? direction.readHeader(chunk) : direction.to!.write(chunk);
      if (!more) accepted.pause();
    });
    accepted.resume();
    return accepted;
  }
  holder._handle = null;
  accepted.destroy();
  return new Socket({
    handle,
    allowHalfOpen: true,
    readable: true,
    writable: true,
    onread: direction.onread,
  } as ConstructorParameters<typeof Socket>[0]);
}

export async function startTcpForward(
  forward: HomeForward,
  options: TcpForwardOptions,
  onFatal: OnFatal,
): Promise<PortForwarder> {
  const active = new Set<{ client: Socket; target: Socket }>();
  let opened = 0;
  let errors = 0;
  let closedBytesIn = 0;
  let closedBytesOut = 0;
  let closing = false;

  const handle = (accepted: Socket): void => {
    if (active.size >= options.maxConnections) {
      // Over the cap: refused at once, and counted.
      errors++;
      accepted.destroy();
      return;
    }
    opened++;
    const upstream = new Direction(); // public side → service
    const downstream = new Direction(); // service → public side
    // nginx sends PROXY v1; the service wants v2: a connection without a valid v1 header is reset.
    if (forward.proxyProtocol === 'v1-to-v2') upstream.expectProxyV1(() => fail());
    const client = adoptAccepted(accepted, upstream);
    client.setNoDelay(true);
    const target = connect({
      host: forward.targetHost,
      port: forward.targetPort,
      allowHalfOpen: true,
      noDelay: true,
      timeout: options.connectTimeoutMs,
      onread: downstream.onread,
    });
    upstream.to = target;
    downstream.to = client;
    const connection = { client, target };
    active.add(connection);

    let failed = false;
    let closedSockets = 0;
    const fail = (): void => {
      if (!failed) {
        failed = true;
        errors++;
      }
      abort(client);
      abort(target);
    };
    const onClose = (): void => {
      if (++closedSockets < 2) return;
      upstream.release();
      downstream.release();
      active.delete(connection);
      closedBytesIn += client.bytesRead;
      closedBytesOut += client.bytesWritten;
    };

    // Backpressure: a destination that drained lets its source read again.
    target.on('drain', () => client.resume());
    client.on('drain', () => target.resume());
    // Half-close: a FIN from one side becomes a FIN to the other; the other direction keeps flowing.
    client.on('end', () => target.end());
    target.on('end', () => client.end());

    target.once('connect', () => target.setTimeout(0));
    // Before 'connect' this is the connect timeout; afterwards the timer is off (idle is watched on the client).
    target.on('timeout', fail);
    if (options.idleTimeoutMs > 0) {
      // Reads and writes both re-arm a socket's timer, and every byte crosses the client socket one way or the
      // other, so its timer measures idleness of the whole connection.
      client.setTimeout(options.idleTimeoutMs, () => {
        abort(client);
        abort(target);
      });
    }
    client.on('error', fail);
    target.on('error', fail);
    client.on('close', onClose);
    target.on('close', onClose);
  };

  // pauseOnConnect: nothing is read from an accepted socket before its handle has moved (adoptAccepted).
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, handle);

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(bindError(forward, error)));
    server.listen({ host: forward.listenAddress, port: forward.listenPort, exclusive: true, backlog: 1024 }, () =>
      resolve(),
    );
  });
  server.on('error', (error: NodeJS.ErrnoException) => {
    if (closing) return;
    onFatal(new DataPlaneError(`listener ${describeListen(forward)} failed: ${error.message}`, { cause: error }));
  });
  const boundPort = (server.address() as { port: number }).port;

  return {
    forward,
    boundPort,
    counters: (): PortCounters => {
      let bytesIn = closedBytesIn;
      let bytesOut = closedBytesOut;
      for (const { client } of active) {
        bytesIn += client.bytesRead;
        bytesOut += client.bytesWritten;
      }
      return {
        protocol: 'tcp',
        listenPort: forward.listenPort,
        opened,
        active: active.size,
        bytesIn,
        bytesOut,
        errors,
      };
    },
    close: async () => {
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const { client, target } of active) {
        client.destroy();
        target.destroy();
      }
      await stopped;
    },
  };
}
