// innisfree up: bring a tunnel up and keep it up until SIGINT/SIGTERM. Wiring only: the checks before anything is
// made (up-preflight.ts), the claim on the state directory, the prepared tunnel and the real effects (tunnel-deps.ts)
// handed to runTunnel, which owns the order of things and the teardown.
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { prepareTunnel, requireKernelForwardingHere } from '../prepare.js';
import { providerKit } from '../providers/index.js';
import { fixedFieldError } from '../reload.js';
import { runTunnel } from '../run-tunnel.js';
import { loadTunnelSpec } from '../spec/load.js';
import type { TunnelSpec } from '../spec/tunnel.js';
import { stateRoot } from '../state/paths.js';
import { ResourceLedger } from '../state/resources.js';
import { readStatus } from '../state/status.js';
import { claimTunnelState } from '../state/tunnel-claim.js';
import { tunnelDeps } from '../tunnel-deps.js';
import { type UpFlags, preflightUp } from './up-preflight.js';
import { readyEvent } from './ready-event.js';
import { replaceEdge } from './replace-edge.js';

export interface UpOptions extends UpFlags {
  flags: Record<string, unknown>;
}

export async function upCommand(ctx: Context, options: UpOptions): Promise<CommandOutcome> {
  const { spec, tokenFile } = await loadTunnelSpec(options.flags, ctx.env);
  const kit = providerKit(spec.provider);
  await preflightUp(ctx, kit, spec, options);
  const root = stateRoot(ctx.env);
  const claim = await claimTunnelState(root, spec.name, `innisfree up (${spec.provider})`);
  try {
    const prepare = async (next: TunnelSpec) => {
      const prepared = await prepareTunnel(ctx.exec, root, next, new Date(ctx.clock.now()));
      requireKernelForwardingHere(next, prepared.plan.home.forwarding, prepared.homeHost.kernelForwarding);
      return prepared;
    };
    const { plan, paths, identity } = await prepare(spec);
    const provider = await kit.provider(ctx, { tokenFile, firewall: options.cloudFirewall });
    const recordedEdgeId = (await readStatus(paths))?.edge?.id;
    const deployer = await kit.deployer(ctx);
    const deps = tunnelDeps(ctx, spec, paths, identity.hostKey.publicKey, provider, deployer, kit.bootstrap(spec));
    claim.keep();
    const ledger = await ResourceLedger.open(paths.resources, spec.name, () => ctx.clock.now());
    const tunnel = { spec, plan, paths, identity, ledger, ...(recordedEdgeId ? { recordedEdgeId } : {}) };
    if (options.replaceEdge) await replaceEdge(ctx, deps, tunnel);
    // A reload reads the same sources again: the flags and INNISFREE_* captured at start, --file and config.json now.
    const replan = async () => {
      const { spec: next } = await loadTunnelSpec(options.flags, ctx.env);
      // Refused before prepareTunnel, which would record a new address allocation for a changed pool.
      const fixed = fixedFieldError(spec, next);
      if (fixed) throw fixed;
      return { spec: next, plan: (await prepare(next)).plan };
    };
    await runTunnel(ctx, deps, {
      ...tunnel,
      onReady: (ready) =>
        void readyEvent(provider, spec, ready.edge, ready.served.edge.ipv6).then((event) => ctx.emit(event)),
      ...(ctx.reloads ? { reloads: ctx.reloads, replan } : {}),
    });
  } catch (error) {
    await claim.release(error);
    throw error;
  }
  await claim.release();
  return {};
}
