// What a process tree costs: CPU time, and memory as resident set (RSS) and proportional set (PSS, shared pages
// divided among the processes that share them — the fair way to add up socat's one process per connection).
import { readFileSync, readdirSync } from 'node:fs';

export interface MemoryUsage {
  processes: number;
  rssBytes: number;
  pssBytes: number;
}

const TICKS_PER_SECOND = 100;

function children(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = map.get(ppid) ?? [];
      list.push(Number(entry));
      map.set(ppid, list);
    } catch {
      // gone
    }
  }
  return map;
}

function kilobytes(text: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return match ? Number(match[1]) * 1024 : 0;
}

function treeOf(roots: readonly number[]): Set<number> {
  const tree = children();
  const pids = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (pids.has(pid)) continue;
    pids.add(pid);
    stack.push(...(tree.get(pid) ?? []));
  }
  return pids;
}

/**
 * CPU seconds used so far by a tree: every live process's user + system time (all its threads), plus what exited
 * children left in their parent's account (socat's per-connection processes).
 */
export function cpuSecondsOfTree(roots: readonly number[]): number {
  let ticks = 0;
  for (const pid of treeOf(roots)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14-17 of stat (utime, stime, cutime, cstime) are 11-14 after the command name.
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // gone
    }
  }
  return ticks / TICKS_PER_SECOND;
}

export function memoryOfTree(roots: readonly number[]): MemoryUsage {
  const pids = treeOf(roots);
  let rssBytes = 0;
  let pssBytes = 0;
  let processes = 0;
  for (const pid of pids) {
    try {
      rssBytes += kilobytes(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
      pssBytes += kilobytes(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
      processes++;
    } catch {
      // gone
    }
  }
  return { processes, rssBytes, pssBytes };
}
