// The home forwarder: one listener per (protocol, port) mapping on the home tunnel address, each forwarding to
// destination:LOCAL. Starting is all or nothing — a listener that cannot bind stops the whole forwarder with an
// error naming the address and port. After that, a fault that breaks a listener rejects `failure`; faults of a
// single connection or session only show up in the counters.
import { isIP } from 'node:net';
import type { HomeForward } from '../../plan.js';
import { DataPlaneError } from '../../lib/errors.js';
import type { Emit } from '../../lib/events.js';
import { type PortCounters, type PortForwarder, describeListen } from './common.js';
import { startTcpForward } from './tcp.js';
import { startUdpForward } from './udp.js';

export type { PortCounters } from './common.js';
export { describeListen } from './common.js';

export interface ForwarderOptions {
  /** TCP connections at once per port (default 4096). */
  maxConnections?: number;
  /** Close a TCP connection idle this long in both directions; 0 (default): never. */
  tcpIdleTimeoutMs?: number;
  /** Give up connecting to the destination after this long (default 10 s). */
  connectTimeoutMs?: number;
  /** UDP sessions at once per port (default 4096). */
  maxUdpSessions?: number;
  /** A UDP session without traffic this long ends (default 60 s). */
  udpIdleTimeoutMs?: number;
  emit?: Emit;
}

export const FORWARDER_DEFAULTS = {
  maxConnections: 4096,
  tcpIdleTimeoutMs: 0,
  connectTimeoutMs: 10_000,
  maxUdpSessions: 4096,
  udpIdleTimeoutMs: 60_000,
} as const;

export interface BoundListener {
  protocol: HomeForward['protocol'];
  address: string;
  port: number;
}

export interface Forwarder {
  /** Per listening port, in the order of the forwards. */
  counters(): PortCounters[];
  /** What is actually bound (port 0 in a forward picks a free port). */
  listeners(): BoundListener[];
  /** Rejects with a DataPlaneError when a listener breaks after startup; never resolves. */
  readonly failure: Promise<never>;
  /**
   * Changes the forwarded set in place (a reload): listeners whose forward is unchanged are not touched (their
   * connections carry on); new ones are started (all or nothing: a failure closes the new ones and throws); a
   * removed one leaves the counters at once and is closed with its connections after `graceMs`.
   */
  update(forwards: readonly HomeForward[], graceMs: number): Promise<{ added: HomeForward[]; removed: HomeForward[] }>;
  /** Stops every listener and connection; resolves within timeoutMs (default 5 s) even if a socket lingers. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startForwarder(
  forwards: readonly HomeForward[],
  options: ForwarderOptions = {},
): Promise<Forwarder> {
  for (const forward of forwards) validateForward(forward);
  const settings = { ...FORWARDER_DEFAULTS, ...definedOnly(options) };
  let rejectFailure: (error: DataPlaneError) => void = () => {};
  const failure = new Promise<never>((_, reject) => (rejectFailure = reject));
  failure.catch(() => {});
  let failed = false;
  const onFatal = (error: DataPlaneError): void => {
    if (failed) return;
    failed = true;
    options.emit?.({ type: 'log', level: 'warn', message: error.message });
    rejectFailure(error);
  };

  const startAll = async (wanted: readonly HomeForward[]): Promise<PortForwarder[]> => {
    const results = await Promise.allSettled(
      wanted.map((forward) =>
        forward.protocol === 'tcp'
          ? startTcpForward(
              forward,
              {
                maxConnections: settings.maxConnections,
                idleTimeoutMs: settings.tcpIdleTimeoutMs,
                connectTimeoutMs: settings.connectTimeoutMs,
              },
              onFatal,
            )
          : startUdpForward(
              forward,
              { maxSessions: settings.maxUdpSessions, idleTimeoutMs: settings.udpIdleTimeoutMs },
              onFatal,
            ),
      ),
    );
    const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const problems = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (problems.length > 0) {
      await Promise.all(started.map((port) => port.close()));
      const first = problems[0];
      if (first instanceof DataPlaneError && problems.length === 1) throw first;
      const message = first instanceof Error ? first.message : String(first);
      throw new DataPlaneError(
        problems.length === 1 ? message : `${message} (and ${problems.length - 1} more listeners failed)`,
        {
          ...(first instanceof DataPlaneError && first.hint ? { hint: first.hint } : {}),
          cause: first,
        },
      );
    }
    for (const port of started) {
      options.emit?.({
        type: 'log',
        level: 'debug',
        message:
          `forwarding ${describeListen({ ...port.forward, listenPort: port.boundPort })} -> ` +
          `${port.forward.targetHost}:${port.forward.targetPort}`,
      });
    }
    return started;
  };
  let ports = await startAll(forwards);
  /** Ports removed by a reload whose grace has not ended yet: close() must not leave them behind. */
  const draining = new Set<PortForwarder>();

