// innisfree up: bring a tunnel up and keep it up until SIGINT/SIGTERM. Wires the real effects (provider, SSH,
// nixos-anywhere, deployer, home data plane) into runTunnel, which owns the order of things and the teardown.
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { bootstrapEdge } from '../edge/bootstrap.js';
import { createDeployer } from '../providers/create-deployer.js';
import type { Deployer } from '../edge/deployer.js';
import { edgeFiles } from '../edge/edge-files.js';
import { openEdgeSession } from '../edge/edge-session.js';
import { pinHostKey } from '../edge/known-hosts.js';
import { type SshTarget, waitReady } from '../edge/ssh.js';
import { startHomeDataPlane } from '../home/data-plane.js';
import type { Context } from '../lib/context.js';
import { EnvironmentError } from '../lib/errors.js';
import { machineChecks } from './doctor.js';
import { systemStreamExec } from '../lib/stream-exec.js';
import { prepareTunnel } from '../prepare.js';
import { createProvider } from '../providers/index.js';
import type { EdgeInfo, Provider } from '../providers/provider.js';
import { type EdgeConnection, type TunnelDeps, endpointOf, runTunnel } from '../run-tunnel.js';
import { loadTunnelSpec } from '../spec/load.js';
import type { TunnelSpec } from '../spec/tunnel.js';
import type { PortRange } from '../spec/ports.js';
import type { EdgeConfig, EdgePort } from '../spec/edge-config.js';
import type { ReadyEvent } from '../lib/events.js';
import { acquireLock } from '../state/lock.js';
import { type TunnelPaths, stateRoot, tunnelPaths } from '../state/paths.js';

export interface UpOptions {
  flags: Record<string, unknown>;
  /** DigitalOcean: keep a cloud firewall in line with the edge's open ports. */
  cloudFirewall: boolean;
}

/** How long a fresh droplet may take to answer SSH (boot, cloud-init) before `up` gives up. */
const SSH_READY_TIMEOUT_MS = 10 * 60_000;
/** A re-attached edge answers quickly or is not running NixOS on its SSH port yet. */
const REATTACH_PROBE_MS = 60_000;

export async function upCommand(ctx: Context, options: UpOptions): Promise<void> {
  const { spec, tokenFile } = await loadTunnelSpec(options.flags, ctx.env);
  // Before anything is created: a missing tool or privilege must not leave a half-made edge behind.
  const missing = (await machineChecks(ctx, spec.provider, { bootstrap: spec.bootstrap })).filter((c) => c.status === 'fail');
  if (missing.length > 0) {
    throw new EnvironmentError(`innisfree up cannot run here: ${missing.map((c) => `${c.name}: ${c.detail}`).join('; ')}`, {
      hint: `install what is missing (innisfree doctor --provider ${spec.provider} checks it all), or run innisfree from its Nix package`,
    });
  }
  const root = stateRoot(ctx.env);
  const paths = tunnelPaths(root, spec.name);
  const lock = await acquireLock(paths.lock, `tunnel "${spec.name}"`, `innisfree up (${spec.provider})`);
  try {
    const { plan } = await prepareTunnel(ctx.exec, root, spec, new Date(ctx.clock.now()));
    const hostPublicKey = (await readFile(paths.hostKeyPublic, 'utf8')).trim();
    const identity = {
      sshPublicKey: plan.edge.ssh.authorizedKeys[0]!,
      hostKey: { privateKey: await readFile(paths.hostKeyPrivate, 'utf8'), publicKey: hostPublicKey },
    };
    const provider = await createProvider(spec.provider, ctx, { tokenFile, firewall: options.cloudFirewall });
    const deps = tunnelDeps(ctx, spec, paths, hostPublicKey, provider, await createDeployer(spec.provider, ctx));
    await runTunnel(ctx, deps, {
      spec,
      plan,
      paths,
      identity,
      onReady: (ready) => {
        void readyEvent(provider, spec, ready.edge, ready.served.edge).then((event) => ctx.emit(event));
      },
    });
  } finally {
    await lock.release();
  }
}

/** The real effects runTunnel needs, for one tunnel; provider and deployer are chosen by the caller. */
export function tunnelDeps(
  ctx: Context,
  spec: TunnelSpec,
  paths: TunnelPaths,
  hostPublicKey: string,
  provider: Provider,
  deployer: Deployer,
): TunnelDeps {
  const files = edgeFiles(paths, ctx.env);
  return {
    provider,
    deployer,
    reachEdge: (edge, created, onBootstrap, signal) => reachEdge(ctx, spec, paths, hostPublicKey, edge, created, onBootstrap, signal),
    writeEdgeFiles: (plan) => files.write(plan),
    restoreEdgeFiles: () => files.restore(),
    startDataPlane: async (home, peer) => {
      const plane = await startHomeDataPlane(
        { exec: ctx.exec, emit: ctx.emit },
        { home, privateKeyFile: paths.wireguardPrivate, edgePublicKey: peer.publicKey, edgeEndpoint: peer.endpoint },
      );
      return { sample: () => plane.sample(), failed: plane.failure, close: () => plane.stop() };
    },
    probeLocal: (host, port) => probeTcp(host, port, 2000),
  };
}

