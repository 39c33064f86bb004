// Policy routing for the home side, in one table of this tunnel's own:
// - nftables forwarding on the edge: the edge does not masquerade, so packets arrive from real client addresses
//   and the replies, sent from the home tunnel address, must go back through the tunnel, not out of the home
//   router: a source rule `from <home tunnel ip> lookup <table>`.
// - kernel forwarding at home: replies carry the connection's mark (restored by the tunnel's nftables table), so a
//   rule `fwmark <mark> lookup <table>` sends them to the tunnel whatever their source (a service bound to 0.0.0.0,
//   a LAN host). A loopback destination's replies start with a 127.x source that only an interface with
//   route_localnet may carry: `from <loopback> lookup <table>` lets that first route lookup succeed.
// The table's default route is the tunnel; the main table is never touched. Up and down are both idempotent, and
// down removes every rule that points at the table, so a crashed run's rules go with the next run's teardown.
import type { Exec } from '../lib/context.js';
import { DataPlaneError } from '../lib/errors.js';

export interface PolicyRouting {
  table: number;
  priority: number;
  /** Source addresses (no prefix), IPv4 and/or IPv6. */
  from: string[];
  /** Packets with this mark use the table (kernel forwarding at home). */
  fwmark?: number;
  /** Loopback sources whose replies start in the table (kernel forwarding to 127.x); priority + 1. */
  localFrom?: string[];
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
  fwmark?: string;
  table?: string;
}

type Family = '-4' | '-6';

interface Rule {
  family: Family;
  /** The selector as `ip rule` takes it: ['from', '10.50.0.2'] or ['fwmark', '20001']. */
  selector: string[];
  priority: number;
  matches(entry: RuleEntry): boolean;
}

function familyOf(address: string): Family {
  return address.includes(':') ? '-6' : '-4';
}

function ipArgs(netns: string | undefined, family: Family, args: string[]): string[] {
  return [...(netns ? ['-n', netns] : []), family, ...args];
}

function rulesOf(routing: PolicyRouting): Rule[] {
  const table = String(routing.table);
  const fromRule = (from: string, priority: number): Rule => {
    const family = familyOf(from);
    const full = family === '-6' ? 128 : 32;
    return {
      family,
      selector: ['from', from],
      priority,
      matches: (e) =>
        e.priority === priority &&
        e.src === from &&
        (e.srclen === undefined || e.srclen === full) &&
        e.table === table &&
        e.fwmark === undefined,
    };
  };
  const rules = routing.from.map((from) => fromRule(from, routing.priority));
  if (routing.fwmark !== undefined) {
    const mark = routing.fwmark;
    // IPv6 replies of kernel forwarding carry the mark too when the tunnel carries IPv6.
    const markFamilies: Family[] = [
      '-4',
      ...(routing.from.some((from) => familyOf(from) === '-6') ? (['-6'] as const) : []),
    ];
    for (const family of markFamilies) {
      rules.push({
        family,
        selector: ['fwmark', String(mark)],
        priority: routing.priority,
        matches: (e) =>
          e.priority === routing.priority && e.fwmark !== undefined && Number(e.fwmark) === mark && e.table === table,
      });
    }
  }
  for (const from of routing.localFrom ?? []) rules.push(fromRule(from, routing.priority + 1));
  return rules;
}

async function listRules(exec: Exec, netns: string | undefined, family: Family): Promise<RuleEntry[]> {
  const result = await exec('ip', ipArgs(netns, family, ['-j', 'rule', 'show']), { timeoutMs: 10_000 });
  return JSON.parse(result.stdout || '[]') as RuleEntry[];
}

function families(routing: PolicyRouting): Family[] {
  return [...new Set(rulesOf(routing).map((rule) => rule.family))];
}

export async function policyRoutingUp(exec: Exec, target: PolicyRoutingTarget): Promise<void> {
  const { routing } = target;
  try {
    for (const family of families(routing)) {
      await exec(
        'ip',
        ipArgs(target.netns, family, [
          'route',
          'replace',
          'default',
          'dev',
          target.interface,
          'table',
          String(routing.table),
        ]),
        {
          timeoutMs: 10_000,
        },
      );
    }
    for (const rule of rulesOf(routing)) {
      if ((await listRules(exec, target.netns, rule.family)).some(rule.matches)) continue;
      await exec(
        'ip',
        ipArgs(target.netns, rule.family, [
          'rule',
          'add',
          ...rule.selector,
          'lookup',
          String(routing.table),
          'priority',
          String(rule.priority),
        ]),
        { timeoutMs: 10_000 },
      );
    }
  } catch (error) {
    await policyRoutingDown(exec, target).catch(() => {});
    throw new DataPlaneError(`setting up policy routing for ${target.interface} failed: ${(error as Error).message}`, {
      hint: 'innisfree needs root (CAP_NET_ADMIN) for policy routing (nftables forwarding, kernel forwarding at home)',
      cause: error,
    });
  }
}

export async function policyRoutingDown(exec: Exec, target: PolicyRoutingTarget): Promise<void> {
  const { routing } = target;
  const table = String(routing.table);
  for (const family of ['-4', '-6'] as const) {
    // Every rule into the table is this tunnel's (the table number is its own), whatever run added it and with
    // whatever selector; duplicates included. Bounded, in case a rule refuses to go.
    const rules = (await listRules(exec, target.netns, family).catch(() => [])).filter((rule) => rule.table === table);
    for (let count = rules.length; count > 0; count--) {
      await exec('ip', ipArgs(target.netns, family, ['rule', 'del', 'table', table]), {
        timeoutMs: 10_000,
        reject: false,
      });
    }
    // The table is this tunnel's own; flushing one that is already empty is fine.
    await exec('ip', ipArgs(target.netns, family, ['route', 'flush', 'table', table]), {
      timeoutMs: 10_000,
      reject: false,
    });
  }
}
