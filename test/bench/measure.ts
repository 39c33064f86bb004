// The four measurements. Each builds its own namespaces (an isolated loopback, or a WireGuard tunnel between two
// namespaces), so the numbers do not depend on — or disturb — anything else on the machine.
import { setTimeout as delay } from 'node:timers/promises';
import { built } from '../helpers/cli.js';
import { type Namespace, withTestbed } from '../helpers/netns.js';
import { HOME_TUNNEL, tunnelPair } from '../helpers/tunnel.js';
import { type UdpResult, startIperfServer, tcpThroughput, udpThroughput } from './iperf.js';
import { type MemoryUsage, cpuSecondsOfTree, memoryOfTree } from './proc-stats.js';
import { type Mapping, type Proxy, startInnisfree, startNginx, startSocat } from './proxies.js';

export interface BenchSettings {
  seconds: number;
  repeat: number;
  connections: number;
  log: (line: string) => void;
}

export type Path = 'direct' | 'socat' | 'nginx' | 'innisfree';
const PROXIES: Array<Exclude<Path, 'direct'>> = ['socat', 'nginx', 'innisfree'];
const STARTERS = { socat: startSocat, nginx: startNginx, innisfree: startInnisfree } as const;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Runs every (repeat × path) sample round-robin, so slow drifts in machine load spread over all paths alike. */
async function rounds<K extends string, T>(
  settings: BenchSettings,
  keys: readonly K[],
  sample: (key: K) => Promise<T>,
): Promise<Record<K, T[]>> {
  const results = Object.fromEntries(keys.map((k) => [k, [] as T[]])) as Record<K, T[]>;
  for (let round = 0; round < settings.repeat; round++) {
    for (const key of keys) {
      results[key].push(await sample(key));
      await delay(300);
    }
  }
  return results;
}

// --- (a) and (b): loopback of a private namespace

/** A throughput figure and what the proxy spent on it: CPU seconds per GB moved (0 for the direct path). */
export interface Throughput {
  gbps: number;
  cpuSecondsPerGB: number;
}

export interface TcpLoopback {
  upload: Record<Path, Throughput>;
  download: Record<Path, Throughput>;
  parallel4: Record<Path, Throughput>;
}

export interface UdpSample extends UdpResult {
  /** Proxy CPU time per delivered datagram, microseconds (0 for the direct path). */
  cpuMicrosPerDatagram: number;
}

export interface UdpLoopback {
  unlimited: Record<Path, UdpSample>;
  fixed: Record<Path, UdpSample>;
  fixedRate: string;
}

const LOOP = '127.0.0.1';
const SERVER_PORT = 5201;
const PROXY_PORTS: Record<Exclude<Path, 'direct'>, number> = { socat: 6001, nginx: 6002, innisfree: 6003 };

function portOf(path: Path): number {
  return path === 'direct' ? SERVER_PORT : PROXY_PORTS[path];
}

/** Starts the three proxies; returns the process ids whose CPU time each path costs. */
async function startAll(
  bed: Parameters<typeof startSocat>[0],
  ns: Namespace,
  protocols: Mapping['protocols'],
): Promise<Record<Path, number[]>> {
  const pids: Record<Path, number[]> = { direct: [], socat: [], nginx: [], innisfree: [] };
  for (const name of PROXIES) {
    const proxy = await STARTERS[name](bed, ns, {
      listen: LOOP,
      port: PROXY_PORTS[name],
      target: LOOP,
      targetPort: SERVER_PORT,
      protocols,
    });
    pids[name] = proxy.procs.map((p) => p.pid);
  }
  return pids;
}

/** Runs sample and returns its result with the CPU seconds the given processes used meanwhile. */
async function withCpu<T>(
  pids: readonly number[],
  sample: () => Promise<T>,
): Promise<{ result: T; cpuSeconds: number }> {
  const before = pids.length > 0 ? cpuSecondsOfTree(pids) : 0;
  const result = await sample();
  const cpuSeconds = pids.length > 0 ? cpuSecondsOfTree(pids) - before : 0;
  return { result, cpuSeconds };
}