/**
 * Pins the edge's host key (made here, injected at create), makes the edge run NixOS if it does not yet, and opens
 * a session. nixos-anywhere edges boot stock Debian first; a re-attached one may already run NixOS.
 */
async function reachEdge(
  ctx: Context,
  spec: TunnelSpec,
  paths: TunnelPaths,
  hostPublicKey: string,
  edge: EdgeInfo,
  created: boolean,
  onBootstrap: () => Promise<void>,
  signal: AbortSignal,
): Promise<EdgeConnection> {
  const target: SshTarget = {
    host: edge.ipv4,
    port: spec.edgeSshPort,
    user: 'root',
    privateKeyPath: paths.sshPrivate,
    knownHostsPath: paths.knownHosts,
  };
  await pinHostKey(paths.knownHosts, target.host, target.port, hostPublicKey);
  const wait = { clock: ctx.clock, emit: ctx.emit, signal };
  if (spec.provider === 'digitalocean' && spec.bootstrap === 'nixos-anywhere') {
    if (!created && (await runsNixosAlready(target, wait))) return openEdgeSession(target, { signal, emit: ctx.emit });
    await onBootstrap();
    await bootstrapEdge(
      { exec: systemStreamExec, clock: ctx.clock, waitReady },
      {
        method: 'nixos-anywhere',
        edgeDir: paths.edgeDir,
        target,
        hostKeyPrivatePath: paths.hostKeyPrivate,
        hostKeyPublicPath: paths.hostKeyPublic,
        waitTimeoutMs: SSH_READY_TIMEOUT_MS,
        emit: ctx.emit,
        signal,
      },
    );
  } else {
    await waitReady(target, { ...wait, timeoutMs: SSH_READY_TIMEOUT_MS });
  }
  return openEdgeSession(target, { signal, emit: ctx.emit });
}

async function runsNixosAlready(target: SshTarget, wait: { clock: Context['clock']; emit: Context['emit']; signal: AbortSignal }): Promise<boolean> {
  try {
    await waitReady(target, { ...wait, timeoutMs: REATTACH_PROBE_MS });
  } catch (error) {
    if (wait.signal.aborted) throw error;
    return false;
  }
  const session = await openEdgeSession(target, { signal: wait.signal, emit: wait.emit });
  try {
    return await session.runsNixos();
  } finally {
    await session.close();
  }
}

async function readyEvent(provider: Provider, spec: TunnelSpec, edge: EdgeInfo, served: EdgeConfig): Promise<ReadyEvent> {
  const destination = spec.destination === 'none' ? 'the tunnel address' : spec.destination;
  const ports = compressPorts(served.ports).map(
    (r) =>
      `${edge.ipv4}:${span(r.publicStart, r.publicEnd)}/${r.protocol} -> ${destination}:${span(r.localStart, r.localEnd)}${r.proxyProtocol ? ' (PROXY protocol)' : ''}`,
  );
  const firstTcp = served.ports.find((p) => p.protocol === 'tcp');
  let tryIt: string | undefined;
  if (firstTcp && provider.clientCommand) {
    const argv = await provider.clientCommand(spec.name, ['curl', '-sS', '--max-time', '5', `http://${endpointOf(edge.ipv4, firstTcp.publicPort)}/`]);
    tryIt = `sudo ${argv.join(' ')}`;
  } else if (firstTcp) {
    tryIt = `curl -v http://${endpointOf(edge.ipv4, firstTcp.publicPort)}/   (if the service speaks HTTP)`;
  }
  return {
    type: 'ready',
    tunnel: spec.name,
    ipv4: edge.ipv4,
    ...(edge.ipv6 ? { ipv6: edge.ipv6 } : {}),
    ports,
    ...(tryIt ? { tryIt } : {}),
  };
}

function span(from: number, to: number): string {
  return from === to ? `${from}` : `${from}-${to}`;
}

/** Runs of consecutive ports mapped to consecutive local ports, so a range prints as one line. */
function compressPorts(ports: readonly EdgePort[]): Array<Omit<PortRange, 'source'>> {
  const runs: Array<Omit<PortRange, 'source'>> = [];
  for (const port of ports) {
    const last = runs[runs.length - 1];
    if (
      last &&
      last.protocol === port.protocol &&
      last.proxyProtocol === port.proxyProtocol &&
      last.publicEnd + 1 === port.publicPort &&
      last.localEnd + 1 === port.localPort
    ) {
      last.publicEnd = port.publicPort;
      last.localEnd = port.localPort;
    } else {
      runs.push({ protocol: port.protocol, publicStart: port.publicPort, publicEnd: port.publicPort, localStart: port.localPort, localEnd: port.localPort, proxyProtocol: port.proxyProtocol });
    }
  }
  return runs;
}

function probeTcp(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}
