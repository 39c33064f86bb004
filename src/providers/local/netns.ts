// Thin effects over iproute2 for the local provider: namespaces, links, addresses, and the processes living in a
// namespace. Every call names exactly what it touches; nothing here matches by prefix.
import { existsSync, readFileSync } from 'node:fs';
import { type HostNetwork, hostNetworksFromIp } from '../../addressing.js';
import type { Exec } from '../../lib/context.js';
import { parsePid } from '../../lib/pid.js';
import { hostNetworks6FromIp } from './layout.js';

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

export async function linkExists(exec: Exec, name: string, netns?: string): Promise<boolean> {
  const result = await exec('ip', [...(netns ? ['-n', netns] : []), 'link', 'show', 'dev', name], { reject: false });
  return result.exitCode === 0;
}

/** Pids of every process whose network namespace is `name`. */
export async function pidsInNetns(exec: Exec, name: string): Promise<number[]> {
  if (!netnsExists(name)) return [];
  const result = await exec('ip', ['netns', 'pids', name], { reject: false });
  if (result.exitCode !== 0) return [];
  return result.stdout
    .split(/\s+/)
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
}

/** Whether pid names a running process (a zombie waiting for its parent to reap it is not running). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The pid in a pid file, if the file exists and names a live process. */
export function livePidFrom(pidFile: string): number | undefined {
  try {
    const pid = parsePid(readFileSync(pidFile, 'utf8'));
    return pid !== undefined && processAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stops every process in the namespace: SIGTERM, then SIGKILL for what is left after graceMs. */
export async function killNetnsProcesses(
  exec: Exec,
  name: string,
  sleep: (ms: number) => Promise<void>,
  graceMs = 3000,
): Promise<void> {
  const signalAll = (pids: number[], signal: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  };
  signalAll(await pidsInNetns(exec, name), 'SIGTERM');
  for (let waited = 0; waited < graceMs; waited += 100) {
    if ((await pidsInNetns(exec, name)).length === 0) return;
    await sleep(100);
  }
  signalAll(await pidsInNetns(exec, name), 'SIGKILL');
  for (let waited = 0; waited < 2000; waited += 100) {
    if ((await pidsInNetns(exec, name)).length === 0) return;
    await sleep(100);
  }
}

export interface HostAddressUse {
  addresses: Set<string>;
  /** Destinations of routes in every table (without prefix length for host routes). */
  routes: Set<string>;
}

/** The IPv4 addresses and route destinations in use in this (the home) namespace. */
export async function hostAddressUse(exec: Exec): Promise<HostAddressUse> {
  const addr = await exec('ip', ['-j', '-4', 'addr', 'show']);
  const route = await exec('ip', ['-j', '-4', 'route', 'show', 'table', 'all']);
  const addresses = new Set<string>();
  for (const link of JSON.parse(addr.stdout || '[]') as Array<{
    addr_info?: Array<{ local?: string; address?: string }>;
  }>) {
    for (const info of link.addr_info ?? []) {
      if (info.local) addresses.add(info.local);
      if (info.address) addresses.add(info.address);
    }
  }
  const routes = new Set<string>();
  for (const r of JSON.parse(route.stdout || '[]') as Array<{ dst?: string }>) {
    if (r.dst) routes.add(r.dst.replace(/\/32$/, ''));
  }
  return { addresses, routes };
}

/**
 * This namespace's IPv4 networks (interface addresses with their prefix, routes of every table), with their devices.
 */
export async function hostNetworks(exec: Exec): Promise<HostNetwork[]> {
  const addr = await exec('ip', ['-j', '-4', 'addr', 'show']);
  const route = await exec('ip', ['-j', '-4', 'route', 'show', 'table', 'all']);
  return hostNetworksFromIp(addr.stdout, route.stdout);
}

/** This namespace's IPv6 networks (see hostNetworks6FromIp); none when the kernel has IPv6 off. */
export async function hostNetworks6(exec: Exec): Promise<HostNetwork[]> {
  const addr = await exec('ip', ['-j', '-6', 'addr', 'show']);
  const route = await exec('ip', ['-j', '-6', 'route', 'show', 'table', 'all']);
  return hostNetworks6FromIp(addr.stdout, route.stdout);
}

/** Whether this kernel has IPv6 and it is not switched off. */
export function ipv6Available(): boolean {
  try {
    return readFileSync('/proc/sys/net/ipv6/conf/all/disable_ipv6', 'utf8').trim() === '0';
  } catch {
    return false;
  }
}