export async function measureTcpLoopback(settings: BenchSettings): Promise<TcpLoopback> {
  let result: TcpLoopback | undefined;
  await withTestbed('bench-tcp', async (bed) => {
    const ns = await bed.namespace('isfb-');
    startIperfServer(bed, ns, SERVER_PORT);
    const pids = await startAll(bed, ns, ['tcp']);
    const paths: Path[] = ['direct', ...PROXIES];
    const run = async (label: string, options: { reverse?: boolean; parallel?: number }) => {
      const samples = await rounds(settings, paths, async (path) => {
        const { result: gbps, cpuSeconds } = await withCpu(pids[path], () =>
          tcpThroughput(ns, LOOP, portOf(path), settings.seconds, options),
        );
        const gigabytes = (gbps * settings.seconds) / 8;
        const sample: Throughput = { gbps, cpuSecondsPerGB: gigabytes > 0 ? cpuSeconds / gigabytes : 0 };
        settings.log(
          `  tcp ${label} ${path}: ${gbps.toFixed(2)} Gbit/s` +
            `${path === 'direct' ? '' : `, proxy CPU ${sample.cpuSecondsPerGB.toFixed(2)} s/GB`}`,
        );
        return sample;
      });
      return Object.fromEntries(
        paths.map((p) => [
          p,
          {
            gbps: median(samples[p].map((x) => x.gbps)),
            cpuSecondsPerGB: median(samples[p].map((x) => x.cpuSecondsPerGB)),
          },
        ]),
      ) as Record<Path, Throughput>;
    };
    result = {
      upload: await run('upload', {}),
      download: await run('download', { reverse: true }),
      parallel4: await run('4 streams', { parallel: 4 }),
    };
  });
  return result!;
}

export async function measureUdpLoopback(settings: BenchSettings, fixedRate = '300M'): Promise<UdpLoopback> {
  let result: UdpLoopback | undefined;
  await withTestbed('bench-udp', async (bed) => {
    const ns = await bed.namespace('isfb-');
    startIperfServer(bed, ns, SERVER_PORT);
    // iperf3 keeps its control connection on TCP, same port: every proxy carries both.
    const pids = await startAll(bed, ns, ['tcp', 'udp']);
    const paths: Path[] = ['direct', ...PROXIES];
    const run = async (rate: string) => {
      const samples = await rounds(settings, paths, async (path) => {
        const { result: udp, cpuSeconds } = await withCpu(pids[path], () =>
          udpThroughput(ns, LOOP, portOf(path), settings.seconds, rate),
        );
        const delivered = udp.deliveredPps * settings.seconds;
        const sample: UdpSample = { ...udp, cpuMicrosPerDatagram: delivered > 0 ? (cpuSeconds * 1e6) / delivered : 0 };
        settings.log(
          `  udp ${rate === '0' ? 'unlimited' : rate} ${path}: ${(udp.deliveredPps / 1000).toFixed(1)} kpps ` +
            `delivered of ${(udp.offeredPps / 1000).toFixed(1)}, loss ${udp.lossPercent.toFixed(2)}%` +
            `${path === 'direct' ? '' : `, proxy CPU ${sample.cpuMicrosPerDatagram.toFixed(1)} µs/datagram`}`,
        );
        return sample;
      });
      return Object.fromEntries(
        paths.map((p) => [
          p,
          {
            offeredPps: median(samples[p].map((s) => s.offeredPps)),
            deliveredPps: median(samples[p].map((s) => s.deliveredPps)),
            lossPercent: median(samples[p].map((s) => s.lossPercent)),
            cpuMicrosPerDatagram: median(samples[p].map((s) => s.cpuMicrosPerDatagram)),
          },
        ]),
      ) as Record<Path, UdpSample>;
    };
    result = { unlimited: await run('0'), fixed: await run(fixedRate), fixedRate };
  });
  return result!;
}

// --- (c): a wireguard-go tunnel between two namespaces

export type TunnelPath = 'raw' | 'socat' | 'innisfree';

