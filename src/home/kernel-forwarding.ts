// Kernel forwarding at home: instead of the userspace forwarder, an nftables table of this tunnel only DNATs each
// mapped port that arrives on the tunnel interface to its destination (TCP and UDP), so the service sees the
// address the packets carry (the internet client's, with nftables forwarding on the edge). Conntrack carries the
// replies back; every connection that came in over the tunnel gets the tunnel's mark, and its replies get it back
// as a packet mark, which policy routing (routing.ts, `fwmark`) sends into the tunnel whatever their source.
//
// Per destination kind:
// - loopback (127.x, the default 127.0.0.1): route_localnet=1 on the tunnel interface only, so the kernel lets
//   127.x through it in both directions. UDP services bound to 0.0.0.0 answer from the address routing picks, not
//   from 127.0.0.1; a reply to a peer that just came in over the tunnel gets the destination's address back as
//   its source before conntrack sees it, and so finds its connection.
// - another address of this host: as loopback, without route_localnet.
// - another host: forwarding=1 on the tunnel interface; the interface towards that host must forward too (checked,
//   not changed: it is shared), and that host must route its replies via this one, or `masquerade` SNATs to this
//   host's address there (the client address is then lost).
//
// IPv6 (a tunnel with --ipv6 and nftables forwarding on the edge): the edge DNATs IPv6 clients to the home
// tunnel's ULA. There is no route_localnet for IPv6 — the kernel drops a packet DNATed to ::1 that came in on
// another interface — and an IPv4 destination cannot take an IPv6 packet, so IPv6 is delivered to this host's own
// tunnel address with the destination port: a service listening on [::] (or on that address) sees the IPv6 client's
// own address. Forwards to another host get no IPv6. UDP replies from a service bound to [::] take the tunnel
// address as their source, as with IPv4.
//
// Loading replaces a stale table of the same tunnel in one `nft -f` transaction; other tables are never touched.
// Teardown deletes the table and restores the sysctls.
import { isIP } from 'node:net';
import type { Exec } from '../lib/context.js';
import { DataPlaneError, EnvironmentError } from '../lib/errors.js';
import type { HomeForward } from '../spec/home-config.js';
import { isLoopback } from '../spec/primitives.js';
import type { PortCounters } from '../state/status.js';

export interface KernelForwardingSpec {
  /** The tunnel interface packets arrive on. */
  interface: string;
  /** The home tunnel IPv4 address (no prefix): what the edge sends to. */
  address: string;
  /** The home tunnel IPv6 address (no prefix), when the tunnel carries IPv6. */
  address6?: string;
  /** The connection and packet mark of this tunnel (policy routing's fwmark). */
  mark: number;
  forwards: readonly HomeForward[];
  /** SNAT connections to another host to this host's address there. */
  masquerade: boolean;
  netns?: string;
}

export type DestinationKind = 'loopback' | 'local' | 'remote';

export interface KernelForwarding {
  readonly table: string;
  /** Per forward (in the order given), from the table's named counters. */
  counters(): Promise<PortCounters[]>;
  /**
   * Replaces the forwarded set (a reload) in one `nft -f` transaction. Established connections keep their DNAT and
   * mark in conntrack, so those on unchanged ports carry on; the table only decides for new ones.
   */
  update(forwards: readonly HomeForward[], masquerade: boolean): Promise<void>;
  /** Deletes the table and restores the sysctls it changed. Idempotent. */
  down(): Promise<void>;
}

const FAMILY = 'inet';
const NAME = /^[A-Za-z0-9_.-]{1,15}$/;
/** UDP peers seen over the tunnel are remembered this long (conntrack's UDP stream timeout is 120 s). */
const UDP_PEER_TIMEOUT_S = 180;

export function kernelTableName(ifname: string): string {
  return `innisfree-home-${ifname}`;
}

function counterName(forward: Pick<HomeForward, 'protocol' | 'listenPort'>, what: 'new' | 'in' | 'out'): string {
  return `${forward.protocol}-${forward.listenPort}-${what}`;
}

