// npm run bench: the home forwarder against the tools a user would otherwise use, in one run on this machine.
//   (a) TCP throughput on loopback: direct, socat, nginx stream, innisfree
//   (b) UDP datagrams/s and loss on loopback: the same four paths
//   (c) end to end through a wireguard-go tunnel between namespaces: raw tunnel vs forwarded
//   (d) memory with BENCH_CONNECTIONS (1000) concurrent TCP connections
//   (e) the home hop: direct vs kernel forwarding (nftables DNAT) vs the userspace forwarder, TCP and UDP
// Settings: BENCH_SECONDS (5), BENCH_REPEAT (3, median reported), BENCH_ONLY (tcp,udp,tunnel,memory,home).
// Prints a summary with ratios; writes the raw numbers and a Markdown summary under .bench/.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/cli.js';
import { namespaceSkipReason, needsCommand } from '../helpers/netns.js';
import {
  type BenchSettings,
  type HomeHopResult,
  type MemoryResult,
  type TcpLoopback,
  type TunnelResult,
  type UdpLoopback,
  measureHomeHop,
  measureMemory,
  measureTcpLoopback,
  measureTunnel,
  measureUdpLoopback,
} from './measure.js';

const TARGETS = { tcp: 1.0, udp: 1.0, tunnel: 0.9, memoryMiB: 100, kernel: 0.9 };

function setting(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new Error(`${name} must be a positive number`);
  return number;
}

function machine(): string {
  const cpu = cpus();
  let kernel = '';
  try {
    kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  } catch {
    // not essential
  }
  const versions = [
    ['socat', '-V'],
    ['nginx', '-v'],
    ['iperf3', '--version'],
    ['wireguard-go', '--version'],
  ]
    .map(([file, flag]) => {
      const out = spawnSync(file!, [flag!], { encoding: 'utf8' });
      const text = `${out.stdout ?? ''}\n${out.stderr ?? ''}`;
      const line = text.split('\n').find((l) => /\d+\.\d+/.test(l) && !/^\s*$/.test(l));
      return line ? line.trim().replace(/ on \d\d \w+ \d{4}.*$/, '') : file!;
    })
    .join('; ');
  return (
    `${cpu.length} × ${cpu[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${kernel}, ` +
    `Node ${process.version}; ${versions}`
  );
}

const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a');
const gbit = (value: number): string => value.toFixed(2);
const kpps = (value: number): string => (value / 1000).toFixed(1);
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function tcpSection(r: TcpLoopback): string {
  const cell = (t: { gbps: number; cpuSecondsPerGB: number }, path: string): string =>
    path === 'direct' ? gbit(t.gbps) : `${gbit(t.gbps)} (${t.cpuSecondsPerGB.toFixed(2)})`;
  const rows = (['direct', 'socat', 'nginx', 'innisfree'] as const).map((p) => [
    p,
    cell(r.upload[p], p),
    cell(r.download[p], p),
    cell(r.parallel4[p], p),
  ]);
  for (const other of ['socat', 'nginx'] as const) {
    rows.push([
      `**innisfree / ${other}**`,
      ratio(r.upload.innisfree.gbps, r.upload[other].gbps),
      ratio(r.download.innisfree.gbps, r.download[other].gbps),
      ratio(r.parallel4.innisfree.gbps, r.parallel4[other].gbps),
    ]);
  }
  return (
    `### (a) TCP throughput on loopback\n\nGbit/s (proxy CPU seconds per GB), iperf3, median.\n\n` +
    `${table(['path', '1 stream →', '1 stream ← (-R)', '4 streams'], rows)}`
  );
}

const UDP_METHOD = 'iperf3 -u, median; delivered = datagrams that reached the receiver.';

function udpSection(r: UdpLoopback): string {
  const rows = (['direct', 'socat', 'nginx', 'innisfree'] as const).map((p) => [
    p,
    kpps(r.unlimited[p].offeredPps),
    kpps(r.unlimited[p].deliveredPps),
    r.unlimited[p].lossPercent.toFixed(1),
    kpps(r.fixed[p].deliveredPps),
    r.fixed[p].lossPercent.toFixed(2),
    p === 'direct' ? '' : r.fixed[p].cpuMicrosPerDatagram.toFixed(1),
  ]);
  for (const other of ['socat', 'nginx'] as const) {
    rows.push([
      `**innisfree / ${other}**`,
      '',
      ratio(r.unlimited.innisfree.deliveredPps, r.unlimited[other].deliveredPps),
      '',
      ratio(r.fixed.innisfree.deliveredPps, r.fixed[other].deliveredPps),
      '',
      ratio(r.fixed.innisfree.cpuMicrosPerDatagram, r.fixed[other].cpuMicrosPerDatagram),
    ]);
  }
  return `### (b) UDP, 1200-byte datagrams on loopback\n\n${UDP_METHOD}\n\n${table(
    [
      'path',
      'unlimited: offered kpps',
      'delivered kpps',
      'loss %',
      `${r.fixedRate}bit/s: delivered kpps`,
      'loss %',
      'proxy CPU µs/datagram',
    ],
    rows,
  )}`;
}

