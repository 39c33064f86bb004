// An optional cloud firewall in front of the edge, named innisfree-<tunnel> and attached by the tunnel's tag, that
// opens exactly what the edge serves: the public port ranges, SSH, the WireGuard port, ICMP. The edge's own
// nftables rules stay the real gate; this one just keeps everything else off the droplet. Kept in step with the
// ports on every ensureEdge once it exists.
import type { TunnelSpec } from '../../spec/tunnel.js';
import { edgeNameOf, edgeTagOf } from '../../spec/tunnel.js';
import type { ResourceLedger } from '../../state/resources.js';
import type { DigitalOceanClient } from './client.js';
import { DigitalOceanError } from './api-errors.js';
import { listAll } from './pagination.js';
import { Firewall, FirewallEnvelope } from './schemas.js';

const EVERYWHERE = ['0.0.0.0/0', '::/0'];

export interface FirewallRuleBody {
  protocol: 'tcp' | 'udp' | 'icmp';
  ports: string;
  sources?: { addresses: string[] };
  destinations?: { addresses: string[] };
}

export interface FirewallBody {
  name: string;
  inbound_rules: FirewallRuleBody[];
  outbound_rules: FirewallRuleBody[];
  tags: string[];
}

export function firewallBodyOf(
  spec: Pick<TunnelSpec, 'name' | 'ports' | 'edgeSshPort' | 'wireguardPort'>,
): FirewallBody {
  const inbound = new Map<string, FirewallRuleBody>();
  const add = (protocol: FirewallRuleBody['protocol'], ports: string): void => {
    inbound.set(`${protocol}/${ports}`, { protocol, ports, sources: { addresses: EVERYWHERE } });
  };
  add('tcp', String(spec.edgeSshPort));
  add('udp', String(spec.wireguardPort));
  for (const range of spec.ports) {
    add(
      range.protocol,
      range.publicStart === range.publicEnd ? String(range.publicStart) : `${range.publicStart}-${range.publicEnd}`,
    );
  }
  add('icmp', '0');
  const outbound: FirewallRuleBody[] = (['tcp', 'udp', 'icmp'] as const).map((protocol) => ({
    protocol,
    ports: '0',
    destinations: { addresses: EVERYWHERE },
  }));
  return {
    name: edgeNameOf(spec.name),
    inbound_rules: [...inbound.values()],
    outbound_rules: outbound,
    tags: [edgeTagOf(spec.name)],
  };
}

export async function findFirewall(client: DigitalOceanClient, name: string): Promise<Firewall | undefined> {
  return (await listAll(client, '/v2/firewalls', 'firewalls', Firewall)).find((f) => f.name === name);
}

/** Creates the firewall, or updates it when its rules or tags differ. Returns what it did. */
export async function ensureFirewall(
  client: DigitalOceanClient,
  body: FirewallBody,
  ledger?: ResourceLedger,
  known?: readonly Firewall[],
): Promise<'created' | 'updated' | 'unchanged'> {
  const existing = known ? known.find((f) => f.name === body.name) : await findFirewall(client, body.name);
  if (!existing) {
    const entry = await ledger?.intend('firewall', { name: body.name });
    try {
      const made = await client.post('/v2/firewalls', body, FirewallEnvelope);
      if (entry) await ledger?.made(entry, made.firewall.id);
      return 'created';
    } catch (error) {
      const found =
        error instanceof DigitalOceanError && error.ambiguous ? await findFirewall(client, body.name) : undefined;
      if (!found) {
        if (entry && !(error instanceof DigitalOceanError && error.ambiguous)) await ledger?.forget(entry);
        throw error;
      }
      if (entry) await ledger?.made(entry, found.id);
      return ensureFirewall(client, body, undefined, [found]);
    }
  }
  if (sameRules(existing, body)) return 'unchanged';
  await client.put(`/v2/firewalls/${existing.id}`, body, FirewallEnvelope);
  return 'updated';
}

export async function deleteFirewall(client: DigitalOceanClient, name: string): Promise<boolean> {
  const existing = await findFirewall(client, name);
  return existing ? client.delete(`/v2/firewalls/${existing.id}`, { missingOk: true }) : false;
}

function sameRules(existing: Firewall, body: FirewallBody): boolean {
  const key = (rules: ReadonlyArray<{ protocol: string; ports?: string | null | undefined }>): string =>
    rules
      .map((r) => `${r.protocol}/${normalizePorts(r.protocol, r.ports)}`)
      .sort()
      .join(',');
  return (
    key(existing.inbound_rules) === key(body.inbound_rules) &&
    key(existing.outbound_rules) === key(body.outbound_rules) &&
    body.tags.every((t) => existing.tags.includes(t))
  );
}

function normalizePorts(protocol: string, ports: string | null | undefined): string {
  if (protocol === 'icmp' || !ports || ports === 'all' || ports === '1-65535') return '0';
  return ports;
}
