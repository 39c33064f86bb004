// What the TCP and UDP port forwarders share: the counters they report, the handle they return, and how a listener
// that cannot bind is explained (fatal, naming the address and port — never a warning that scrolls away).
import type { HomeForward } from '../../plan.js';
import { DataPlaneError } from '../../lib/errors.js';
import type { PortCounters } from '../../state/status.js';

export type { PortCounters };

export interface PortForwarder {
  readonly forward: HomeForward;
  /** The port actually bound (differs from forward.listenPort only when that is 0). */
  readonly boundPort: number;
  counters(): PortCounters;
  /** Stops listening and drops every connection or session. Resolves when all sockets are closed. */
  close(): Promise<void>;
}

/** Called at most once per port, for a failure after startup that stops the port from working. */
export type OnFatal = (error: DataPlaneError) => void;

export function describeListen(forward: HomeForward): string {
  const host = forward.listenAddress.includes(':') ? `[${forward.listenAddress}]` : forward.listenAddress;
  return `${host}:${forward.listenPort}/${forward.protocol}`;
}

export function bindError(forward: HomeForward, error: NodeJS.ErrnoException): DataPlaneError {
  const where = describeListen(forward);
  const port = forward.listenPort;
  switch (error.code) {
    case 'EADDRINUSE':
      return new DataPlaneError(`cannot listen on ${where}: the address is already in use`, {
        hint:
          `if a service is already bound to 0.0.0.0:${port} (or to the tunnel address) it listens on the tunnel ` +
          `address ` +
          'itself — then --destination none is the right setting; otherwise stop whatever holds the port',
        cause: error,
      });
    case 'EADDRNOTAVAIL':
      return new DataPlaneError(`cannot listen on ${where}: ${forward.listenAddress} is not an address of this host`, {
        hint:
          'the tunnel address exists only while the WireGuard link is up: start the tunnel (innisfree up) or pass ' +
          '--listen',
        cause: error,
      });
    case 'EACCES':
      return new DataPlaneError(`cannot listen on ${where}: permission denied`, {
        hint:
          `ports below 1024 need root or CAP_NET_BIND_SERVICE; or map the public port to a higher local one, e.g. ` +
          `${port}:${port + 8000}`,
        cause: error,
      });
    default:
      return new DataPlaneError(`cannot listen on ${where}: ${error.message}`, { cause: error });
  }
}