export interface TunnelResult {
  upload: Record<TunnelPath, Throughput>;
  download: Record<TunnelPath, Throughput>;
}

export async function measureTunnel(settings: BenchSettings): Promise<TunnelResult> {
  let result: TunnelResult | undefined;
  await withTestbed('bench-tunnel', async (bed) => {
    const pair = await tunnelPair(bed);
    // raw: the service listens on the tunnel address itself (what --destination none gives).
    startIperfServer(bed, pair.home, 5201, HOME_TUNNEL);
    // forwarded: the service listens on loopback and a forwarder carries tunnel address → loopback.
    startIperfServer(bed, pair.home, 5202, LOOP);
    const socat = await startSocat(bed, pair.home, {
      listen: HOME_TUNNEL,
      port: 6001,
      target: LOOP,
      targetPort: 5202,
      protocols: ['tcp'],
    });
    const innisfree = await startInnisfree(bed, pair.home, {
      listen: HOME_TUNNEL,
      port: 6003,
      target: LOOP,
      targetPort: 5202,
      protocols: ['tcp'],
    });
    const ports: Record<TunnelPath, number> = { raw: 5201, socat: 6001, innisfree: 6003 };
    const pids: Record<TunnelPath, number[]> = {
      raw: [],
      socat: socat.procs.map((p) => p.pid),
      innisfree: innisfree.procs.map((p) => p.pid),
    };
    const paths: TunnelPath[] = ['raw', 'socat', 'innisfree'];
    const run = async (label: string, reverse: boolean) => {
      const samples = await rounds(settings, paths, async (path) => {
        const { result: gbps, cpuSeconds } = await withCpu(pids[path], () =>
          tcpThroughput(pair.edge, HOME_TUNNEL, ports[path], settings.seconds, { reverse }),
        );
        const gigabytes = (gbps * settings.seconds) / 8;
        settings.log(`  tunnel ${label} ${path}: ${gbps.toFixed(3)} Gbit/s`);
        return { gbps, cpuSecondsPerGB: gigabytes > 0 ? cpuSeconds / gigabytes : 0 };
      });
      return Object.fromEntries(
        paths.map((p) => [
          p,
          {
            gbps: median(samples[p].map((x) => x.gbps)),
            cpuSecondsPerGB: median(samples[p].map((x) => x.cpuSecondsPerGB)),
          },
        ]),
      ) as Record<TunnelPath, Throughput>;
    };
    result = { upload: await run('upload', false), download: await run('download', true) };
  });
  return result!;
}

// --- (d): memory with N concurrent connections

export interface MemoryResult {
  connections: number;
  idle: Record<Exclude<Path, 'direct'>, MemoryUsage>;
  loaded: Record<Exclude<Path, 'direct'>, MemoryUsage>;
}

export async function measureMemory(settings: BenchSettings): Promise<MemoryResult> {
  const idle = {} as MemoryResult['idle'];
  const loaded = {} as MemoryResult['loaded'];
  for (const name of PROXIES) {
    await withTestbed(`bench-memory-${name}`, async (bed) => {
      const ns = await bed.namespace('isfb-');
      const service = bed.spawn(ns, process.execPath, [built('test/helpers/traffic.ts'), 'serve', LOOP, '7000']);
      await service.waitForOutput(/^READY/);
      const proxy: Proxy = await STARTERS[name](bed, ns, {
        listen: LOOP,
        port: 7100,
        target: LOOP,
        targetPort: 7000,
        protocols: ['tcp'],
      });
      const roots = proxy.procs.map((p) => p.pid);
      await delay(500);
      idle[name] = memoryOfTree(roots);
      const holder = bed.spawn(ns, process.execPath, [
        built('test/bench/hold-connections.ts'),
        LOOP,
        '7100',
        String(settings.connections),
        '16384',
      ]);
      await holder.waitForOutput(/^HELD/, 120_000);
      await delay(1_000);
      loaded[name] = memoryOfTree(roots);
      settings.log(
        `  memory ${name}: ${loaded[name].processes} processes, RSS ` +
          `${(loaded[name].rssBytes / 2 ** 20).toFixed(1)} MiB, PSS ` +
          `${(loaded[name].pssBytes / 2 ** 20).toFixed(1)} MiB with ${settings.connections} connections`,
      );
      await holder.stop();
    });
  }
  return { connections: settings.connections, idle, loaded };
}

