// TCP port forwarding: every accepted connection gets its own connection to the destination; bytes are copied both
// ways with backpressure (a full receiver pauses the sender), a FIN is passed on as a FIN (half-close), and a reset
// or error on one side resets the other. One connection's failure never touches another. The hot path is the two
// 'data' handlers: no allocation, logging or accounting per chunk — byte counts come from the sockets themselves.
import { type Server, type Socket, connect, createServer } from 'node:net';
import type { HomeForward } from '../../plan.js';
import { DataPlaneError } from '../../lib/errors.js';
import { type OnFatal, type PortCounters, type PortForwarder, bindError, describeListen } from './common.js';

export interface TcpForwardOptions {
  /** Connections at once on this port; more are refused (closed at accept). */
  maxConnections: number;
  /** Close a connection after this long without a byte in either direction; 0: never. */
  idleTimeoutMs: number;
  /** Give up connecting to the destination after this long. */
  connectTimeoutMs: number;
}

interface Connection {
  client: Socket;
  target: Socket;
}

/** Resets a socket (RST) where TCP allows it, else closes it: the far side learns the connection failed. */
function abort(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || socket.readyState === 'opening') socket.destroy();
  else socket.resetAndDestroy();
}

export async function startTcpForward(forward: HomeForward, options: TcpForwardOptions, onFatal: OnFatal): Promise<PortForwarder> {
  const active = new Set<Connection>();
  let opened = 0;
  let errors = 0;
  let closedBytesIn = 0;
  let closedBytesOut = 0;
  let closing = false;

  const handle = (client: Socket): void => {
    opened++;
    client.setNoDelay(true);
    const target = connect({
      host: forward.targetHost,
      port: forward.targetPort,
      allowHalfOpen: true,
      noDelay: true,
      timeout: options.connectTimeoutMs,
    });
    const connection: Connection = { client, target };
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
      active.delete(connection);
      closedBytesIn += client.bytesRead;
      closedBytesOut += client.bytesWritten;
    };

    // Public side → service.
    client.on('data', (chunk: Buffer) => {
      if (!target.write(chunk)) client.pause();
    });
    target.on('drain', () => client.resume());
    client.on('end', () => target.end());
    // Service → public side.
    target.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) target.pause();
    });
    client.on('drain', () => target.resume());
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

  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, handle);
  server.maxConnections = options.maxConnections;
  // Over the cap: the connection was closed at accept; that is a refusal worth counting.
  server.on('drop', () => errors++);

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(bindError(forward, error)));
    server.listen({ host: forward.listenAddress, port: forward.listenPort, exclusive: true, backlog: 1024 }, () => resolve());
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
      return { protocol: 'tcp', listenPort: forward.listenPort, opened, active: active.size, bytesIn, bytesOut, errors };
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
