// innisfree plan: what the edge (`services.innisfree`) and the home host would run for a tunnel. Records the
// tunnel's identity (addressing and keys) in its state directory on first use, so later runs and `up` agree.
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { type HomeConfig, type Plan } from '../plan.js';
import { prepareTunnel } from '../prepare.js';
import { serializeEdgeConfig } from '../spec/edge-config.js';
import { loadTunnelSpec } from '../spec/load.js';
import { formatPortRange } from '../spec/ports.js';
import { stateRoot } from '../state/paths.js';

export interface PlanOptions {
  flags: Record<string, unknown>;
  json: boolean;
  home: boolean;
}

export async function planCommand(
  ctx: Pick<Context, 'exec' | 'env' | 'clock'>,
  options: PlanOptions,
): Promise<CommandOutcome> {
  const { spec } = await loadTunnelSpec(options.flags, ctx.env);
  const { plan } = await prepareTunnel(ctx.exec, stateRoot(ctx.env), spec, new Date(ctx.clock.now()));
  if (options.json)
    return { output: options.home ? `${JSON.stringify(plan.home, null, 2)}\n` : serializeEdgeConfig(plan.edge) };
  return { output: renderPlan(plan, spec.ports.map(formatPortRange).join(', ')) };
}

function renderPlan(plan: Plan, ports: string): string {
  const { home } = plan;
  return [
    `Tunnel ${plan.name}: ${ports}`,
    '',
    `Edge configuration (services.innisfree, sha256 ${plan.configHash.slice(0, 12)}):`,
    serializeEdgeConfig(plan.edge).trimEnd(),
    '',
    'Home side:',
    ...renderHome(home),
    '',
  ].join('\n');
}

function renderHome(home: HomeConfig): string[] {
  const lines = [
    `  WireGuard interface  ${home.interface}  ${home.address}${home.address6 ? ` ${home.address6}` : ''}`,
    `  edge peer            ${home.edgeAddress}, endpoint <edge address>:${home.edgeWireguardPort}, keepalive ` +
      `${home.persistentKeepalive}s, mtu ${home.mtu}`,
    `  allowed IPs          ${home.allowedIps.join(', ')}`,
  ];
  if (home.policyRouting) {
    const routing = home.policyRouting;
    const selectors = [
      ...(routing.from.length > 0 ? [`from ${routing.from.join(', ')}`] : []),
      ...(routing.fwmark !== undefined ? [`fwmark ${routing.fwmark}`] : []),
      ...(routing.localFrom ?? []).map((from) => `from ${from}`),
    ];
    lines.push(
      `  policy routing       ${selectors.join('; ')} lookup table ${routing.table} (replies to clients go back ` +
        `through the tunnel)`,
    );
  }
  if (home.forwards.length === 0) {
    lines.push('  forwarder            none: the service listens on the tunnel address itself');
  } else if (home.forwarding === 'kernel') {
    lines.push(
      `  kernel forwarding (nftables DNAT at home; the service sees the address the edge sends from` +
        `${home.masquerade ? '; masquerade: this host' : ''}):`,
    );
    for (const forward of home.forwards) {
      lines.push(
        `    ${forward.listenAddress}:${forward.listenPort}/${forward.protocol} -> ${forward.targetHost}:` +
          `${forward.targetPort}`,
      );
    }
  } else {
    lines.push('  forwarder:');
    for (const forward of home.forwards) {
      lines.push(
        `    ${forward.listenAddress}:${forward.listenPort}/${forward.protocol} -> ${forward.targetHost}:` +
          `${forward.targetPort}`,
      );
    }
  }
  return lines;
}
