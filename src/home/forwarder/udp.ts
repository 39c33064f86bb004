// UDP port forwarding with sessions: each client address:port gets its own socket connected to the destination, so
// replies find their way back to that client through the listening socket. A session ends after idleTimeoutMs
// without a datagram either way, or when the destination answers with an ICMP error. The per-datagram path does a
// two-level map lookup, a counter update and a send — no allocation, no clock read (a coarse clock ticks instead).
import { lookup as dnsLookup } from 'node:dns/promises';
import { type Socket, createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import type { HomeForward } from '../../plan.js';
import { DataPlaneError } from '../../lib/errors.js';
import { type OnFatal, type PortCounters, type PortForwarder, bindError, describeListen } from './common.js';

export interface UdpForwardOptions {
  /** Sessions at once on this port; datagrams from further clients are dropped. */
  maxSessions: number;
  /** A session without traffic either way for this long is closed. */
  idleTimeoutMs: number;
}

/** Datagrams a new session holds while its socket connects; more are dropped. */
const PENDING_LIMIT = 64;
/** Datagrams waiting in a socket's send queue (kernel buffer full); beyond this we drop instead of growing memory. */
const SEND_QUEUE_LIMIT = 1024;
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

interface Session {
  clientAddress: string;
  clientPort: number;
  socket: Socket | undefined;
  /** Datagrams received before the session's socket was connected; null once connected. */
  pending: Buffer[] | null;
  lastSeen: number;
  closed: boolean;
}

/** Addresses passed to send() are always literal IPs here, so name resolution is skipped (and stays synchronous). */
function literalLookup(
  address: string,
  family: unknown,
  callback: (error: Error | null, address: string, family: number) => void,
): void {
  callback(null, address, isIP(address) || 4);
}

function enlargeBuffers(socket: Socket): void {
  // The kernel caps these at net.core.{r,w}mem_max; bigger buffers ride out bursts instead of dropping them.
  try {
    socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
    socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
  } catch {
    // Not fatal: the defaults work, they only drop earlier under bursts.
  }
}

export async function startUdpForward(
  forward: HomeForward,
  options: UdpForwardOptions,
  onFatal: OnFatal,
): Promise<PortForwarder> {
  const family = isIP(forward.listenAddress) === 6 ? 'udp6' : 'udp4';
  const listener = createSocket({ type: family, lookup: literalLookup as never });
  const sessions = new Map<string, Map<number, Session>>();
  let activeCount = 0;
  let opened = 0;
  let errors = 0;
  let bytesIn = 0;
  let bytesOut = 0;
  let closing = false;
  let now = Date.now();

  const endSession = (session: Session): void => {
    if (session.closed) return;
    session.closed = true;
    activeCount--;
    const byPort = sessions.get(session.clientAddress);
    byPort?.delete(session.clientPort);
    if (byPort?.size === 0) sessions.delete(session.clientAddress);
    session.pending = null;
    session.socket?.close();
  };

  const openSession = (clientAddress: string, clientPort: number): Session => {
    opened++;
    activeCount++;
    const session: Session = {
      clientAddress,
      clientPort,
      socket: undefined,
      pending: [],
      lastSeen: now,
      closed: false,
    };
    let byPort = sessions.get(clientAddress);
    if (!byPort) {
      byPort = new Map();
      sessions.set(clientAddress, byPort);
    }
    byPort.set(clientPort, session);
    void connectSession(session);
    return session;
  };

  const connectSession = async (session: Session): Promise<void> => {
    let target: { address: string; family: number };
    try {
      target = await dnsLookup(forward.targetHost);
    } catch {
      errors++;
      endSession(session);
      return;
    }
    if (session.closed) return;
    const socket = createSocket({ type: target.family === 6 ? 'udp6' : 'udp4', lookup: literalLookup as never });
    session.socket = socket;
    socket.on('message', (message: Buffer) => {
      session.lastSeen = now;
      bytesOut += message.length;
      listener.send(message, session.clientPort, session.clientAddress);
    });
    // ICMP port unreachable and friends arrive as errors on a connected socket: the destination is not there.
    socket.on('error', () => {
      errors++;
      endSession(session);
    });
    socket.connect(forward.targetPort, target.address, () => {
      if (session.closed) return;
      enlargeBuffers(socket);
      const pending = session.pending ?? [];
      session.pending = null;
      for (const datagram of pending) socket.send(datagram);
    });
  };

  listener.on('message', (message: Buffer, remote) => {
    let session = sessions.get(remote.address)?.get(remote.port);
    if (session === undefined) {
      if (activeCount >= options.maxSessions) {
        errors++;
        return;
      }
      session = openSession(remote.address, remote.port);
    }
    session.lastSeen = now;
    bytesIn += message.length;
    if (session.pending !== null) {
      if (session.pending.length < PENDING_LIMIT) session.pending.push(message);
      else errors++;
      return;
    }
    const socket = session.socket!;
    if (socket.getSendQueueCount() > SEND_QUEUE_LIMIT) {
      errors++;
      return;
    }
    socket.send(message);
  });

  await new Promise<void>((resolve, reject) => {
    listener.once('error', (error: NodeJS.ErrnoException) => reject(bindError(forward, error)));
    listener.bind({ address: forward.listenAddress, port: forward.listenPort, exclusive: true }, () => resolve());
  });
  enlargeBuffers(listener);
  listener.removeAllListeners('error');
  listener.on('error', (error: NodeJS.ErrnoException) => {
    if (closing) return;
    onFatal(new DataPlaneError(`listener ${describeListen(forward)} failed: ${error.message}`, { cause: error }));
  });
  const boundPort = listener.address().port;

  // The coarse clock and the idle sweep share one timer; a session lives idleTimeoutMs to idleTimeoutMs + tick.
  const tick = Math.max(10, Math.min(1_000, Math.floor(options.idleTimeoutMs / 4)));
  const sweeper = setInterval(() => {
    now = Date.now();
    for (const byPort of sessions.values()) {
      for (const session of byPort.values()) {
        if (now - session.lastSeen >= options.idleTimeoutMs) endSession(session);
      }
    }
  }, tick);
  sweeper.unref();

  return {
    forward,
    boundPort,
    counters: (): PortCounters => ({
      protocol: 'udp',
      listenPort: forward.listenPort,
      opened,
      active: activeCount,
      bytesIn,
      bytesOut,
      errors,
    }),
    close: async () => {
      closing = true;
      clearInterval(sweeper);
      for (const byPort of [...sessions.values()]) for (const session of [...byPort.values()]) endSession(session);
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
