// One WireGuard link: a kernel `wireguard` device when the kernel has the module, otherwise a wireguard-go daemon
// kept as our child. Configured with `wg set` (the private key by file path, never its content on a command line)
// and `ip`; optionally inside a network namespace, so the local provider can run the edge end with the same code.
// Bringing a link up first removes a stale one of the same name (a crashed earlier run); taking it down is
// idempotent and bounded in time.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Context, ExecResult } from '../lib/context.js';
import { type Daemon, type SpawnDaemon, spawnDaemon } from '../lib/daemon.js';
import { DataPlaneError, EnvironmentError } from '../lib/errors.js';
import { type WgPeerInfo, handshakeAgeSeconds, parseWgDump } from './wg-dump.js';

export const WIREGUARD_SOCKET_DIR = '/var/run/wireguard';

export type WireguardImplementation = 'kernel' | 'wireguard-go';

export interface WireguardPeer {
  publicKey: string;
  /** "host:port"; omitted on a listening end that learns the peer's address from its first handshake. */
  endpoint?: string;
  allowedIps: string[];
  /** Seconds; 0 or omitted: off. */
  persistentKeepalive?: number;
}

export interface WireguardLinkSpec {
  interface: string;
  /** A file holding the base64 private key (mode 0600); `wg` reads it. */
  privateKeyFile: string;
  /** Addresses with prefix, IPv4 and/or IPv6, e.g. ["10.50.7.2/30", "fd49:6e6e:6973:7::2/64"]. */
  addresses: string[];
  mtu: number;
  /** UDP port to listen on; omitted: a random port (the dialling end). */
  listenPort?: number;
  peer: WireguardPeer;
  /** Run the link inside this network namespace (it must exist). */
  netns?: string;
  /** Default "auto": kernel when available, else wireguard-go. */
  implementation?: 'auto' | WireguardImplementation;
}

export interface LinkStatus {
  interface: string;
  /** Unix seconds of the latest handshake with the peer; 0 when none yet. */
  latestHandshake: number;
  /** Seconds since then; null when none yet. */
  handshakeAge: number | null;
  rxBytes: number;
  txBytes: number;
  endpoint: string | null;
}

export interface WireguardLink {
  readonly interface: string;
  readonly implementation: WireguardImplementation;
  readonly netns: string | undefined;
  /** Reads `wg show <if> dump`. */
  status(): Promise<LinkStatus>;
  /** Points the peer at a new endpoint in place (the edge's IP changed); the link stays up. */
  setEndpoint(endpoint: string): Promise<void>;
  /**
   * Sets the peer again from scratch (removed, then key, endpoint, allowed IPs and keepalive as at start) and the
   * link up: the repair for a peer removed or changed under the link, or an edge whose WireGuard was restarted.
   */
  renewPeer(): Promise<void>;
  /** Removes the link (and stops wireguard-go). Idempotent; bounded in time. */
  down(): Promise<void>;
  /**
   * Rejects with a DataPlaneError if the link dies while up (wireguard-go exited, the kernel device was deleted); never
   * resolves.
   */
  readonly failure: Promise<never>;
}

export interface WireguardDeps {
  exec: Context['exec'];
  emit: Context['emit'];
  spawn?: SpawnDaemon;
}

const INTERFACE_NAME = /^[A-Za-z0-9_=+.-]{1,15}$/;
const WG_KEY = /^[A-Za-z0-9+/]{43}=$/;
const READY_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 3_000;
/** How often a kernel link is checked for having been deleted under us. */
const KERNEL_WATCH_MS = 2_000;

export function wireguardSocketPath(ifname: string): string {
  return join(WIREGUARD_SOCKET_DIR, `${ifname}.sock`);
}