// --- (e): the home hop in the kernel (nftables DNAT, what --home-forwarding kernel loads) vs direct vs userspace

export type HomeHopPath = 'direct' | 'kernel' | 'innisfree';

export interface HomeHopResult {
  tcp: Record<HomeHopPath, number>;
  udpDeliveredPps: Record<HomeHopPath, number>;
  udpLossPercent: Record<HomeHopPath, number>;
}

/**
 * A client namespace and a home namespace joined by a veth, which stands in for the tunnel interface: direct is the
 * service listening on home's veth address; kernel is kernelForwardingUp's table DNATing that address's port to the
 * service on 127.0.0.1 (route_localnet on the veth only); innisfree is the userspace forwarder doing the same.
 */
export async function measureHomeHop(settings: BenchSettings): Promise<HomeHopResult> {
  const { kernelForwardingUp } = await import('../../src/home/kernel-forwarding.js');
  const { systemExec } = await import('../../src/lib/context.js');
  let result: HomeHopResult | undefined;
  await withTestbed('bench-home', async (bed) => {
    const client = await bed.namespace('isfb-');
    const home = await bed.namespace('isfb-');
    const CLIENT_ADDR = '198.51.100.1';
    const HOME_ADDR = '198.51.100.2';
    const link = await bed.veth(client, home, { a: `${CLIENT_ADDR}/30`, b: `${HOME_ADDR}/30` });
    startIperfServer(bed, home, 5201, HOME_ADDR);
    startIperfServer(bed, home, 5202, LOOP);
    const forwards = (['tcp', 'udp'] as const).map((protocol) => ({
      protocol,
      listenAddress: HOME_ADDR,
      listenPort: 6004,
      targetHost: LOOP,
      targetPort: 5202,
    }));
    const kernel = await kernelForwardingUp(systemExec, {
      interface: link.b,
      address: HOME_ADDR,
      mark: 20099,
      forwards,
      masquerade: false,
      netns: home.name,
    });
    const innisfree = await startInnisfree(bed, home, {
      listen: HOME_ADDR,
      port: 6003,
      target: LOOP,
      targetPort: 5202,
      protocols: ['tcp', 'udp'],
    });
    await delay(500);
    const ports: Record<HomeHopPath, number> = { direct: 5201, kernel: 6004, innisfree: 6003 };
    const paths: HomeHopPath[] = ['direct', 'kernel', 'innisfree'];
    try {
      const tcp = await rounds(settings, paths, async (path) => {
        const gbps = await tcpThroughput(client, HOME_ADDR, ports[path], settings.seconds);
        settings.log(`  home hop tcp ${path}: ${gbps.toFixed(2)} Gbit/s`);
        return gbps;
      });
      const udp = await rounds(settings, paths, async (path) => {
        const sample = await udpThroughput(client, HOME_ADDR, ports[path], settings.seconds, '0');
        settings.log(
          `  home hop udp unlimited ${path}: ${(sample.deliveredPps / 1000).toFixed(1)} kpps delivered of ` +
            `${(sample.offeredPps / 1000).toFixed(1)}, loss ${sample.lossPercent.toFixed(2)}%`,
        );
        return sample;
      });
      const byPath = <T>(f: (p: HomeHopPath) => T): Record<HomeHopPath, T> =>
        Object.fromEntries(paths.map((p) => [p, f(p)])) as Record<HomeHopPath, T>;
      result = {
        tcp: byPath((p) => median(tcp[p])),
        udpDeliveredPps: byPath((p) => median(udp[p].map((s) => s.deliveredPps))),
        udpLossPercent: byPath((p) => median(udp[p].map((s) => s.lossPercent))),
      };
    } finally {
      await kernel.down();
      for (const proc of innisfree.procs) proc.child.kill('SIGTERM');
    }
  });
  return result!;
}
