// Proving the tunnel serves before it is reported ready: which destinations answer at home, then the first
// handshake and probes from the edge through the tunnel (and of the public listeners).
import { DataPlaneError } from './lib/errors.js';
import { mapLimit } from './lib/map-limit.js';
import type { DeployedConfig } from './edge/deployed-config.js';
import type { EdgeSession, ProbeTarget } from './edge/edge-session.js';
import { endpointOf } from './edge/ssh.js';
import type { HomeDataPlane } from './home/data-plane.js';
import type { HomeConfig } from './plan.js';
import { isLoopback } from './spec/primitives.js';
import {
  LOCAL_PROBE_PARALLELISM,
  type RunTunnelContext,
  type RunTunnelTiming,
  type TunnelDeps,
  checkAborted,
} from './run-tunnel-context.js';

export async function verify(
  ctx: RunTunnelContext,
  connection: EdgeSession,
  dataPlane: HomeDataPlane,
  plan: DeployedConfig,
  timing: RunTunnelTiming,
  destinations: DestinationCheck,
): Promise<void> {
  const deadline = ctx.clock.now() + timing.handshakeTimeoutMs;
  for (;;) {
    const sample = await Promise.race([dataPlane.sample(), dataPlane.failure]);
    checkAborted(ctx.signal);
    if (sample.latestHandshake > 0) break;
    if (ctx.clock.now() >= deadline) {
      throw new DataPlaneError(
        `no WireGuard handshake with the edge within ${Math.round(timing.handshakeTimeoutMs / 1000)} s`,
        {
          hint:
            `check that UDP ${plan.edge.wireguard.listenPort} reaches the edge from here (firewall, NAT), then ` +
            `run up again`,
        },
      );
    }
    await ctx.clock.sleep(500, ctx.signal);
  }
  const homeIp = plan.edge.wireguard.peer.address;
  const tcpPorts = plan.edge.ports.filter((p) => p.protocol === 'tcp');
  // Through the tunnel to the home listener: proves WireGuard, routing and the forwarder (or the service itself).
  // Kernel forwarding has no listener of its own: the probe reaches the destination, so a port whose destination
  // does not answer here yet cannot be checked (it is reported as silent instead). With the forwarder and a
  // destination that refuses, the forwarder resets the probe at once, and that reset can overtake the handshake's
  // last packet through the tunnel: "refused" then still proves the round trip through WireGuard to the forwarder.
  const kernel = plan.home.forwarding === 'kernel';
  const localPorts = [...new Set(tcpPorts.map((p) => p.localPort))].filter(
    (port) => !kernel || !destinations.silentPorts.has(port),
  );
  const targets: Array<ProbeTarget & { what: string; refusedIsFine: boolean }> = localPorts.map((port) => ({
    host: homeIp,
    port,
    what: `${homeIp}:${port} through the tunnel`,
    refusedIsFine: destinations.silentPorts.has(port),
  }));
  // The public listeners themselves (nginx); kernel DNAT has no listener to probe from the edge itself.
  if (plan.edge.forwarding === 'nginx') {
    for (const port of tcpPorts)
      targets.push({
        host: '127.0.0.1',
        port: port.publicPort,
        what: `public port ${port.publicPort}/tcp on the edge`,
        refusedIsFine: false,
      });
  }
  // One command on the edge probes them all in parallel: N ports take seconds, not N round trips.
  const results = await connection.probeTcpAll(targets, { signal: ctx.signal });
  checkAborted(ctx.signal);
  const failedTargets = targets.flatMap((t, i) =>
    results[i] === 'open' || (results[i] === 'refused' && t.refusedIsFine)
      ? []
      : [`${t.what} (${results[i] === 'silent' ? 'no answer' : 'refused'})`],
  );
  const failed =
    failedTargets.length > 8 ? [...failedTargets.slice(0, 8), `${failedTargets.length - 8} more`] : failedTargets;
  if (failed.length > 0) {
    throw new DataPlaneError(`the edge could not reach ${failed.join(', ')}`, {
      hint:
        plan.home.forwards.length === 0
          ? 'with --destination none the service must listen on the tunnel address; check it does'
          : kernel && !plan.home.masquerade && plan.home.forwards.some((f) => !isLoopback(f.targetHost))
            ? 'with kernel forwarding to another host, that host must route its replies via this one; or add ' +
              '--masquerade, or use --home-forwarding proxy'
            : 'check the edge with innisfree status and innisfree ssh; then run up again',
    });
  }
  if (plan.edge.ports.some((p) => p.protocol === 'udp')) {
    ctx.emit({
      type: 'log',
      level: 'debug',
      message: 'UDP ports are not probed: UDP has no handshake to test without the application',
    });
  }
}

export interface DestinationCheck {
  /** "127.0.0.1:8080/tcp" for each TCP destination that did not answer. */
  silent: string[];
  /** The home listen ports whose destination did not answer. */
  silentPorts: Set<number>;
}

export async function checkDestinations(
  ctx: RunTunnelContext,
  deps: TunnelDeps,
  home: HomeConfig,
): Promise<DestinationCheck> {
  const forwards = home.forwards.filter((f) => f.protocol === 'tcp');
  // In parallel, bounded: each is a connect from this host, and a silent destination costs the probe's timeout.
  const answering = await mapLimit(
    forwards,
    LOCAL_PROBE_PARALLELISM,
    (f) => deps.probeLocal(f.targetHost, f.targetPort),
    ctx.signal,
  );
  const silent = forwards.filter((_, i) => !answering[i]);
  return {
    silent: silent.map((f) => `${endpointOf(f.targetHost, f.targetPort)}/tcp`),
    silentPorts: new Set(silent.map((f) => f.listenPort)),
  };
}