  let closing: Promise<void> | undefined;
  return {
    counters: () =>
      ports.map((port) => ({
        ...port.counters(),
        destination: endpointText(port.forward.targetHost, port.forward.targetPort),
      })),
    listeners: () =>
      ports.map((port) => ({
        protocol: port.forward.protocol,
        address: port.forward.listenAddress,
        port: port.boundPort,
      })),
    failure,
    update: async (wanted, graceMs) => {
      for (const forward of wanted) validateForward(forward);
      const key = (f: HomeForward) =>
        `${f.protocol} ${f.listenAddress} ${f.listenPort} ${f.targetHost} ${f.targetPort}`;
      const wantedKeys = new Set(wanted.map(key));
      const removedPorts = ports.filter((port) => !wantedKeys.has(key(port.forward)));
      const keptKeys = new Set(ports.filter((port) => !removedPorts.includes(port)).map((port) => key(port.forward)));
      const added = wanted.filter((f) => !keptKeys.has(key(f)));
      // A listen port whose destination changed must be free before its new listener binds: closed now, no grace.
      const listenKey = (f: HomeForward) => `${f.protocol} ${f.listenAddress} ${f.listenPort}`;
      const rebound = new Set(added.map(listenKey));
      const closedNow = removedPorts.filter((port) => rebound.has(listenKey(port.forward)));
      for (const port of draining) if (rebound.has(listenKey(port.forward))) closedNow.push(port);
      await Promise.all(closedNow.map((port) => port.close().finally(() => draining.delete(port))));
      const started = await startAll(added);
      ports = [...ports.filter((port) => !removedPorts.includes(port)), ...started];
      for (const port of removedPorts.filter((p) => !closedNow.includes(p))) {
        draining.add(port);
        const timer = setTimeout(() => void port.close().finally(() => draining.delete(port)), graceMs);
        timer.unref();
      }
      return { added, removed: removedPorts.map((port) => port.forward) };
    },
    close: (timeoutMs = 5_000) => {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        timer.unref();
        void Promise.allSettled([...ports, ...draining].map((port) => port.close())).then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closing;
    },
  };
}

function validateForward(forward: HomeForward): void {
  const where = describeListen(forward);
  if (isIP(forward.listenAddress) === 0) {
    throw new DataPlaneError(`forward ${where}: the listen address must be an IP address`);
  }
  for (const [what, port] of [
    ['listen', forward.listenPort],
    ['target', forward.targetPort],
  ] as const) {
    if (!Number.isInteger(port) || port < 0 || port > 65535 || (what === 'target' && port === 0)) {
      throw new DataPlaneError(`forward ${where}: ${what} port ${port} is outside 1-65535`);
    }
  }
  if (forward.targetHost === '' || forward.targetHost === 'none') {
    throw new DataPlaneError(`forward ${where}: no destination host`);
  }
}

/** "192.168.1.20:443", "[fd00::1]:443", "nas.lan:443". */
export function endpointText(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