function tunnelSection(r: TunnelResult): string {
  const rows = (['raw', 'socat', 'innisfree'] as const).map((p) => [
    p === 'raw' ? 'raw tunnel (service on the tunnel address)' : `${p} → loopback service`,
    gbit(r.upload[p].gbps),
    gbit(r.download[p].gbps),
  ]);
  for (const path of ['innisfree', 'socat'] as const) {
    rows.push([
      `**${path} / raw**`,
      ratio(r.upload[path].gbps, r.upload.raw.gbps),
      ratio(r.download[path].gbps, r.download.raw.gbps),
    ]);
  }
  return (
    `### (c) End to end through a wireguard-go tunnel between namespaces\n\nGbit/s, iperf3 from the edge ` +
    `namespace, median.\n\n${table(['path', 'edge → home', 'home → edge (-R)'], rows)}`
  );
}

function memorySection(r: MemoryResult): string {
  const rows = (['socat', 'nginx', 'innisfree'] as const).map((p) => [
    p,
    String(r.loaded[p].processes),
    mib(r.idle[p].rssBytes),
    mib(r.loaded[p].rssBytes),
    mib(r.loaded[p].pssBytes),
  ]);
  const method = 'Each connection echoed 16 KiB through the proxy and is then held open.';
  return `### (d) Memory with ${r.connections} concurrent TCP connections\n\n${method}\n\n${table(
    ['proxy', 'processes', 'idle RSS MiB', `RSS MiB with ${r.connections}`, `PSS MiB with ${r.connections}`],
    rows,
  )}`;
}

function homeSection(r: HomeHopResult): string {
  const rows = (['direct', 'kernel', 'innisfree'] as const).map((p) => [
    p === 'direct'
      ? 'direct (service on the arriving address)'
      : p === 'kernel'
        ? 'kernel forwarding → 127.0.0.1'
        : 'userspace forwarder → 127.0.0.1',
    gbit(r.tcp[p]),
    kpps(r.udpDeliveredPps[p]),
    r.udpLossPercent[p].toFixed(2),
  ]);
  for (const path of ['kernel', 'innisfree'] as const) {
    rows.push([
      `**${path} / direct**`,
      ratio(r.tcp[path], r.tcp.direct),
      ratio(r.udpDeliveredPps[path], r.udpDeliveredPps.direct),
      '',
    ]);
  }
  return `### (e) The home hop: kernel forwarding vs direct vs the userspace forwarder

A client namespace and a home namespace on a veth (standing in for the tunnel interface); iperf3 from the client,
median.

${table(['path', 'TCP Gbit/s', 'UDP unlimited: delivered kpps', 'loss %'], rows)}`;
}

function verdicts(
  tcp?: TcpLoopback,
  udp?: UdpLoopback,
  tunnel?: TunnelResult,
  memory?: MemoryResult,
  home?: HomeHopResult,
): string[] {
  const lines: string[] = [];
  const mark = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  if (home) {
    const worst = Math.min(
      home.tcp.kernel / home.tcp.direct,
      home.udpDeliveredPps.kernel / home.udpDeliveredPps.direct,
    );
    lines.push(
      `kernel path ≥ ${TARGETS.kernel}× direct (TCP Gbit/s and UDP delivered datagrams/s): ${worst.toFixed(2)}× ` +
        `— ${mark(worst >= TARGETS.kernel)}`,
    );
  }
  if (tcp) {
    const worst = Math.min(
      tcp.upload.innisfree.gbps / tcp.upload.socat.gbps,
      tcp.download.innisfree.gbps / tcp.download.socat.gbps,
    );
    lines.push(
      `TCP ≥ ${TARGETS.tcp}× socat (single stream, both directions): ${worst.toFixed(2)}× — ` +
        `${mark(worst >= TARGETS.tcp)}`,
    );
  }
  if (udp) {
    const value = udp.unlimited.innisfree.deliveredPps / udp.unlimited.socat.deliveredPps;
    const fixed = udp.fixed.innisfree.deliveredPps / udp.fixed.socat.deliveredPps;
    lines.push(
      `UDP ≥ ${TARGETS.udp}× socat (delivered datagrams/s): ${value.toFixed(2)}× at unlimited rate — ` +
        `${mark(value >= TARGETS.udp)}; ${fixed.toFixed(2)}× at ${udp.fixedRate}bit/s (loss ` +
        `${udp.fixed.innisfree.lossPercent.toFixed(2)}% vs ${udp.fixed.socat.lossPercent.toFixed(2)}%)`,
    );
  }
  if (tunnel) {
    const worst = Math.min(
      tunnel.upload.innisfree.gbps / tunnel.upload.raw.gbps,
      tunnel.download.innisfree.gbps / tunnel.download.raw.gbps,
    );
    lines.push(`end to end ≥ ${TARGETS.tunnel}× raw tunnel: ${worst.toFixed(2)}× — ${mark(worst >= TARGETS.tunnel)}`);
  }
  if (memory) {
    const value = memory.loaded.innisfree.rssBytes / 2 ** 20;
    lines.push(
      `${memory.connections} connections under ${TARGETS.memoryMiB} MB RSS: ${value.toFixed(1)} MiB — ` +
        `${mark(value < TARGETS.memoryMiB)}`,
    );
  }
  return lines;
}