/** The whole table as one `nft -f` transaction: create (so delete cannot fail), delete, then fill it anew. */
export function renderKernelRuleset(spec: KernelForwardingSpec, kinds: ReadonlyMap<string, DestinationKind>): string {
  const table = `${FAMILY} ${kernelTableName(spec.interface)}`;
  const iif = `iifname "${spec.interface}"`;
  const home = spec.address;
  const mark = spec.mark;
  const body: string[] = [];
  const protocols = (['tcp', 'udp'] as const).filter((protocol) => spec.forwards.some((f) => f.protocol === protocol));

  for (const forward of spec.forwards) {
    for (const what of ['new', 'in', 'out'] as const) body.push(`counter ${counterName(forward, what)} { }`);
  }
  for (const protocol of protocols) {
    const forwards = spec.forwards.filter((f) => f.protocol === protocol);
    body.push(
      `map ${protocol}-dnat { type inet_service : ipv4_addr . inet_service; elements = { ` +
        `${forwards.map((f) => `${f.listenPort} : ${f.targetHost} . ${f.targetPort}`).join(', ')} } }`,
    );
    for (const what of ['new', 'in', 'out'] as const) {
      body.push(
        `map ${protocol}-${what} { type inet_service : counter; elements = { ` +
          `${forwards.map((f) => `${f.listenPort} : "${counterName(f, what)}"`).join(', ')} } }`,
      );
    }
  }
  const udpToThisHost = spec.forwards.filter((f) => f.protocol === 'udp' && kinds.get(f.targetHost) !== 'remote');
  if (udpToThisHost.length > 0) {
    body.push(
      `set udp-peers { type ipv4_addr . inet_service . inet_service; flags dynamic,timeout; timeout ` +
        `${UDP_PEER_TIMEOUT_S}s; }`,
    );
  }
  const home6 = spec.address6;
  const toThisHost6 = home6 ? spec.forwards.filter((f) => kinds.get(f.targetHost) !== 'remote') : [];
  const protocols6 = (['tcp', 'udp'] as const).filter((protocol) => toThisHost6.some((f) => f.protocol === protocol));
  const udp6 = toThisHost6.filter((f) => f.protocol === 'udp');
  for (const protocol of protocols6) {
    const forwards = toThisHost6.filter((f) => f.protocol === protocol);
    body.push(
      `map ${protocol}-dnat6 { type inet_service : ipv6_addr . inet_service; elements = { ` +
        `${forwards.map((f) => `${f.listenPort} : ${home6} . ${f.targetPort}`).join(', ')} } }`,
    );
  }
  if (udp6.length > 0) {
    body.push(
      `set udp-peers6 { type ipv6_addr . inet_service . inet_service; flags dynamic,timeout; timeout ` +
        `${UDP_PEER_TIMEOUT_S}s; }`,
    );
  }

  const prerouting = [
    'type filter hook prerouting priority mangle; policy accept;',
    `${iif} ct state new ct mark set ${mark}`,
    `ct direction reply ct mark ${mark} meta mark set ${mark}`,
    ...protocols.map((p) => `${iif} ip daddr ${home} counter name ${p} dport map @${p}-in`),
    ...(udpToThisHost.length > 0
      ? [
          `${iif} ip daddr ${home} udp dport { ${ports(udpToThisHost)} } update @udp-peers { ip saddr . udp ` +
            `sport . udp dport }`,
        ]
      : []),
    ...protocols6.map(
      (p) =>
        `${iif} ip6 daddr ${home6} ${p} dport { ${ports(toThisHost6.filter((f) => f.protocol === p))} } counter ` +
        `name ${p} dport map @${p}-in`,
    ),
    ...(udp6.length > 0
      ? [
          `${iif} ip6 daddr ${home6} udp dport { ${ports(udp6)} } update @udp-peers6 { ip6 saddr . udp sport . ` +
            `udp dport }`,
        ]
      : []),
  ];
  const dnat = [
    'type nat hook prerouting priority dstnat; policy accept;',
    ...protocols.map(
      (p) => `${iif} ip daddr ${home} counter name ${p} dport map @${p}-new dnat ip to ${p} dport map @${p}-dnat`,
    ),
    ...protocols6.map(
      (p) =>
        `${iif} ip6 daddr ${home6} ${p} dport { ${ports(toThisHost6.filter((f) => f.protocol === p))} } counter ` +
        `name ${p} dport map @${p}-new dnat ip6 to ${p} dport map @${p}-dnat6`,
    ),
  ];
  // Before conntrack (raw): a UDP reply from a service bound to 0.0.0.0 to a peer of the tunnel takes back the
  // address the datagram was delivered to; a route chain, so the kernel routes it again with that source.
  const byTarget = new Map<string, HomeForward[]>();
  for (const forward of udpToThisHost)
    byTarget.set(forward.targetHost, [...(byTarget.get(forward.targetHost) ?? []), forward]);
  const outputSource = [
    'type route hook output priority raw; policy accept;',
    ...[...byTarget].map(
      ([target, list]) =>
        `udp sport { ${ports(list)} } ip daddr . udp dport . udp sport @udp-peers ip saddr != ${target} ip ` +
        `saddr set ${target}`,
    ),
    ...(udp6.length > 0
      ? [
          `udp sport { ${ports(udp6.map((f) => ({ ...f, listenPort: f.targetPort })))} } ip6 daddr . udp dport ` +
            `. udp sport @udp-peers6 ip6 saddr != ${home6} ip6 saddr set ${home6}`,
        ]
      : []),
  ];
  const outputMark = [
    'type route hook output priority mangle; policy accept;',
    `ct mark ${mark} meta mark set ${mark}`,
  ];
  // After the reply's source went back to the tunnel address (srcnat undoes the DNAT).
  const count = [
    'type filter hook postrouting priority srcnat + 10; policy accept;',
    ...protocols.map((p) => `oifname "${spec.interface}" ip saddr ${home} counter name ${p} sport map @${p}-out`),
    ...protocols6.map(
      (p) =>
        `oifname "${spec.interface}" ip6 saddr ${home6} ${p} sport { ` +
        `${ports(toThisHost6.filter((f) => f.protocol === p))} } counter name ${p} sport map @${p}-out`,
    ),
  ];

  const chain = (name: string, lines: string[]): string =>
    `chain ${name} {\n${lines.map((l) => `    ${l}`).join('\n')}\n  }`;
  body.push(chain('prerouting-mark', prerouting), chain('prerouting-dnat', dnat));
  if (byTarget.size > 0 || udp6.length > 0) body.push(chain('output-source', outputSource));
  body.push(chain('output-mark', outputMark), chain('postrouting-count', count));
  if (spec.masquerade) {
    body.push(
      chain('postrouting-masquerade', [
        'type nat hook postrouting priority srcnat; policy accept;',
        `ct direction original ct mark ${mark} oifname != "${spec.interface}" masquerade`,
      ]),
    );
  }
  return [`table ${table}`, `delete table ${table}`, `table ${table} {`, ...body.map((b) => `  ${b}`), '}', ''].join(
    '\n',
  );
}