export async function wireguardUp(deps: WireguardDeps, spec: WireguardLinkSpec): Promise<WireguardLink> {
  validateSpec(spec);
  const ifname = spec.interface;
  const tools = linkTools(deps, spec.netns);
  await removeStaleLink(deps, ifname, spec.netns);

  const { implementation, daemon } = await createWireguardDevice(deps, ifname, spec);

  let stopping = false;
  let rejectFailure: (error: DataPlaneError) => void = () => {};
  const failure = new Promise<never>((_, reject) => (rejectFailure = reject));
  // Callers may never look at failure (e.g. after down()); that must not be an unhandled rejection.
  failure.catch(() => {});
  if (daemon) {
    const watched = daemon;
    void watched.exited.then((exit) => {
      if (stopping) return;
      rejectFailure(
        new DataPlaneError(
          `wireguard-go for ${ifname} exited unexpectedly (${describeExit(exit)})${lastLines(watched)}`,
          {
            hint: 'the tunnel is down; check the log above and start it again',
          },
        ),
      );
    });
  }

  // A kernel device has no daemon to exit: something else deleting it (a network manager, `ip link del`, another
  // wg-quick) would go unnoticed, so look for it.
  let kernelWatch: NodeJS.Timeout | undefined;
  if (implementation === 'kernel') {
    let looking = false;
    kernelWatch = setInterval(() => {
      if (looking || stopping) return;
      looking = true;
      void linkPresent(tools, ifname, spec.netns)
        .then((present) => {
          if (present || stopping) return;
          clearInterval(kernelWatch);
          rejectFailure(
            new DataPlaneError(`the kernel WireGuard link ${ifname} was removed by something other than innisfree`, {
              hint:
                'the tunnel is down; check what manages network interfaces on this host (it must leave isf-* ' +
                'alone) and start it again',
            }),
          );
        })
        .finally(() => (looking = false));
    }, KERNEL_WATCH_MS);
    kernelWatch.unref();
  }

  let currentEndpoint = spec.peer.endpoint;
  let downPromise: Promise<void> = Promise.resolve();
  const down = async (): Promise<void> => {
    if (stopping) return downPromise;
    stopping = true;
    clearInterval(kernelWatch);
    downPromise = (async () => {
      if (daemon) await daemon.stop('SIGTERM', STOP_TIMEOUT_MS);
      await removeStaleLink(deps, ifname, spec.netns);
    })();
    return downPromise;
  };

  try {
    await configure(tools, spec);
  } catch (error) {
    await down().catch(() => {});
    throw error instanceof DataPlaneError || error instanceof EnvironmentError
      ? error
      : new DataPlaneError(`configuring WireGuard link ${ifname} failed: ${(error as Error).message}`, {
          cause: error,
        });
  }
  deps.emit({
    type: 'log',
    level: 'debug',
    message: `WireGuard link ${ifname} is up (${implementation}${spec.netns ? ` in ${spec.netns}` : ''})`,
  });

  return {
    interface: ifname,
    implementation,
    netns: spec.netns,
    failure,
    down,
    status: async () => {
      const result = await tools.wg(['show', ifname, 'dump'], false);
      if (result.exitCode !== 0) {
        // Only stderr: stdout of a dump carries the private key.
        throw new DataPlaneError(
          `reading WireGuard link ${ifname} failed: ${result.stderr.trim() || `wg exited with ${result.exitCode}`}`,
          {
            hint: 'the link may have been removed; restart the tunnel',
          },
        );
      }
      const dump = parseWgDump(result.stdout);
      const peer: WgPeerInfo | undefined = dump.peers.find((p) => p.publicKey === spec.peer.publicKey) ?? dump.peers[0];
      return {
        interface: ifname,
        latestHandshake: peer?.latestHandshake ?? 0,
        handshakeAge: peer ? handshakeAgeSeconds(peer, Date.now()) : null,
        rxBytes: peer?.rxBytes ?? 0,
        txBytes: peer?.txBytes ?? 0,
        endpoint: peer?.endpoint ?? null,
      };
    },
    setEndpoint: async (endpoint) => {
      validateEndpoint(endpoint);
      await tools.wg(['set', ifname, 'peer', spec.peer.publicKey, 'endpoint', endpoint]);
      currentEndpoint = endpoint;
    },
    renewPeer: async () => {
      // Removing the peer drops its session: set again, it starts a handshake at once (its first keepalive) instead
      // of sending on keys a restarted edge no longer has until the next rekey, up to two minutes later.
      await tools.wg(['set', ifname, 'peer', spec.peer.publicKey, 'remove'], false);
      await tools.wg(
        peerArgs({ ...spec, peer: { ...spec.peer, ...(currentEndpoint ? { endpoint: currentEndpoint } : {}) } }),
      );
      await tools.ip(['link', 'set', 'dev', ifname, 'up']);
    },
  };
}

export interface WireguardDevice {
  implementation: WireguardImplementation;
  /** The wireguard-go daemon serving the device; none for a kernel device. */
  daemon?: Daemon;
}

