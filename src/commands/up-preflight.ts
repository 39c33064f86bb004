// What `up` checks before it takes the lock or makes anything: the flags the provider cannot honour, the tools and
// privileges it needs here, and destinations that do not resolve (a warning: the service may not be up yet).
import { unresolvedDestination } from '../home/destination-check.js';
import type { Context } from '../lib/context.js';
import { EnvironmentError, UsageError } from '../lib/errors.js';
import type { ProviderKit } from '../providers/index.js';
import type { TunnelSpec } from '../spec/tunnel.js';

export interface UpFlags {
  cloudFirewall: boolean;
  replaceEdge?: boolean;
}

export async function preflightUp(ctx: Context, kit: ProviderKit, spec: TunnelSpec, flags: UpFlags): Promise<void> {
  if (flags.cloudFirewall && !kit.traits.cloudFirewall) {
    throw new UsageError(`--cloud-firewall: only the digitalocean provider has cloud firewalls`, {
      hint:
        `drop --cloud-firewall when using --provider ${spec.provider} ` +
        "(the edge's own firewall opens exactly its ports)",
    });
  }
  if (flags.replaceEdge && !kit.traits.replaceEdge) {
    throw new UsageError('--replace-edge: only the digitalocean provider replaces an edge', {
      hint:
        `drop --replace-edge when using --provider ${spec.provider} ` +
        `(innisfree down ${spec.name} and up again makes a new edge)`,
    });
  }
  // Before anything is created: a missing tool or privilege must not leave a half-made edge behind.
  const missing = (await kit.requirements(ctx, spec)).filter((c) => c.status === 'fail');
  if (missing.length > 0) {
    throw new EnvironmentError(
      `innisfree up cannot run here: ${missing.map((c) => `${c.name}: ${c.detail}`).join('; ')}`,
      {
        hint:
          `install what is missing (innisfree doctor --provider ${spec.provider} checks it all), or run innisfree ` +
          `from its Nix package`,
      },
    );
  }
  const destinations = new Set([spec.destination, ...spec.ports.flatMap((p) => p.destination ?? [])]);
  for (const destination of destinations) {
    const unresolved = await unresolvedDestination(destination);
    if (unresolved) ctx.emit({ type: 'log', level: 'warn', message: unresolved });
  }
}