/** Consecutive runs as nft ranges: "8080, 27015-27030". */
function ports(forwards: readonly HomeForward[]): string {
  const sorted = [...new Set(forwards.map((f) => f.listenPort))].sort((a, b) => a - b);
  const runs: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    runs.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return runs.join(', ');
}

function inNetns(netns: string | undefined, file: string, args: string[]): [string, string[]] {
  return netns ? ['ip', ['netns', 'exec', netns, file, ...args]] : [file, args];
}

function sysctlKey(ifname: string, setting: string): string {
  // sysctl writes a "." inside an interface name as "/".
  return `net.ipv4.conf.${ifname.replace(/\./g, '/')}.${setting}`;
}

async function readSysctl(exec: Exec, netns: string | undefined, key: string): Promise<string | undefined> {
  const [file, args] = inNetns(netns, 'sysctl', ['-n', key]);
  const result = await exec(file, args, { timeoutMs: 10_000, reject: false });
  return result.exitCode === 0 ? result.stdout.trim() : undefined;
}

async function writeSysctl(exec: Exec, netns: string | undefined, key: string, value: string): Promise<void> {
  const [file, args] = inNetns(netns, 'sysctl', ['-q', '-w', `${key}=${value}`]);
  await exec(file, args, { timeoutMs: 10_000 });
}

interface RouteEntry {
  type?: string;
  dev?: string;
}

