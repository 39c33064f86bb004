// innisfree proxy: runs the home forwarder on its own, until SIGINT/SIGTERM.
//   innisfree proxy NAME                          the forwards `up` planned for tunnel NAME (its home.json)
//   innisfree proxy --listen ADDR --ports SPEC    any address pair: ADDR:PUBLIC → HOST:LOCAL for each mapping
// A listener that cannot bind is fatal (exit 7); after a signal the forwarder closes and the command exits 0.
import { isIP } from 'node:net';
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { UsageError } from '../lib/errors.js';
import { runUntilStopped } from '../home/data-plane.js';
import { type ForwarderOptions, type PortCounters, describeListen, startForwarder } from '../home/forwarder/index.js';
import { readHomeConfig } from '../home/home-config-file.js';
import type { HomeForward } from '../plan.js';
import { expandPorts, parsePortList, validatePortSet } from '../spec/ports.js';
import { Destination, TunnelName } from '../spec/primitives.js';
import { stateRoot, tunnelPaths } from '../state/paths.js';

export interface ProxyFlags {
  listen?: unknown;
  ports?: unknown;
  port?: unknown;
  destination?: unknown;
  maxConnections?: unknown;
  idleTimeout?: unknown;
  udpTimeout?: unknown;
  maxSessions?: unknown;
}

export interface ProxyOptions {
  /** A tunnel whose planned forwards to run; without it, --listen and --ports say what to forward. */
  name?: string;
  flags: ProxyFlags;
}

const DEFAULT_DESTINATION = '127.0.0.1';

export async function proxyCommand(
  ctx: Pick<Context, 'env' | 'emit' | 'signal'>,
  options: ProxyOptions,
): Promise<CommandOutcome> {
  const { name, flags } = options;
  const forwards = name !== undefined ? await tunnelForwards(ctx, name, flags) : addressPairForwards(flags);
  const forwarder = await startForwarder(forwards, { ...forwarderOptions(flags), emit: ctx.emit });
  const listeners = forwarder.listeners();
  for (const [index, forward] of forwards.entries()) {
    const listener = listeners[index]!;
    ctx.emit({
      type: 'log',
      level: 'info',
      message:
        `forwarding ${describeListen({ ...forward, listenPort: listener.port })} -> ` +
        `${hostPort(forward.targetHost, forward.targetPort)}`,
    });
  }
  ctx.emit({ type: 'log', level: 'info', message: 'proxy running; stop it with Ctrl-C or SIGTERM' });
  await runUntilStopped(ctx.signal, forwarder.failure, () => forwarder.close());
  ctx.emit({ type: 'log', level: 'info', message: `proxy stopped; ${summarize(forwarder.counters())}` });
  return {};
}

async function tunnelForwards(ctx: Pick<Context, 'env'>, name: string, flags: ProxyFlags): Promise<HomeForward[]> {
  if (!TunnelName.safeParse(name).success) {
    throw new UsageError(`"${name}" is not a tunnel name`, {
      hint: 'tunnel names are short DNS labels: a-z, 0-9 and "-"',
    });
  }
  if (flags.ports !== undefined || flags.port !== undefined) {
    throw new UsageError('--ports cannot be combined with a tunnel name', {
      hint:
        `run "innisfree proxy ${name}" for the tunnel's own ports, or "innisfree proxy --listen ADDR --ports …" ` +
        `without a name`,
    });
  }
  const paths = tunnelPaths(stateRoot(ctx.env), name);
  const home = await readHomeConfig(paths);
  if (!home) {
    throw new UsageError(`tunnel "${name}" has no home plan (${paths.home} does not exist)`, {
      hint:
        `run "innisfree up --name ${name}" first, or give addresses: innisfree proxy --listen ADDR --ports PORTS ` +
        `--destination HOST`,
    });
  }
  if (home.forwards.length === 0) {
    throw new UsageError(
      `tunnel "${name}" forwards nothing: its destination is "none" (the service listens on the tunnel address itself)`,
      {
        hint:
          'nothing to proxy; to forward anyway give addresses: innisfree proxy --listen ADDR --ports PORTS ' +
          '--destination HOST',
      },
    );
  }
  const listen = optionalString(flags.listen, '--listen');
  const destination = optionalString(flags.destination, '--destination');
  if (listen !== undefined) checkListen(listen);
  if (destination !== undefined) checkDestination(destination);
  return home.forwards.map((forward) => ({
    ...forward,
    ...(listen !== undefined ? { listenAddress: listen } : {}),
    ...(destination !== undefined ? { targetHost: destination } : {}),
  }));
}

