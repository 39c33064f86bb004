// The local provider: an edge made of network namespaces on this machine. An "internet" namespace holds a client,
// the edge namespace runs a real sshd (the tunnel's host key, root logs in with the tunnel's key) and later, through
// the local deployer, wireguard-go and nginx or nftables; the home side is this namespace, which reaches the edge's
// documentation-range "public" address over a veth. Edges are recorded in a runtime directory so a later run
// (another process) finds the same edge again (local-edge-record.ts), and everything an edge made is removed by
// destroyEdge. Making the namespaces, links, addresses and the edge's sshd is local-edge-builder.ts.
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { wireguardSocketPath } from '../../home/wireguard.js';
import { type Clock, type Context, type Exec, type ExecResult, systemClock, systemExec } from '../../lib/context.js';
import { BusyError, EnvironmentError, ProviderError } from '../../lib/errors.js';
import { fsFailure, nonDirectoryAncestor } from '../../lib/fs-errors.js';
import { edgeNameOf } from '../../spec/tunnel.js';
import { readTextIfExists, writeFileAtomic, writeJsonAtomic } from '../../state/files.js';
import { stateRoot } from '../../state/paths.js';
import type { DestroyOptions, EdgeInfo, EnsureEdgeRequest, EnsureEdgeResult, Provider } from '../provider.js';
import { sshdConfigText } from './edge-runtime-files.js';
import { FIREWALL_TABLE } from './rendered-edge.js';
import { type RuntimePaths, agentPaths } from './layout.js';
import { LocalEdgeBuilder, SSHD, blocksText } from './local-edge-builder.js';
import { DEFAULT_RUNTIME_DIR, type LocalEdge, readLocalEdge, runtimeDirHint } from './local-edge-record.js';
import { killNetnsProcesses, linkExists, livePidFrom, netnsExists, processAlive } from './netns.js';

export interface LocalProviderOptions {
  exec?: Exec;
  clock?: Clock;
  env: Context['env'];
  /** Where local edges are recorded; default $INNISFREE_LOCAL_DIR, else /run/innisfree/local. */
  runtimeDir?: string;
}

export class LocalProvider implements Provider {
  readonly name = 'local' as const;
  readonly runtimeDir: string;
  private readonly exec: Exec;
  private readonly clock: Clock;
  private readonly env: Context['env'];

  private readonly builder: LocalEdgeBuilder;

  constructor(options: LocalProviderOptions) {
    this.env = options.env;
    this.exec = options.exec ?? systemExec;
    this.clock = options.clock ?? systemClock;
    this.runtimeDir = options.runtimeDir ?? (options.env.INNISFREE_LOCAL_DIR || DEFAULT_RUNTIME_DIR);
    this.builder = new LocalEdgeBuilder(this.exec, this.clock, this.env, this.runtimeDir);
  }