/**
 * Creates the device, unconfigured: a kernel `wireguard` link when the kernel has the module (and implementation
 * allows it), else a wireguard-go daemon, returned once its control socket answers. The name must be free (see
 * removeStaleLink). deps.spawn decides how the daemon runs: our child by default; the local edge agent, which exits
 * after each activation, gives one that outlives it.
 */
export async function createWireguardDevice(
  deps: WireguardDeps,
  ifname: string,
  options: Pick<WireguardLinkSpec, 'netns' | 'implementation'> = {},
): Promise<WireguardDevice> {
  const wanted = options.implementation ?? 'auto';
  const tools = linkTools(deps, options.netns);
  if (
    wanted !== 'wireguard-go' &&
    (await tools.ip(['link', 'add', 'dev', ifname, 'type', 'wireguard'], false)).exitCode === 0
  ) {
    return { implementation: 'kernel' };
  }
  if (wanted === 'kernel') {
    throw new EnvironmentError(`cannot create a kernel WireGuard link ${ifname}`, {
      hint: 'load the wireguard kernel module (modprobe wireguard), or let innisfree use wireguard-go',
    });
  }
  return { implementation: 'wireguard-go', daemon: await startWireguardGo(deps, ifname, options.netns) };
}

/** Whether the device exists; an error running `ip` counts as present, so a busy host never fakes a removal. */
async function linkPresent(tools: LinkTools, ifname: string, netns: string | undefined): Promise<boolean> {
  if (netns === undefined) return existsSync(`/sys/class/net/${ifname}`);
  try {
    const result = await tools.ip(['link', 'show', 'dev', ifname], false);
    return result.exitCode === 0 || !/does not exist|Cannot find device/i.test(result.stderr);
  } catch {
    return true;
  }
}

function validateSpec(spec: WireguardLinkSpec): void {
  if (!INTERFACE_NAME.test(spec.interface)) {
    throw new DataPlaneError(`"${spec.interface}" is not a valid interface name`, {
      hint: 'use at most 15 characters of a-z, 0-9, "-", "_", "."',
    });
  }
  if (!WG_KEY.test(spec.peer.publicKey))
    throw new DataPlaneError('the peer public key is not a WireGuard key (44 characters of base64)');
  if (spec.peer.endpoint !== undefined) validateEndpoint(spec.peer.endpoint);
  if (!Number.isInteger(spec.mtu) || spec.mtu < 1280 || spec.mtu > 9000)
    throw new DataPlaneError(`MTU ${spec.mtu} is outside 1280-9000`);
  for (const value of [...spec.addresses, ...spec.peer.allowedIps]) {
    if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(value)) throw new DataPlaneError(`"${value}" is not an address with prefix`);
  }
}

function validateEndpoint(endpoint: string): void {
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(endpoint)) {
    throw new DataPlaneError(`"${endpoint}" is not a WireGuard endpoint`, { hint: 'write HOST:PORT or [IPv6]:PORT' });
  }
}

interface LinkTools {
  ip(args: string[], reject?: boolean): Promise<ExecResult>;
  wg(args: string[], reject?: boolean): Promise<ExecResult>;
}

/** `ip` and `wg` for the root namespace or, with netns, inside it (a kernel link is only visible there to wg). */
function linkTools(deps: WireguardDeps, netns: string | undefined): LinkTools {
  const run = (file: string, args: string[], reject = true) =>
    netns
      ? deps.exec('ip', ['netns', 'exec', netns, file, ...args], { reject, timeoutMs: 10_000 })
      : deps.exec(file, args, { reject, timeoutMs: 10_000 });
  return {
    ip: (args, reject = true) => run('ip', args, reject),
    wg: (args, reject = true) => run('wg', args, reject),
  };
}

/** `wg set` arguments for the key and the peer (the private key by path: its content never reaches argv). */
function peerArgs(spec: WireguardLinkSpec): string[] {
  const { peer } = spec;
  const args = ['set', spec.interface, 'private-key', spec.privateKeyFile];
  if (spec.listenPort !== undefined) args.push('listen-port', String(spec.listenPort));
  args.push('peer', peer.publicKey);
  if (peer.endpoint !== undefined) args.push('endpoint', peer.endpoint);
  args.push('allowed-ips', peer.allowedIps.join(','));
  if (peer.persistentKeepalive) args.push('persistent-keepalive', String(peer.persistentKeepalive));
  return args;
}