/** Loopback, an address of this host, or another host (with the interface that leads there). */
async function classify(
  exec: Exec,
  netns: string | undefined,
  target: string,
): Promise<{ kind: DestinationKind; dev?: string }> {
  if (isLoopback(target)) return { kind: 'loopback' };
  const args = [...(netns ? ['-n', netns] : []), '-4', '-j', 'route', 'get', target];
  const result = await exec('ip', args, { timeoutMs: 10_000, reject: false });
  if (result.exitCode !== 0) {
    throw new DataPlaneError(`kernel forwarding: this host has no route to the destination ${target}`, {
      hint: 'check the address, or the network that leads there',
    });
  }
  const [route] = JSON.parse(result.stdout || '[]') as RouteEntry[];
  if (route?.type === 'local') return { kind: 'local' };
  return { kind: 'remote', ...(route?.dev ? { dev: route.dev } : {}) };
}

/** nft is installed and may change the ruleset (root / CAP_NET_ADMIN): the kernel path can be used. */
export async function kernelForwardingAvailable(exec: Exec, netns?: string): Promise<boolean> {
  const [file, args] = inNetns(netns, 'nft', ['list', 'tables']);
  const listed = await exec(file, args, { timeoutMs: 10_000, reject: false }).catch(() => undefined);
  return listed?.exitCode === 0;
}

/** Removes a table of this tunnel a crashed run left behind; fine when there is none. */
export async function removeKernelForwarding(exec: Exec, ifname: string, netns?: string): Promise<void> {
  const [file, args] = inNetns(netns, 'nft', ['delete', 'table', FAMILY, kernelTableName(ifname)]);
  await exec(file, args, { timeoutMs: 10_000, reject: false });
}

export async function kernelForwardingUp(exec: Exec, initial: KernelForwardingSpec): Promise<KernelForwarding> {
  let spec = initial;
  const previous: Array<[string, string]> = [];
  const table = kernelTableName(spec.interface);

  const remove = async (): Promise<void> => {
    await removeKernelForwarding(exec, spec.interface, spec.netns);
    for (const [key, value] of previous.splice(0).reverse())
      await writeSysctl(exec, spec.netns, key, value).catch(() => {});
  };

  await loadKernelRuleset(exec, spec, previous, remove);

  // Updates (reloads) and down run one at a time, and nothing loads after down: a reload still working when the
  // tunnel stops would otherwise put the table back after down removed it.
  let stopped = false;
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(step: () => Promise<T>): Promise<T> => {
    const next = queue.then(step, step);
    queue = next.catch(() => {});
    return next;
  };
  return {
    table,
    down: () =>
      serially(async () => {
        stopped = true;
        await remove();
      }),
    update: (forwards, masquerade) =>
      serially(async () => {
        if (stopped) return;
        const next = { ...spec, forwards, masquerade };
        await loadKernelRuleset(exec, next, previous);
        spec = next;
      }),
    counters: async () => {
      const [file, args] = inNetns(spec.netns, 'nft', ['-j', 'list', 'counters', 'table', FAMILY, table]);
      const result = await exec(file, args, { timeoutMs: 10_000, reject: false });
      const values = result.exitCode === 0 ? parseNftCounters(result.stdout) : new Map<string, NftCounter>();
      return spec.forwards.map((forward) => {
        const read = (what: 'new' | 'in' | 'out') => values.get(counterName(forward, what)) ?? { packets: 0, bytes: 0 };
        return {
          protocol: forward.protocol,
          listenPort: forward.listenPort,
          opened: read('new').packets,
          // Conntrack knows the open connections; the table does not count them.
          active: 0,
          bytesIn: read('in').bytes,
          bytesOut: read('out').bytes,
          errors: 0,
          path: 'kernel' as const,
          destination: `${forward.targetHost}:${forward.targetPort}`,
        };
      });
    },
  };
}

/**
 * Checks the spec, sets the sysctls its destinations need (recording the values they had in `previous`, for
 * teardown) and loads the table in one transaction. Throws a DataPlaneError (or EnvironmentError) naming the cause.
 */
