// up --replace-edge: before the tunnel runs, a new edge is made, bootstrapped and deployed at its own address,
// and only once it serves the plan do the reserved addresses and DNS records move to it (provider.replaceEdge).
// runTunnel then finds that edge again with the plan already active, as after any re-attach.
import type { Context } from '../lib/context.js';
import { DeployError, UsageError } from '../lib/errors.js';
import type { Plan } from '../plan.js';
import type { EdgeIdentity } from '../providers/provider.js';
import type { TunnelDeps } from '../run-tunnel-context.js';
import { connectSsh, sshTargetFor } from '../edge/ssh.js';
import type { EdgeInfo } from '../providers/provider.js';
import type { TunnelSpec } from '../spec/tunnel.js';
import type { ResourceLedger } from '../state/resources.js';
import type { TunnelPaths } from '../state/paths.js';

/**
 * The edge reads its reserved IPv6 from DigitalOcean's metadata at boot, before the replacement was given it: the
 * metadata is fetched again (nixpkgs' unit skips the fetch while the file exists) and the addresses set from it.
 */
export const REFRESH_ADDRESSES_COMMAND =
  'rm -f /run/do-metadata/v1.json && systemctl restart digitalocean-metadata.service ' +
  'innisfree-public-addresses.service';

export type RefreshAddresses = (
  edge: EdgeInfo,
  paths: TunnelPaths,
  spec: TunnelSpec,
  signal: AbortSignal,
) => Promise<void>;

const refreshOverSsh: RefreshAddresses = async (edge, paths, spec, signal) => {
  const connection = await connectSsh(sshTargetFor(paths, edge.directIpv4 ?? edge.ipv4, spec.edgeSshPort), { signal });
  try {
    const result = await connection.exec(REFRESH_ADDRESSES_COMMAND);
    if (result.exitCode !== 0) throw new Error(result.stderr.trim() || `exit ${result.exitCode}`);
  } finally {
    connection.close();
  }
};

export async function replaceEdge(
  ctx: Context,
  deps: TunnelDeps,
  input: {
    spec: TunnelSpec;
    plan: Plan;
    paths: TunnelPaths;
    identity: EdgeIdentity;
    ledger: ResourceLedger;
    recordedEdgeId?: string;
  },
  refresh: RefreshAddresses = refreshOverSsh,
): Promise<void> {
  const { spec, plan, paths } = input;
  const provider = deps.provider;
  if (!provider.replaceEdge) {
    throw new UsageError(`--replace-edge: the ${spec.provider} provider cannot replace an edge`, {
      hint: `drop --replace-edge (innisfree down ${spec.name} and up again makes a new edge)`,
    });
  }
  await deps.writeEdgeFiles(plan);
  const { edge } = await provider.replaceEdge({
    spec,
    identity: input.identity,
    emit: ctx.emit,
    signal: ctx.signal,
    ledger: input.ledger,
    ...(input.recordedEdgeId ? { recordedEdgeId: input.recordedEdgeId } : {}),
    serve: async (edge, signal) => {
      const session = await deps.reachEdge(edge, true, async () => {}, signal);
      try {
        await deps.deployer.apply({
          tunnel: spec.name,
          edgeDir: paths.edgeDir,
          configHash: plan.configHash,
          target: sshTargetFor(paths, edge.ipv4, spec.edgeSshPort),
          emit: ctx.emit,
          signal,
        });
        const status = await session.status();
        if (status?.configHash !== plan.configHash) {
          throw new DeployError(`the replacement edge ${edge.ipv4} does not report the deployed configuration`, {
            hint: `check it with innisfree ssh ${spec.name}; the old edge still serves`,
          });
        }
      } finally {
        await session.close().catch(() => {});
      }
    },
  });
  if (edge.directIpv6) {
    // A failure here is not the replacement's: the addresses have moved and IPv4 serves; IPv6 follows at a reboot.
    await refresh(edge, paths, spec, ctx.signal).catch((error: unknown) => {
      ctx.emit({
        type: 'log',
        level: 'warn',
        message:
          `the new edge did not take up reserved IPv6 ${edge.ipv6} yet (${(error as Error).message}); run: ` +
          `innisfree ssh ${spec.name} -- '${REFRESH_ADDRESSES_COMMAND}'`,
      });
    });
  }
}
