// The shape of one local edge, pure: namespace and link names, documentation-range addresses and runtime file
// paths, all derived from a random id and a slot number. Slots keep several local edges (and parallel test runs)
// apart: the slot's root-namespace link name is claimed atomically by creating it, and every address is unique
// per slot.
import { join } from 'node:path';

/**
 * Slots 1..126: the edge is 203.0.113.<slot>, the home side of its link 198.51.100.<slot>, the client 192.0.2.<slot>
 * (inside its own namespace only), a destination host 203.0.113.<slot+128>. The root namespace only gets /32 routes
 * to 203.0.113.x, so a LAN on 192.0.2.0/24 (some sandboxes use it) is never shadowed.
 */
export const SLOT_COUNT = 126;

export interface LocalEdgeLayout {
  id: string;
  slot: number;
  namespaces: {
    edge: string;
    /** The "internet": a client that reaches the edge's public address. */
    client: string;
    /** An optional destination host, reachable from the home side (this namespace). */
    destination: string;
  };
  links: {
    /** Root-namespace end of the home ↔ edge veth. Its name is the slot's claim. */
    home: string;
    /** Root-namespace end of the home ↔ destination veth. */
    destination: string;
    /** Ends inside the namespaces. */
    edgeHomeSide: string;
    edgeClientSide: string;
    clientSide: string;
    destinationSide: string;
  };
  addresses: {
    /** The edge's "public" IPv4. */
    edge: string;
    /** This namespace's address on the link to the edge. */
    home: string;
    client: string;
    destination: string;
    /** This namespace's address on the link to the destination. */
    destinationGateway: string;
  };
}

export function layoutOf(id: string, slot: number): LocalEdgeLayout {
  if (!/^[0-9a-f]{8}$/.test(id)) throw new Error(`local edge id must be 8 hex digits: ${id}`);
  if (!Number.isInteger(slot) || slot < 1 || slot > SLOT_COUNT) throw new Error(`local edge slot out of range: ${slot}`);
  return {
    id,
    slot,
    namespaces: { edge: `isf-edge-${id}`, client: `isf-inet-${id}`, destination: `isf-dest-${id}` },
    links: {
      home: `isl${slot}e`,
      destination: `isl${slot}d`,
      edgeHomeSide: 'home0',
      edgeClientSide: 'inet0',
      clientSide: 'eth0',
      destinationSide: 'eth0',
    },
    addresses: {
      edge: `203.0.113.${slot}`,
      home: `198.51.100.${slot}`,
      client: `192.0.2.${slot}`,
      destination: `203.0.113.${slot + 128}`,
      destinationGateway: `198.51.100.${slot + 128}`,
    },
  };
}

/** Slots in the order to try: starting from one derived from the id, so parallel creators rarely collide. */
export function slotCandidates(id: string): number[] {
  const start = parseInt(id.slice(0, 6), 16) % SLOT_COUNT;
  return Array.from({ length: SLOT_COUNT }, (_, i) => ((start + i) % SLOT_COUNT) + 1);
}

/** Files of one local edge under the runtime root: <root>/<tunnel>/… */
export function runtimePaths(root: string, tunnel: string) {
  const dir = join(root, tunnel);
  return {
    dir,
    record: join(dir, 'edge-record.json'),
    sshdConfig: join(dir, 'sshd_config'),
    sshdPid: join(dir, 'sshd.pid'),
    sshdLog: join(dir, 'sshd.log'),
    hostKey: join(dir, 'ssh_host_ed25519_key'),
    authorizedKeys: join(dir, 'authorized_keys'),
    /** The client key the edge was created for (authorized_keys follows deploys; this does not). */
    creatorKey: join(dir, 'creator_key.pub'),
    bin: join(dir, 'bin'),
    /** The edge's WireGuard private key: made on the edge, 0600, never leaves this directory. */
    wireguardPrivate: join(dir, 'wireguard', 'private'),
    agent: join(dir, 'agent'),
  };
}

export type RuntimePaths = ReturnType<typeof runtimePaths>;

/** Where the edge agent keeps its generations and the processes it runs. */
export function agentPaths(agentDir: string) {
  return {
    dir: agentDir,
    state: join(agentDir, 'state.json'),
    lock: join(agentDir, 'lock'),
    generations: join(agentDir, 'generations'),
    configHash: join(agentDir, 'config-hash'),
    nginxDir: join(agentDir, 'nginx'),
    nginxConf: join(agentDir, 'nginx', 'nginx.conf'),
    nginxPid: join(agentDir, 'nginx', 'nginx.pid'),
    nginxErrorLog: join(agentDir, 'nginx', 'error.log'),
    wireguardLog: join(agentDir, 'wireguard-go.log'),
    watcherLog: join(agentDir, 'watcher.log'),
    /** Settings for innisfree-edge-status (nix/edge-status.sh), rewritten on every activation. */
    statusEnv: join(agentDir, 'status.env'),
  };
}

export type AgentPaths = ReturnType<typeof agentPaths>;

export function generationDir(paths: AgentPaths, generation: number): string {
  return join(paths.generations, String(generation));
}

export const WIREGUARD_SOCKET_DIR = '/var/run/wireguard';