async function loadKernelRuleset(
  exec: Exec,
  spec: KernelForwardingSpec,
  previous: Array<[string, string]>,
  /** At startup: undo what was changed when loading fails. A reload keeps the table it had (nft -f is atomic). */
  undo?: () => Promise<void>,
): Promise<void> {
  if (!NAME.test(spec.interface))
    throw new DataPlaneError(`kernel forwarding: "${spec.interface}" is not an interface name`);
  if (isIP(spec.address) !== 4) throw new DataPlaneError(`kernel forwarding: "${spec.address}" is not an IPv4 address`);
  if (spec.address6 !== undefined && isIP(spec.address6) !== 6)
    throw new DataPlaneError(`kernel forwarding: "${spec.address6}" is not an IPv6 address`);
  if (spec.forwards.length === 0) throw new DataPlaneError('kernel forwarding: no ports to forward');
  for (const forward of spec.forwards) {
    if (forward.proxyProtocol) {
      throw new DataPlaneError(
        `kernel forwarding: port ${forward.listenPort}/tcp needs its PROXY header rewritten, which only the ` +
          `forwarder does`,
        {
          hint: 'use --home-forwarding proxy with --proxy-protocol-version 2',
        },
      );
    }
    if (isIP(forward.targetHost) !== 4) {
      throw new DataPlaneError(`kernel forwarding: the destination "${forward.targetHost}" is not an IPv4 address`, {
        hint: 'use --home-forwarding proxy for host names and IPv6 destinations',
      });
    }
  }
  const kinds = new Map<string, DestinationKind>();
  const outgoing = new Set<string>();
  for (const target of new Set(spec.forwards.map((f) => f.targetHost))) {
    const { kind, dev } = await classify(exec, spec.netns, target);
    kinds.set(target, kind);
    if (kind === 'remote' && dev && dev !== spec.interface) outgoing.add(dev);
  }
  for (const dev of outgoing) {
    // Replies from the destination arrive on that interface and are forwarded into the tunnel.
    if ((await readSysctl(exec, spec.netns, sysctlKey(dev, 'forwarding'))) !== '1') {
      const remote = [...kinds]
        .filter(([, kind]) => kind === 'remote')
        .map(([target]) => target)
        .join(', ');
      throw new EnvironmentError(`kernel forwarding to ${remote} needs IPv4 forwarding on ${dev}, which is off`, {
        hint:
          `enable it (sysctl -w ${sysctlKey(dev, 'forwarding')}=1; on NixOS ` +
          `boot.kernel.sysctl."net.ipv4.conf.all.forwarding" = true), or use --home-forwarding proxy`,
      });
    }
  }

  const wanted: Array<[string, string]> = [];
  if ([...kinds.values()].includes('loopback')) wanted.push([sysctlKey(spec.interface, 'route_localnet'), '1']);
  if ([...kinds.values()].includes('remote')) wanted.push([sysctlKey(spec.interface, 'forwarding'), '1']);
  try {
    for (const [key, value] of wanted) {
      if (previous.some(([k]) => k === key)) continue;
      const before = await readSysctl(exec, spec.netns, key);
      if (before === undefined) throw new Error(`cannot read ${key}`);
      if (before === value) continue;
      previous.push([key, before]);
      await writeSysctl(exec, spec.netns, key, value);
    }
    const [file, args] = inNetns(spec.netns, 'nft', ['-f', '-']);
    await exec(file, args, { input: renderKernelRuleset(spec, kinds), timeoutMs: 30_000 });
  } catch (error) {
    await undo?.().catch(() => {});
    throw new DataPlaneError(`setting up kernel forwarding on ${spec.interface} failed: ${(error as Error).message}`, {
      hint:
        'kernel forwarding needs root (CAP_NET_ADMIN) and nft; --home-forwarding proxy uses the userspace ' +
        'forwarder instead',
      cause: error,
    });
  }
}

export interface NftCounter {
  packets: number;
  bytes: number;
}

/** `nft -j list counters …` → name → values. */
export function parseNftCounters(json: string): Map<string, NftCounter> {
  const counters = new Map<string, NftCounter>();
  let parsed: { nftables?: Array<{ counter?: { name?: string; packets?: number; bytes?: number } }> };
  try {
    parsed = JSON.parse(json) as typeof parsed;
  } catch {
    return counters;
  }
  for (const item of parsed.nftables ?? []) {
    const counter = item.counter;
    if (counter?.name) counters.set(counter.name, { packets: counter.packets ?? 0, bytes: counter.bytes ?? 0 });
  }
  return counters;
}