async function configure(tools: LinkTools, spec: WireguardLinkSpec): Promise<void> {
  await tools.wg(peerArgs(spec));
  for (const address of spec.addresses) {
    // No duplicate address detection on a point-to-point tunnel: the address is usable at once.
    await tools.ip(['addr', 'add', address, 'dev', spec.interface, ...(address.includes(':') ? ['nodad'] : [])]);
  }
  await tools.ip(['link', 'set', 'dev', spec.interface, 'mtu', String(spec.mtu), 'up']);
}

async function startWireguardGo(deps: WireguardDeps, ifname: string, netns: string | undefined): Promise<Daemon> {
  const spawn = deps.spawn ?? spawnDaemon;
  const [file, args] = netns ? ['ip', ['netns', 'exec', netns, 'wireguard-go', ifname]] : ['wireguard-go', [ifname]];
  const daemon = spawn(file, args, {
    // Foreground: the daemon stays our child, so we own its whole life and see it exit.
    env: { WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' },
    onLine: (line) => deps.emit({ type: 'log', level: 'debug', message: line, source: 'wireguard-go' }),
  });
  const socket = wireguardSocketPath(ifname);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (daemon.done) {
      const exit = await daemon.exited;
      const missing = daemon.tail().some((line) => /command not found|ENOENT/.test(line));
      throw new EnvironmentError(
        `wireguard-go could not create ${ifname} (${describeExit(exit)})${lastLines(daemon)}`,
        {
          hint: missing
            ? 'install wireguard-go (or load the wireguard kernel module) and wireguard-tools'
            : 'innisfree needs root (CAP_NET_ADMIN) and /dev/net/tun',
        },
      );
    }
    if (existsSync(socket) && (await socketAnswers(socket))) return daemon;
    if (Date.now() > deadline) {
      await daemon.stop('SIGTERM', STOP_TIMEOUT_MS);
      throw new DataPlaneError(
        `wireguard-go did not open its control socket for ${ifname} within ${READY_TIMEOUT_MS / 1000} s` +
          `${lastLines(daemon)}`,
      );
    }
    await delay(20);
  }
}

/**
 * Removes a link of this name left by an earlier run: the device (a wireguard-go daemon exits once its device is
 * gone), a daemon still holding the name's control socket, and a stale socket file. Only this exact name is
 * touched — names are unique per tunnel on a host.
 */
async function removeStaleLink(deps: WireguardDeps, ifname: string, netns: string | undefined): Promise<void> {
  const tools = linkTools(deps, netns);
  if ((await tools.ip(['link', 'show', 'dev', ifname], false)).exitCode === 0) {
    const removed = await tools.ip(['link', 'del', 'dev', ifname], false);
    if (removed.exitCode !== 0 && (await tools.ip(['link', 'show', 'dev', ifname], false)).exitCode === 0) {
      throw new DataPlaneError(`could not remove the stale interface ${ifname}: ${removed.stderr.trim()}`, {
        hint: 'innisfree needs root (CAP_NET_ADMIN)',
      });
    }
  }
  const socket = wireguardSocketPath(ifname);
  if (!existsSync(socket)) return;
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (existsSync(socket) && (await socketAnswers(socket)) && Date.now() < deadline) {
    // A daemon still answering holds the name in another namespace, or is winding down after its device went away.
    for (const pid of wireguardGoPids(ifname)) signal(pid, 'SIGTERM');
    await delay(50);
  }
  if (existsSync(socket) && (await socketAnswers(socket))) {
    for (const pid of wireguardGoPids(ifname)) signal(pid, 'SIGKILL');
    await delay(100);
  }
  if (existsSync(socket)) {
    if (await socketAnswers(socket)) {
      throw new DataPlaneError(`another process holds the WireGuard control socket ${socket}`, {
        hint: `stop whatever runs interface ${ifname} (another innisfree for this tunnel?) and try again`,
      });
    }
    rmSync(socket, { force: true });
  }
}

/** Processes running exactly `wireguard-go <ifname>`: the daemon of this interface name and nothing else. */
function wireguardGoPids(ifname: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (argv.length === 2 && /(^|\/)wireguard-go$/.test(argv[0]!) && argv[1] === ifname) pids.push(Number(entry));
    } catch {
      // The process went away while we looked.
    }
  }
  return pids;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 500);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

function describeExit(exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

function lastLines(daemon: Daemon): string {
  const tail = daemon.tail().slice(-3);
  return tail.length > 0 ? `: ${tail.join('; ')}` : '';
}
