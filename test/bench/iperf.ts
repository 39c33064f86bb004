// iperf3 as the load generator and meter for every throughput measurement: the tool a user would reach for, and
// the same client and server for every path, so only the path in the middle differs.
import { setTimeout as delay } from 'node:timers/promises';
import type { Namespace, Proc, Testbed } from '../helpers/netns.js';

export function startIperfServer(bed: Testbed, ns: Namespace, port: number, bind?: string): Proc {
  return bed.spawn(ns, 'iperf3', ['-s', '-p', String(port), ...(bind ? ['-B', bind] : [])]);
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: {
      bits_per_second: number;
      seconds: number;
      packets?: number;
      lost_packets?: number;
      lost_percent?: number;
    };
    sum_sent?: { bits_per_second: number; seconds: number; packets?: number };
  };
}

async function iperf(ns: Namespace, args: string[], seconds: number): Promise<IperfJson> {
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const result = await ns.run('iperf3', [...args, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000 });
    try {
      const json = JSON.parse(result.stdout) as IperfJson;
      if (!json.error && json.end?.sum_received) return json;
      last = json.error ?? 'no summary';
    } catch {
      last = result.stderr.trim() || result.stdout.slice(0, 200);
    }
    // The server may still be finishing the previous test ("the server is busy").
    await delay(1_000);
  }
  throw new Error(`iperf3 ${args.join(' ')} failed: ${last}`);
}

export interface TcpOptions {
  reverse?: boolean;
  parallel?: number;
}

/** Receiver-side throughput in Gbit/s. */
export async function tcpThroughput(
  ns: Namespace,
  host: string,
  port: number,
  seconds: number,
  options: TcpOptions = {},
): Promise<number> {
  const args = ['-c', host, '-p', String(port)];
  if (options.reverse) args.push('-R');
  if (options.parallel && options.parallel > 1) args.push('-P', String(options.parallel));
  const json = await iperf(ns, args, seconds);
  return json.end!.sum_received!.bits_per_second / 1e9;
}

export interface UdpResult {
  /** Datagrams per second the sender offered. */
  offeredPps: number;
  /** Datagrams per second that reached the receiver. */
  deliveredPps: number;
  lossPercent: number;
}

/** UDP with 1200-byte datagrams at `rate` ("0" = as fast as the sender can). */
export async function udpThroughput(
  ns: Namespace,
  host: string,
  port: number,
  seconds: number,
  rate: string,
): Promise<UdpResult> {
  const json = await iperf(ns, ['-c', host, '-p', String(port), '-u', '-b', rate, '-l', '1200'], seconds);
  const received = json.end!.sum_received!;
  const packets = received.packets ?? 0;
  const lost = received.lost_packets ?? 0;
  return {
    offeredPps: packets / received.seconds,
    deliveredPps: (packets - lost) / received.seconds,
    lossPercent: received.lost_percent ?? 0,
  };
}