async function main(): Promise<void> {
  for (const check of [
    namespaceSkipReason,
    needsCommand('iperf3'),
    needsCommand('socat'),
    needsCommand('nginx'),
    needsCommand('wireguard-go'),
    needsCommand('wg'),
  ]) {
    const reason = check();
    if (reason) {
      console.error(`bench: cannot run: ${reason}`);
      process.exit(1);
    }
  }
  const settings: BenchSettings = {
    seconds: setting('BENCH_SECONDS', 5),
    repeat: setting('BENCH_REPEAT', 3),
    connections: setting('BENCH_CONNECTIONS', 1000),
    log: (line) => console.error(line),
  };
  const only = new Set((process.env.BENCH_ONLY ?? 'tcp,udp,tunnel,memory,home').split(',').map((s) => s.trim()));
  const started = new Date();
  const loadBefore = loadavg();
  console.error(
    `bench: ${settings.repeat} × ${settings.seconds} s per sample; load average ` +
      `${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
  );

  let tcp: TcpLoopback | undefined;
  let udp: UdpLoopback | undefined;
  let tunnel: TunnelResult | undefined;
  let memory: MemoryResult | undefined;
  let home: HomeHopResult | undefined;
  if (only.has('tcp')) {
    console.error('(a) TCP on loopback');
    tcp = await measureTcpLoopback(settings);
  }
  if (only.has('udp')) {
    console.error('(b) UDP on loopback');
    udp = await measureUdpLoopback(settings);
  }
  if (only.has('tunnel')) {
    console.error('(c) through a wireguard-go tunnel');
    tunnel = await measureTunnel(settings);
  }
  if (only.has('memory')) {
    console.error(`(d) memory with ${settings.connections} connections`);
    memory = await measureMemory(settings);
  }
  if (only.has('home')) {
    if (needsCommand('nft')()) console.error('(e) the home hop: SKIPPED: nft is not installed');
    else {
      console.error('(e) the home hop: kernel forwarding vs direct');
      home = await measureHomeHop(settings);
    }
  }
  const loadAfter = loadavg();
  const header = [
    `Run ${started.toISOString()} — ${machine()}`,
    `Settings: ${settings.repeat} samples × ${settings.seconds} s each, median reported; load average before ` +
      `${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`,
  ];
  const sections = [
    tcp && tcpSection(tcp),
    udp && udpSection(udp),
    tunnel && tunnelSection(tunnel),
    memory && memorySection(memory),
    home && homeSection(home),
  ].filter(Boolean);
  const summary = [
    ...header,
    '',
    ...sections.flatMap((s) => [s!, '']),
    '### Targets',
    '',
    ...verdicts(tcp, udp, tunnel, memory, home).map((l) => `- ${l}`),
    '',
  ].join('\n');
  process.stdout.write(summary);
  const dir = join(repoRoot, '.bench');
  mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  writeFileSync(
    join(dir, `${stamp}.json`),
    `${JSON.stringify(
      { started, settings: { ...settings, log: undefined }, loadBefore, loadAfter, tcp, udp, tunnel, memory, home },
      null,
      2,
    )}\n`,
  );
  writeFileSync(join(dir, `${stamp}.md`), summary);
  console.error(`bench: results in .bench/${stamp}.{json,md}`);
}

await main();
