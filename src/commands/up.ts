// innisfree up: bring a tunnel up and keep it up until SIGINT/SIGTERM. Wires the real effects (provider, SSH,
// nixos-anywhere, deployer, home data plane) into runTunnel, which owns the order of things and the teardown.
import { existsSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { unresolvedDestination } from '../home/destination-check.js';
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { BusyError, EnvironmentError, UsageError } from '../lib/errors.js';
import { requireKernelForwardingHere, prepareTunnel } from '../prepare.js';
import { providerKit } from '../providers/index.js';
import { fixedFieldError } from '../reload.js';
import { runTunnel } from '../run-tunnel.js';
import { loadTunnelSpec } from '../spec/load.js';
import { acquireLock } from '../state/lock.js';
import { ResourceLedger } from '../state/resources.js';
import { readStatus } from '../state/status.js';
import { stateRoot, tunnelPaths } from '../state/paths.js';
import { tunnelDeps } from '../tunnel-deps.js';
import { readyEvent } from './ready-event.js';
import { replaceEdge } from './replace-edge.js';

export interface UpOptions {
  flags: Record<string, unknown>;
  /** DigitalOcean: keep a cloud firewall in line with the edge's open ports. */
  cloudFirewall: boolean;
  /** --replace-edge: a new edge takes over the old one's reserved addresses and DNS records before the run. */
  replaceEdge?: boolean;
}

export async function upCommand(ctx: Context, options: UpOptions): Promise<CommandOutcome> {
  const { spec, tokenFile } = await loadTunnelSpec(options.flags, ctx.env);
  const kit = providerKit(spec.provider);
  if (options.cloudFirewall && !kit.traits.cloudFirewall) {
    throw new UsageError(`--cloud-firewall: only the digitalocean provider has cloud firewalls`, {
      hint:
        `drop --cloud-firewall when using --provider ${spec.provider} ` +
        "(the edge's own firewall opens exactly its ports)",
    });
  }
  if (options.replaceEdge && !kit.traits.replaceEdge) {
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
  for (const destination of new Set([
    spec.destination,
    ...spec.ports.flatMap((p) => (p.destination ? [p.destination] : [])),
  ])) {
    const unresolved = await unresolvedDestination(destination);
    if (unresolved) ctx.emit({ type: 'log', level: 'warn', message: unresolved });
  }
  const root = stateRoot(ctx.env);
  const stateDir = tunnelPaths(root, spec.name).dir;
  const hadRoot = existsSync(root);
  const hadState = existsSync(stateDir);
  const lock = await acquireLock(
    tunnelPaths(root, spec.name).lock,
    `tunnel "${spec.name}"`,
    `innisfree up (${spec.provider})`,
  );
  let started = false;
  let discard = false;
  try {
    const { plan, paths, identity, homeHost } = await prepareTunnel(ctx.exec, root, spec, new Date(ctx.clock.now()));
    requireKernelForwardingHere(spec, plan.home.forwarding, homeHost.kernelForwarding);
    const provider = await kit.provider(ctx, { tokenFile, firewall: options.cloudFirewall });
    const recordedEdgeId = (await readStatus(paths))?.edge?.id;
    const deps = tunnelDeps(
      ctx,
      spec,
      paths,
      identity.hostKey.publicKey,
      provider,
      await kit.deployer(ctx),
      kit.bootstrap(spec),
    );
    started = true;
    const ledger = await ResourceLedger.open(paths.resources, spec.name, () => ctx.clock.now());
    if (options.replaceEdge)
      await replaceEdge(ctx, deps, {
        spec,
        plan,
        paths,
        identity,
        ledger,
        ...(recordedEdgeId ? { recordedEdgeId } : {}),
      });
    // A reload reads the same sources again: the flags and INNISFREE_* captured at start, --file and config.json now.
    const replan = async () => {
      const { spec: next } = await loadTunnelSpec(options.flags, ctx.env);
      // Refused before prepareTunnel, which would record a new address allocation for a changed pool.
      const fixed = fixedFieldError(spec, next);
      if (fixed) throw fixed;
      const prepared = await prepareTunnel(ctx.exec, root, next, new Date(ctx.clock.now()));
      requireKernelForwardingHere(next, prepared.plan.home.forwarding, prepared.homeHost.kernelForwarding);
      return { spec: next, plan: prepared.plan };
    };
    await runTunnel(ctx, deps, {
      spec,
      plan,
      paths,
      identity,
      ledger,
      ...(recordedEdgeId ? { recordedEdgeId } : {}),
      onReady: (ready) =>
        void readyEvent(provider, spec, ready.edge, ready.served.edge.ipv6).then((event) => ctx.emit(event)),
      ...(ctx.reloads ? { reloads: ctx.reloads, replan } : {}),
    });
    return {};
  } catch (error) {
    // Refused before anything outside this host existed (bad input such as an --address-pool with no room, a
    // missing token), or because another state directory's tunnel holds the edge: a state directory made by this
    // run alone holds nothing worth keeping, and is not left behind.
    discard = !hadState && (!started || error instanceof BusyError);
    throw error;
  } finally {
    await lock.release();
    if (discard) {
      await rm(stateDir, { recursive: true, force: true });
      if (!hadRoot) await rmdir(root).catch(() => {});
    }
  }
}