  async ensureEdge(request: EnsureEdgeRequest): Promise<EnsureEdgeResult> {
    const { spec, emit } = request;
    this.preflight();
    const existing = await this.localEdge(spec.name);
    // Local edges are keyed by tunnel name alone, while the lock is per state directory: an edge made from another
    // state directory is that one's live tunnel, and must be neither connected to nor destroyed from here.
    if (existing) await this.refuseForeign(existing, { host: request.identity.hostKey.publicKey });
    if (
      existing &&
      netnsExists(existing.layout.namespaces.edge) &&
      (await linkExists(this.exec, existing.layout.links.home))
    ) {
      await this.builder.writeEdgeCommands(existing.paths);
      const running = livePidFrom(existing.paths.sshdPid);
      if (existing.record.sshPort !== spec.edgeSshPort) {
        // On NixOS the deploy moves sshd; here the provider runs it, so it moves it before anyone connects.
        emit({
          type: 'log',
          level: 'info',
          message: `moving the SSH server of local edge ${existing.layout.namespaces.edge} to port ${spec.edgeSshPort}`,
        });
        if (running !== undefined) await stopPid(running, (ms) => this.clock.sleep(ms));
        existing.record = { ...existing.record, sshPort: spec.edgeSshPort };
        await writeFileAtomic(existing.paths.sshdConfig, sshdConfigText(existing.paths, spec.edgeSshPort));
        // The deployed firewall still names the old port until the next deploy: open the new one now.
        await this.exec(
          'ip',
          [
            'netns',
            'exec',
            existing.layout.namespaces.edge,
            'nft',
            'add',
            'rule',
            'inet',
            FIREWALL_TABLE,
            'input',
            'tcp',
            'dport',
            String(spec.edgeSshPort),
            'accept',
          ],
          { reject: false },
        );
        await this.builder.startSshd(existing);
        await writeJsonAtomic(existing.paths.record, existing.record);
      } else if (running === undefined) {
        emit({
          type: 'log',
          level: 'info',
          message: `restarting the SSH server of local edge ${existing.layout.namespaces.edge}`,
        });
        await this.builder.startSshd(existing);
      }
      // IPv6 follows --ipv6 on every run, as a droplet's would if it were re-created.
      // Adding is idempotent and keeps a recorded block, so it also puts back addresses that went missing.
      if (spec.ipv6) await this.builder.addIpv6(existing, emit);
      if (!spec.ipv6 && existing.layout.block6 !== undefined) await this.builder.removeIpv6(existing, emit);
      return { edge: this.infoOf(existing), created: false };
    }
    if (existing) {
      emit({
        type: 'log',
        level: 'warn',
        message: `local edge of "${spec.name}" is incomplete (its namespace is gone); creating it again`,
      });
      await this.destroyEdge(spec.name, { emit, signal: request.signal });
    }
    const created = await this.builder.create(request);
    return { edge: this.infoOf(created), created: true };
  }

  async findEdge(tunnel: string): Promise<EdgeInfo | undefined> {
    const edge = await this.localEdge(tunnel);
    return edge ? this.infoOf(edge) : undefined;
  }

  async listEdges(): Promise<EdgeInfo[]> {
    let entries: string[];
    try {
      entries = (await readdir(this.runtimeDir)).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw fsFailure(error, this.runtimeDir, 'list', runtimeDirHint(this.runtimeDir));
    }
    const edges: EdgeInfo[] = [];
    for (const entry of entries) {
      const edge = await this.localEdge(entry).catch(() => undefined);
      if (edge) edges.push(this.infoOf(edge));
    }
    return edges;
  }

  async destroyEdge(tunnel: string, options: DestroyOptions): Promise<void> {
    const edge = await this.localEdge(tunnel);
    if (!edge) return;
    await this.refuseForeign(edge, options.sshPublicKey === undefined ? undefined : { client: options.sshPublicKey });
    const { layout, paths } = edge;
    const sleep = (ms: number) => this.clock.sleep(ms);
    const interfaces = await wireguardInterfacesOf(paths);
    for (const ns of [layout.namespaces.edge, layout.namespaces.client, layout.namespaces.destination]) {
      await killNetnsProcesses(this.exec, ns, sleep);
    }
    // wireguard-go removes its control socket when it stops cleanly; a killed one leaves it behind.
    for (const name of interfaces) await rm(wireguardSocketPath(name), { force: true });
    for (const ns of [layout.namespaces.edge, layout.namespaces.client, layout.namespaces.destination]) {
      if (netnsExists(ns)) await this.builder.ip(['netns', 'del', ns], `remove namespace ${ns}`);
    }
    // Deleting a namespace destroys its veth ends and so their peers here; make sure of it.
    for (const link of [layout.links.home, layout.links.destination]) {
      if (await linkExists(this.exec, link)) await this.exec('ip', ['link', 'del', 'dev', link], { reject: false });
    }
    await rm(paths.dir, { recursive: true, force: true });
    options.emit({
      type: 'log',
      level: 'info',
      message: `removed local edge ${layout.namespaces.edge} (${layout.addresses.edge})`,
    });
  }

