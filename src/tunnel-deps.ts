// The real effects runTunnel needs for one tunnel, wired once: the provider, deployer and bootstrap from the provider
// kit, reaching the edge (edge/reach-edge.ts), the edge files, the home data plane, and reconnecting a session.
import type { Deployer } from './edge/deployer-port.js';
import { edgeFiles } from './edge/deployed-config.js';
import { openEdgeSession } from './edge/edge-session.js';
import { type EdgeBootstrap, reachEdge } from './edge/reach-edge.js';
import { probeTcp } from './edge/ssh.js';
import { startHomeDataPlane } from './home/data-plane.js';
import type { Context } from './lib/context.js';
import type { Provider } from './providers/provider.js';
import type { TunnelDeps } from './run-tunnel-context.js';
import type { TunnelSpec } from './spec/tunnel.js';
import type { TunnelPaths } from './state/paths.js';

/** The real effects runTunnel needs, for one tunnel; provider, deployer and bootstrap come from the provider kit. */
export function tunnelDeps(
  ctx: Context,
  spec: TunnelSpec,
  paths: TunnelPaths,
  hostPublicKey: string,
  provider: Provider,
  deployer: Deployer,
  bootstrap: EdgeBootstrap,
): TunnelDeps {
  const files = edgeFiles(paths, ctx.env);
  return {
    provider,
    deployer,
    reachEdge: (edge, created, onBootstrap, signal) =>
      reachEdge(
        ctx,
        { paths, host: edge.ipv4, sshPort: spec.edgeSshPort, hostPublicKey, bootstrap, created, onBootstrap },
        signal,
      ),
    writeEdgeFiles: (plan) => files.write(plan),
    restoreEdgeFiles: () => files.restore(),
    startDataPlane: (home, peer) =>
      startHomeDataPlane(
        { exec: ctx.exec, emit: ctx.emit },
        { home, privateKeyFile: paths.wireguardPrivate, edgePublicKey: peer.publicKey, edgeEndpoint: peer.endpoint },
      ),
    probeLocal: (host, port) =>
      probeTcp(host, port, 2000).then(
        () => true,
        () => false,
      ),
    reconnectEdge: (session, signal) => openEdgeSession(session.target, { signal, emit: ctx.emit }),
  };
}
