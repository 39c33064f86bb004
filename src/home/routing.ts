// Policy routing for kernel (nftables) forwarding on the edge: the edge does not masquerade, so packets arrive from
// real client addresses and the replies — sent from the home tunnel address — must go back through the tunnel, not
// out of the home router. A source rule `from <home tunnel ip> lookup <table>` and a default route via the tunnel
// in that table do it without touching the main table. Adding and removing are both idempotent.
import type { Exec } from '../lib/context.js';
import { DataPlaneError } from '../lib/errors.js';

export interface PolicyRouting {
  table: number;
  priority: number;
  /** Source addresses (no prefix), IPv4 and/or IPv6. */
  from: string[];
}

export interface PolicyRoutingTarget {
  /** The tunnel interface the default route of the table points at. */
  interface: string;
  routing: PolicyRouting;
  netns?: string;
}

interface RuleEntry {
  priority?: number;
  src?: string;
  srclen?: number;
  table?: string;
}

type Family = '-4' | '-6';

function familyOf(address: string): Family {
  return address.includes(':') ? '-6' : '-4';
}

function ipArgs(netns: string | undefined, family: Family, args: string[]): string[] {
  return [...(netns ? ['-n', netns] : []), family, ...args];
}

async function matchingRules(exec: Exec, target: PolicyRoutingTarget, from: string): Promise<number> {
  const family = familyOf(from);
  const result = await exec('ip', ipArgs(target.netns, family, ['-j', 'rule', 'show']), { timeoutMs: 10_000 });
  const rules = JSON.parse(result.stdout || '[]') as RuleEntry[];
  const full = family === '-6' ? 128 : 32;
  return rules.filter(
    (rule) =>
      rule.priority === target.routing.priority &&
      rule.src === from &&
      (rule.srclen === undefined || rule.srclen === full) &&
      rule.table === String(target.routing.table),
  ).length;
}

function families(routing: PolicyRouting): Family[] {
  return [...new Set(routing.from.map(familyOf))];
}

export async function policyRoutingUp(exec: Exec, target: PolicyRoutingTarget): Promise<void> {
  const { routing } = target;
  try {
    for (const family of families(routing)) {
      await exec('ip', ipArgs(target.netns, family, ['route', 'replace', 'default', 'dev', target.interface, 'table', String(routing.table)]), {
        timeoutMs: 10_000,
      });
    }
    for (const from of routing.from) {
      if ((await matchingRules(exec, target, from)) > 0) continue;
      await exec(
        'ip',
        ipArgs(target.netns, familyOf(from), ['rule', 'add', 'from', from, 'lookup', String(routing.table), 'priority', String(routing.priority)]),
        { timeoutMs: 10_000 },
      );
    }
  } catch (error) {
    await policyRoutingDown(exec, target).catch(() => {});
    throw new DataPlaneError(`setting up policy routing for ${target.interface} failed: ${(error as Error).message}`, {
      hint: 'innisfree needs root (CAP_NET_ADMIN) for nftables forwarding',
      cause: error,
    });
  }
}

export async function policyRoutingDown(exec: Exec, target: PolicyRoutingTarget): Promise<void> {
  const { routing } = target;
  for (const from of routing.from) {
    // Duplicates may exist if something else added the same rule; remove every copy of exactly this rule.
    for (let count = await matchingRules(exec, target, from); count > 0; count--) {
      await exec(
        'ip',
        ipArgs(target.netns, familyOf(from), ['rule', 'del', 'from', from, 'lookup', String(routing.table), 'priority', String(routing.priority)]),
        { timeoutMs: 10_000, reject: false },
      );
    }
  }
  for (const family of families(routing)) {
    // The table is this tunnel's own; flushing one that is already empty is fine.
    await exec('ip', ipArgs(target.netns, family, ['route', 'flush', 'table', String(routing.table)]), { timeoutMs: 10_000, reject: false });
  }
}