  /**
   * Throws BusyError when the edge belongs to another state directory's tunnel: it was made with another host key
   * (the pin) or for another client key than the caller's. Without a key to compare (`down` with no local state),
   * an edge whose creating state directory still holds the tunnel is that one's, and one whose state is gone is an
   * orphan that may go.
   */
  private async refuseForeign(edge: LocalEdge, key: { host: string } | { client: string } | undefined): Promise<void> {
    const mine = stateRoot(this.env);
    const theirs = edge.record.stateRoot;
    if (key === undefined) {
      if (theirs === undefined || theirs === mine || !existsSync(join(theirs, edge.record.tunnel, 'tunnel.json')))
        return;
    } else {
      const file = 'host' in key ? `${edge.paths.hostKey}.pub` : edge.paths.creatorKey;
      const recorded = await readTextIfExists(file).catch(() => undefined);
      // Edges made before the creator key was kept: only their host key can tell.
      if (recorded === undefined && 'client' in key) return;
      if (recorded !== undefined && identityKey(recorded) === identityKey('host' in key ? key.host : key.client))
        return;
    }
    const owner = theirs && theirs !== mine ? `the state directory ${theirs}` : 'another state directory';
    throw new BusyError(
      `the local edge of tunnel "${edge.record.tunnel}" (${edge.paths.dir}) belongs to ${owner}, not to ` +
        `${mine}; it was left untouched`,
      {
        hint:
          `use another --name, or stop that tunnel first (innisfree down ${edge.record.tunnel}` +
          `${theirs ? ` with INNISFREE_STATE_DIR=${theirs}` : ' from its state directory'})`,
      },
    );
  }

  /** The recorded edge of a tunnel (namespaces, addresses, files), if any. */
  localEdge(tunnel: string): Promise<LocalEdge | undefined> {
    return readLocalEdge(this.runtimeDir, tunnel);
  }