function addressPairForwards(flags: ProxyFlags): HomeForward[] {
  const listen = optionalString(flags.listen, '--listen');
  const portValues = [...stringList(flags.ports, '--ports'), ...stringList(flags.port, '--port')];
  if (listen === undefined || portValues.length === 0) {
    throw new UsageError('proxy needs a tunnel name, or --listen and --ports', {
      hint:
        'innisfree proxy NAME (after innisfree up), or innisfree proxy --listen 10.50.0.2 --ports ' +
        '443/tcp,19132/udp --destination 192.168.1.10',
    });
  }
  checkListen(listen);
  const destination = optionalString(flags.destination, '--destination') ?? DEFAULT_DESTINATION;
  checkDestination(destination);
  const ranges = parsePortList(portValues);
  // No edge here, so no port is reserved for SSH or WireGuard.
  validatePortSet(ranges, { ssh: 0, wireguard: 0 });
  return expandPorts(ranges).map((port) => ({
    protocol: port.protocol,
    listenAddress: listen,
    listenPort: port.publicPort,
    targetHost: destination,
    targetPort: port.localPort,
  }));
}

function forwarderOptions(flags: ProxyFlags): Omit<ForwarderOptions, 'emit'> {
  const options: Omit<ForwarderOptions, 'emit'> = {};
  const maxConnections = positiveInteger(flags.maxConnections, '--max-connections');
  const maxSessions = positiveInteger(flags.maxSessions, '--max-sessions');
  const idle = seconds(flags.idleTimeout, '--idle-timeout', true);
  const udpIdle = seconds(flags.udpTimeout, '--udp-timeout', false);
  if (maxConnections !== undefined) options.maxConnections = maxConnections;
  if (maxSessions !== undefined) options.maxUdpSessions = maxSessions;
  if (idle !== undefined) options.tcpIdleTimeoutMs = idle * 1000;
  if (udpIdle !== undefined) options.udpIdleTimeoutMs = udpIdle * 1000;
  return options;
}

function checkListen(listen: string): void {
  if (isIP(listen) === 0) {
    throw new UsageError(`--listen: "${listen}" is not an IP address`, {
      hint: 'give the address to listen on, e.g. the home tunnel address (see innisfree plan NAME), or 127.0.0.1',
    });
  }
}

function checkDestination(destination: string): void {
  if (destination === 'none') {
    throw new UsageError('--destination none leaves nothing to forward', {
      hint: 'give the address or host name of the service',
    });
  }
  if (!Destination.safeParse(destination).success) {
    throw new UsageError(`--destination: "${destination}" is not an address or host name`, {
      hint: 'e.g. 127.0.0.1, 192.168.1.10 or nas.lan',
    });
  }
}

function optionalString(value: unknown, flag: string): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw new UsageError(`${flag} is given more than once`, { hint: `give ${flag} once` });
  if (typeof value !== 'string' || value === '')
    throw new UsageError(`${flag} needs a value`, { hint: `see innisfree proxy --help` });
  return value;
}

function stringList(value: unknown, flag: string): string[] {
  if (value === undefined) return [];
  const values = Array.isArray(value) ? value : [value];
  if (values.some((v) => typeof v !== 'string'))
    throw new UsageError(`${flag} needs a value`, { hint: 'e.g. --ports 443/tcp,19132/udp' });
  return values as string[];
}

function positiveInteger(value: unknown, flag: string): number | undefined {
  const text = optionalString(value, flag);
  if (text === undefined) return undefined;
  const number = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(number) || number < 1) {
    throw new UsageError(`${flag}: "${text}" is not a positive whole number`, { hint: `e.g. ${flag} 1000` });
  }
  return number;
}

/** Whole or fractional seconds; 0 is allowed where it means "never". */
function seconds(value: unknown, flag: string, zeroAllowed: boolean): number | undefined {
  const text = optionalString(value, flag);
  if (text === undefined) return undefined;
  const number = Number(text);
  if (
    !/^\d+(\.\d+)?$/.test(text) ||
    !Number.isFinite(number) ||
    (!zeroAllowed && number === 0) ||
    number > 86_400 * 7
  ) {
    throw new UsageError(`${flag}: "${text}" is not a number of seconds`, {
      hint: zeroAllowed ? 'e.g. 300, or 0 for no timeout' : 'e.g. 60',
    });
  }
  return number;
}

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function summarize(counters: readonly PortCounters[]): string {
  const totals = counters.reduce(
    (sum, c) => ({
      opened: sum.opened + c.opened,
      bytesIn: sum.bytesIn + c.bytesIn,
      bytesOut: sum.bytesOut + c.bytesOut,
      errors: sum.errors + c.errors,
    }),
    { opened: 0, bytesIn: 0, bytesOut: 0, errors: 0 },
  );
  return (
    `${totals.opened} connections/sessions, ${totals.bytesIn} bytes in, ${totals.bytesOut} bytes out, ` +
    `${totals.errors} errors`
  );
}