  /**
   * Throws an EnvironmentError when INNISFREE_LOCAL_DIR cannot hold local edges (a file, /dev/null, under a file):
   * `up` asks before it makes anything, so a bad runtime directory costs no half-made state.
   */
  async checkRuntimeDir(): Promise<void> {
    // sshd_config splits its arguments at whitespace and reads quotes and backslashes: HostKey, PidFile and SetEnv
    // take paths under this directory, and no quoting makes all three agree.
    if (/[\s"'\\]/.test(this.runtimeDir)) {
      throw new EnvironmentError(
        `INNISFREE_LOCAL_DIR ${this.runtimeDir} has whitespace or a quote in it, which the local edge's sshd_config ` +
          'cannot hold',
        { hint: `point INNISFREE_LOCAL_DIR at a path without them (default ${DEFAULT_RUNTIME_DIR})` },
      );
    }
    try {
      await readdir(this.runtimeDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && nonDirectoryAncestor(this.runtimeDir) === undefined)
        return;
      throw fsFailure(error, this.runtimeDir, 'list', runtimeDirHint(this.runtimeDir));
    }
  }

  /** The "internet" namespace from which a client reaches the edge's public address. */
  async clientNamespace(tunnel: string): Promise<string> {
    return (await this.requireEdge(tunnel)).layout.namespaces.client;
  }

  /** argv that runs a command as the internet client, e.g. to print a ready-to-paste try-it command. */
  async clientCommand(tunnel: string, argv: readonly string[]): Promise<string[]> {
    return ['ip', 'netns', 'exec', await this.clientNamespace(tunnel), ...argv];
  }

  /** Who the try-it command runs as, and which address ranges the local edge uses (they collide with nothing here). */
  async clientNote(tunnel: string): Promise<string> {
    const { layout } = await this.requireEdge(tunnel);
    const client = layout.addresses.client6
      ? `${layout.addresses.client} and ${layout.addresses.client6}`
      : layout.addresses.client;
    const block6 = layout.block6 ? `, ${layout.block6}::/48 (IPv6)` : '';
    return (
      `the client is ${client} in ${layout.namespaces.client}; ` +
      `${blocksText(layout.blocks).replace(' (clients),', ` (clients)${block6},`)}`
    );
  }

  /** Runs a command as the internet client; resolves with its result whatever the exit code. */
  async runInClient(
    tunnel: string,
    argv: readonly string[],
    options: { input?: string; timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    const [file, ...args] = await this.clientCommand(tunnel, argv);
    return this.exec(file!, args, { ...options, reject: false });
  }

  /**
   * A destination host for the tunnel (a service on another machine of the home network): a namespace reachable
   * from here at the returned address. Removed with the edge.
   */
  async ensureDestination(tunnel: string): Promise<{ namespace: string; address: string }> {
    const edge = await this.requireEdge(tunnel);
    const { layout } = edge;
    const ns = layout.namespaces.destination;
    if (!edge.record.destination || !netnsExists(ns)) await this.builder.addDestination(edge);
    return { namespace: ns, address: layout.addresses.destination };
  }

  private async requireEdge(tunnel: string): Promise<LocalEdge> {
    const edge = await this.localEdge(tunnel);
    if (!edge) {
      throw new ProviderError(`tunnel "${tunnel}" has no local edge`, {
        hint: `start one with innisfree up --provider local --name ${tunnel}`,
      });
    }
    return edge;
  }

  private preflight(): void {
    if (process.getuid?.() !== 0) {
      throw new EnvironmentError('the local provider needs root: it creates network namespaces', {
        hint: 'run it with sudo, or use --provider digitalocean',
      });
    }
    if (!existsSync(SSHD)) {
      throw new EnvironmentError(`the local provider needs OpenSSH's server (${SSHD} is missing)`, {
        hint: 'install it: apt-get install openssh-server',
      });
    }
  }

  private infoOf(edge: LocalEdge): EdgeInfo {
    const running = netnsExists(edge.layout.namespaces.edge) && livePidFrom(edge.paths.sshdPid) !== undefined;
    return {
      provider: 'local',
      id: edge.layout.namespaces.edge,
      name: edgeNameOf(edge.record.tunnel),
      tunnel: edge.record.tunnel,
      ipv4: edge.layout.addresses.edge,
      ...(edge.layout.addresses.edge6 ? { ipv6: edge.layout.addresses.edge6 } : {}),
      region: 'local',
      size: 'netns',
      status: running ? 'running' : 'broken',
      createdAt: edge.record.createdAt,
    };
  }
}

/** WireGuard interfaces the edge agent ran (their control sockets are machine-wide). */
async function wireguardInterfacesOf(paths: RuntimePaths): Promise<string[]> {
  const text = await readTextIfExists(agentPaths(paths.agent).state);
  if (!text) return [];
  try {
    const state = JSON.parse(text) as { interfaces?: unknown };
    return Array.isArray(state.interfaces)
      ? state.interfaces.filter((i): i is string => typeof i === 'string' && /^[A-Za-z0-9_-]{1,15}$/.test(i))
      : [];
  } catch {
    return [];
  }
}

async function stopPid(pid: number, sleep: (ms: number) => Promise<void>): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 50 && processAlive(pid); i++) await sleep(100);
  if (processAlive(pid)) process.kill(pid, 'SIGKILL');
}

/** The key itself ("ssh-ed25519 AAAA…"), without its comment. */
function identityKey(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(' ');
}

export function createLocalProvider(
  ctx: Pick<Context, 'env'> & Partial<Pick<Context, 'exec' | 'clock'>>,
): LocalProvider {
  return new LocalProvider({
    env: ctx.env,
    ...(ctx.exec ? { exec: ctx.exec } : {}),
    ...(ctx.clock ? { clock: ctx.clock } : {}),
  });
}
