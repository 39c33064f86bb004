// The local provider: an edge made of network namespaces on this machine. An "internet" namespace holds a client,
// the edge namespace runs a real sshd (the tunnel's host key, root logs in with the tunnel's key) and later, through
// the local deployer, wireguard-go and nginx or nftables; the home side is this namespace, which reaches the edge's
// documentation-range "public" address over a veth. Edges are recorded in a runtime directory so a later run
// (another process) finds the same edge again, and everything an edge made is removed by destroyEdge.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { readHostNetworks } from '../../addressing.js';
import { EDGE_REPAIR_COMMAND } from '../../edge/edge-session.js';
import { probeTcp } from '../../edge/ssh.js';
import { wireguardSocketPath } from '../../home/wireguard.js';
import { generateWireguardKeyPair } from '../../lib/keys.js';
import { type Clock, type Context, type Exec, type ExecResult, systemClock, systemExec } from '../../lib/context.js';
import { BusyError, EnvironmentError, ProviderError } from '../../lib/errors.js';
import { packageRoot } from '../../lib/package-root.js';
import { edgeNameOf } from '../../spec/tunnel.js';
import { SECRET_MODE, ensureDir, readTextIfExists, writeFileAtomic, writeJsonAtomic } from '../../state/files.js';
import { fsFailure, nonDirectoryAncestor } from '../../lib/fs-errors.js';
import { stateRoot } from '../../state/paths.js';
import type { DestroyOptions, EdgeInfo, EnsureEdgeRequest, EnsureEdgeResult, Provider } from '../provider.js';
import {
  AGENT_COMMAND,
  agentWrapperText,
  edgeStatusEnvText,
  edgeStatusWrapperText,
  sshdConfigText,
} from './edge-runtime-files.js';
import { FIREWALL_TABLE, edgeStatusScriptPath } from './rendered-edge.js';
import {
  type AddressBlocks,
  DEFAULT_BLOCKS,
  type LocalEdgeLayout,
  type RuntimePaths,
  agentPaths,
  layoutOf,
  pickBlock6,
  pickBlocks,
  runtimePaths,
  slotCandidates,
} from './layout.js';
import {
  hostAddressUse,
  hostNetworks6,
  ipv6Available,
  killNetnsProcesses,
  linkExists,
  livePidFrom,
  netnsExists,
  processAlive,
} from './netns.js';

export const DEFAULT_RUNTIME_DIR = '/run/innisfree/local';
export const SSHD = '/usr/sbin/sshd';

/** The compiled edge agent, run on the edge (the edge shares this machine's filesystem). */
export function agentScriptPath(): string {
  return join(packageRoot, 'dist', 'src', 'providers', 'local', 'agent.js');
}

const LocalEdgeRecord = z.object({
  version: z.literal(1),
  tunnel: z.string(),
  id: z.string(),
  slot: z.number().int(),
  createdAt: z.string(),
  sshPort: z.number().int(),
  wireguardPort: z.number().int(),
  /** Set once ensureDestination made the destination host. */
  destination: z.boolean(),
  /** The innisfree state directory whose `up` created the edge (named when another one finds it). */
  stateRoot: z.string().optional(),
  /** The address blocks picked at create; edges recorded before they were picked used DEFAULT_BLOCKS. */
  blocks: z.object({ public: z.string(), link: z.string(), client: z.string() }).optional(),
  /** The IPv6 /48 (2001:db8:…) when the edge has IPv6 (made or kept with --ipv6). */
  block6: z.string().optional(),
});

export type LocalEdgeRecord = z.infer<typeof LocalEdgeRecord>;

export interface LocalEdge {
  record: LocalEdgeRecord;
  layout: LocalEdgeLayout;
  paths: RuntimePaths;
}

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

  constructor(options: LocalProviderOptions) {
    this.env = options.env;
    this.exec = options.exec ?? systemExec;
    this.clock = options.clock ?? systemClock;
    this.runtimeDir = options.runtimeDir ?? (options.env.INNISFREE_LOCAL_DIR || DEFAULT_RUNTIME_DIR);
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
      await this.writeEdgeCommands(existing.paths);
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
        await this.startSshd(existing);
        await writeJsonAtomic(existing.paths.record, existing.record);
      } else if (running === undefined) {
        emit({
          type: 'log',
          level: 'info',
          message: `restarting the SSH server of local edge ${existing.layout.namespaces.edge}`,
        });
        await this.startSshd(existing);
      }
      // IPv6 follows --ipv6 on every run, as a droplet's would if it were re-created.
      // Adding is idempotent and keeps a recorded block, so it also puts back addresses that went missing.
      if (spec.ipv6) await this.addIpv6(existing, emit);
      if (!spec.ipv6 && existing.layout.block6 !== undefined) await this.removeIpv6(existing, emit);
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
    const created = await this.create(request);
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
      throw fsFailure(error, this.runtimeDir, 'list', this.runtimeDirHint());
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
      if (netnsExists(ns)) await this.run(['netns', 'del', ns], `remove namespace ${ns}`);
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
  async localEdge(tunnel: string): Promise<LocalEdge | undefined> {
    const paths = runtimePaths(this.runtimeDir, tunnel);
    const text = await readTextIfExists(paths.record, this.runtimeDirHint());
    if (text === undefined) return undefined;
    let parsed: LocalEdgeRecord;
    try {
      parsed = LocalEdgeRecord.parse(JSON.parse(text));
    } catch {
      throw new ProviderError(`the local edge record ${paths.record} is damaged`, {
        hint: `remove ${paths.dir} and run again`,
      });
    }
    try {
      return {
        record: parsed,
        layout: layoutOf(parsed.id, parsed.slot, parsed.blocks ?? DEFAULT_BLOCKS, parsed.block6),
        paths,
      };
    } catch {
      throw new ProviderError(`the local edge record ${paths.record} is damaged`, {
        hint: `remove ${paths.dir} and run again`,
      });
    }
  }

  /**
   * Throws an EnvironmentError when INNISFREE_LOCAL_DIR cannot hold local edges (a file, /dev/null, under a file):
   * `up` asks before it makes anything, so a bad runtime directory costs no half-made state.
   */
  async checkRuntimeDir(): Promise<void> {
    try {
      await readdir(this.runtimeDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && nonDirectoryAncestor(this.runtimeDir) === undefined)
        return;
      throw fsFailure(error, this.runtimeDir, 'list', this.runtimeDirHint());
    }
  }

  private runtimeDirHint(): string {
    return (
      `local edges are recorded under INNISFREE_LOCAL_DIR (default ${DEFAULT_RUNTIME_DIR}), which must be a ` +
      `directory root can write; fix ${this.runtimeDir} or point INNISFREE_LOCAL_DIR elsewhere`
    );
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
    if (!edge.record.destination || !netnsExists(ns)) {
      if (!netnsExists(ns)) await this.run(['netns', 'add', ns], `create namespace ${ns}`);
      await this.run(['-n', ns, 'link', 'set', 'lo', 'up'], 'bring up loopback');
      if (!(await linkExists(this.exec, layout.links.destination))) {
        await this.run(
          [
            'link',
            'add',
            layout.links.destination,
            'type',
            'veth',
            'peer',
            'name',
            layout.links.destinationSide,
            'netns',
            ns,
          ],
          `create link ${layout.links.destination}`,
        );
        await this.run(
          [
            'addr',
            'add',
            `${layout.addresses.destinationGateway}/32`,
            'peer',
            `${layout.addresses.destination}/32`,
            'dev',
            layout.links.destination,
          ],
          'address the destination link',
        );
        await this.run(['link', 'set', layout.links.destination, 'up'], 'bring up the destination link');
        await this.run(
          [
            '-n',
            ns,
            'addr',
            'add',
            `${layout.addresses.destination}/32`,
            'peer',
            `${layout.addresses.destinationGateway}/32`,
            'dev',
            layout.links.destinationSide,
          ],
          'address the destination',
        );
        await this.run(['-n', ns, 'link', 'set', layout.links.destinationSide, 'up'], 'bring up the destination side');
      }
      await writeJsonAtomic(edge.paths.record, { ...edge.record, destination: true });
    }
    return { namespace: ns, address: layout.addresses.destination };
  }

  /**
   * Gives the edge and the internet client IPv6 from a 2001:db8::/48 that no address or route of this host uses:
   * a /128 each with a route to the other, inside the two namespaces only (nothing in this namespace: the home
   * side reaches the edge over IPv4 and the tunnel carries IPv6 inside). Records the block in the edge record.
   */
  private async addIpv6(edge: LocalEdge, emit: EnsureEdgeRequest['emit']): Promise<void> {
    if (!ipv6Available()) {
      throw new EnvironmentError('--ipv6 with the local provider needs IPv6 in the kernel, and it is off here', {
        hint: 'enable it (sysctl -w net.ipv6.conf.all.disable_ipv6=0), or drop --ipv6',
      });
    }
    const recorded = edge.layout.block6;
    const block6 = recorded ?? pickBlock6(await hostNetworks6(this.exec));
    const layout = layoutOf(edge.record.id, edge.record.slot, edge.layout.blocks, block6);
    const { namespaces: ns, links, addresses: a } = layout;
    for (const name of [ns.edge, ns.client]) {
      await this.exec('ip', ['netns', 'exec', name, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=0'], {
        reject: false,
      });
    }
    // nodad: the addresses are usable at once (duplicate detection on a two-ended veth would only cost a second).
    await this.run(
      ['-n', ns.edge, '-6', 'addr', 'replace', `${a.edge6}/128`, 'dev', links.edgeClientSide, 'nodad'],
      'give the edge its IPv6',
    );
    await this.run(
      ['-n', ns.edge, '-6', 'route', 'replace', `${a.client6}/128`, 'dev', links.edgeClientSide],
      'route to the IPv6 client',
    );
    await this.run(
      ['-n', ns.client, '-6', 'addr', 'replace', `${a.client6}/128`, 'dev', links.clientSide, 'nodad'],
      'give the client its IPv6',
    );
    await this.run(
      ['-n', ns.client, '-6', 'route', 'replace', `${a.edge6}/128`, 'dev', links.clientSide],
      'route to the edge IPv6',
    );
    if (recorded !== undefined) return;
    edge.record = { ...edge.record, block6 };
    edge.layout = layout;
    await writeJsonAtomic(edge.paths.record, edge.record);
    emit({
      type: 'log',
      level: 'info',
      message:
        `local edge ${ns.edge}: public IPv6 ${a.edge6}, internet client ${a.client6} (from ${block6}::/48, which ` +
        `no address or route of this host uses)`,
    });
  }

  /** Takes the edge's IPv6 away again (a run without --ipv6 of an edge made with it). */
  private async removeIpv6(edge: LocalEdge, emit: EnsureEdgeRequest['emit']): Promise<void> {
    const { namespaces: ns, links, addresses: a } = edge.layout;
    await this.exec('ip', ['-n', ns.edge, '-6', 'route', 'del', `${a.client6}/128`, 'dev', links.edgeClientSide], {
      reject: false,
    });
    await this.exec('ip', ['-n', ns.edge, '-6', 'addr', 'del', `${a.edge6}/128`, 'dev', links.edgeClientSide], {
      reject: false,
    });
    await this.exec('ip', ['-n', ns.client, '-6', 'route', 'del', `${a.edge6}/128`, 'dev', links.clientSide], {
      reject: false,
    });
    await this.exec('ip', ['-n', ns.client, '-6', 'addr', 'del', `${a.client6}/128`, 'dev', links.clientSide], {
      reject: false,
    });
    const { block6: _dropped, ...record } = edge.record;
    edge.record = record;
    edge.layout = layoutOf(record.id, record.slot, edge.layout.blocks);
    await writeJsonAtomic(edge.paths.record, edge.record);
    emit({ type: 'log', level: 'info', message: `local edge ${ns.edge}: IPv6 removed (this run has no --ipv6)` });
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

  private async create(request: EnsureEdgeRequest): Promise<LocalEdge> {
    const { spec, identity, emit } = request;
    const paths = runtimePaths(this.runtimeDir, spec.name);
    const id = randomBytes(4).toString('hex');
    const undo: Array<() => Promise<unknown>> = [];
    await this.claimRuntimeDir(paths, spec.name);
    undo.push(() => rm(paths.dir, { recursive: true, force: true }));
    try {
      const edgeNs = `isf-edge-${id}`;
      await this.run(['netns', 'add', edgeNs], `create namespace ${edgeNs}`);
      undo.push(() => this.exec('ip', ['netns', 'del', edgeNs], { reject: false }));
      // Address blocks that hold no address or route of this host, so the edge's and the client's packets never
      // meet a real network here (this host's LAN may well be a documentation range).
      const blocks = pickBlocks(await readHostNetworks(this.exec));
      const slot = await this.claimSlot(id, edgeNs, blocks);
      const layout = layoutOf(id, slot, blocks);
      const { namespaces: ns, links, addresses: a } = layout;
      undo.push(() => this.exec('ip', ['link', 'del', 'dev', links.home], { reject: false }));
      await this.run(['-n', ns.edge, 'link', 'set', 'lo', 'up'], 'bring up loopback');
      await this.run(
        ['addr', 'add', `${a.home}/32`, 'peer', `${a.edge}/32`, 'dev', links.home],
        'address the home link',
      );
      await this.run(['link', 'set', links.home, 'up'], 'bring up the home link');
      await this.run(
        ['-n', ns.edge, 'addr', 'add', `${a.edge}/32`, 'peer', `${a.home}/32`, 'dev', links.edgeHomeSide],
        'address the edge',
      );
      await this.run(['-n', ns.edge, 'link', 'set', links.edgeHomeSide, 'up'], 'bring up the edge side');

      await this.run(['netns', 'add', ns.client], `create namespace ${ns.client}`);
      undo.push(() => this.exec('ip', ['netns', 'del', ns.client], { reject: false }));
      await this.run(['-n', ns.client, 'link', 'set', 'lo', 'up'], 'bring up loopback');
      await this.run(
        [
          '-n',
          ns.edge,
          'link',
          'add',
          links.edgeClientSide,
          'type',
          'veth',
          'peer',
          'name',
          links.clientSide,
          'netns',
          ns.client,
        ],
        'create the internet link',
      );
      await this.run(
        ['-n', ns.edge, 'addr', 'add', `${a.edge}/32`, 'peer', `${a.client}/32`, 'dev', links.edgeClientSide],
        'address the internet link',
      );
      await this.run(['-n', ns.edge, 'link', 'set', links.edgeClientSide, 'up'], 'bring up the internet link');
      await this.run(
        ['-n', ns.client, 'addr', 'add', `${a.client}/32`, 'peer', `${a.edge}/32`, 'dev', links.clientSide],
        'address the client',
      );
      await this.run(['-n', ns.client, 'link', 'set', links.clientSide, 'up'], 'bring up the client side');

      const record: LocalEdgeRecord = {
        version: 1,
        tunnel: spec.name,
        id,
        slot,
        createdAt: new Date(this.clock.now()).toISOString(),
        sshPort: spec.edgeSshPort,
        wireguardPort: spec.wireguardPort,
        destination: false,
        stateRoot: stateRoot(this.env),
        blocks,
      };
      await writeFileAtomic(paths.hostKey, ensureNewline(identity.hostKey.privateKey), SECRET_MODE);
      await writeFileAtomic(`${paths.hostKey}.pub`, ensureNewline(identity.hostKey.publicKey));
      await writeFileAtomic(paths.authorizedKeys, ensureNewline(identity.sshPublicKey));
      // authorized_keys changes with deploys; this copy says for good which client key the edge was made for.
      await writeFileAtomic(paths.creatorKey, ensureNewline(identity.sshPublicKey));
      await writeFileAtomic(paths.sshdConfig, sshdConfigText(paths, spec.edgeSshPort));
      // The edge makes its own WireGuard key, as the NixOS module's generatePrivateKeyFile does on first boot.
      await writeFileAtomic(paths.wireguardPrivate, `${generateWireguardKeyPair().privateKey}\n`, SECRET_MODE);
      await mkdir(agentPaths(paths.agent).dir, { recursive: true, mode: 0o700 });
      await this.writeEdgeCommands(paths);
      const edge: LocalEdge = { record, layout, paths };
      undo.push(() => killNetnsProcesses(this.exec, ns.edge, (ms) => this.clock.sleep(ms)));
      await this.startSshd(edge);
      await writeJsonAtomic(paths.record, record);
      if (spec.ipv6) await this.addIpv6(edge, emit);
      await rm(paths.creating, { force: true });
      emit({
        type: 'log',
        level: 'info',
        message:
          `local edge ${ns.edge}: public address ${a.edge}, internet client in ${ns.client} (${a.client}); ` +
          `${blocksText(blocks)}`,
      });
      return edge;
    } catch (error) {
      for (const step of undo.reverse()) await step().catch(() => {});
      if (error instanceof ProviderError || error instanceof EnvironmentError) throw error;
      throw new ProviderError(`could not create the local edge for "${spec.name}": ${(error as Error).message}`, {
        hint: 'check that this machine supports network namespaces and veth links (ip netns add works as root)',
        cause: error,
      });
    }
  }

  /**
   * Makes the edge's runtime directory, or throws BusyError while another process is making the same tunnel's
   * edge (another state directory's `up`: the lock does not cover it). A directory without a record whose creator
   * is gone was left by a run that died while creating, and holds nothing live.
   */
  private async claimRuntimeDir(paths: RuntimePaths, tunnel: string): Promise<void> {
    await ensureDir(this.runtimeDir, this.runtimeDirHint());
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await mkdir(paths.dir, { mode: 0o700 });
        await writeFile(paths.creating, `${process.pid}\n`, { mode: 0o600 });
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
          throw fsFailure(error, paths.dir, 'create', this.runtimeDirHint());
      }
      const creator = livePidFrom(paths.creating);
      if (creator !== undefined && creator !== process.pid) {
        throw new BusyError(
          `another innisfree (pid ${creator}) is creating the local edge of tunnel "${tunnel}" right now`,
          {
            hint: 'wait for it to finish, or use another --name',
          },
        );
      }
      await rm(paths.dir, { recursive: true, force: true });
    }
    throw new BusyError(`could not claim ${paths.dir} for the local edge of tunnel "${tunnel}"`, {
      hint: 'another innisfree is starting; try again',
    });
  }

  /** Takes the first free slot by creating its root-namespace link (creation is atomic, so racing creators differ). */
  private async claimSlot(id: string, edgeNs: string, blocks: AddressBlocks): Promise<number> {
    const use = await hostAddressUse(this.exec);
    for (const slot of slotCandidates(id)) {
      const { links, addresses: a } = layoutOf(id, slot, blocks);
      const inUse = [a.edge, a.home].some((ip) => use.addresses.has(ip) || use.routes.has(ip));
      if (inUse) continue;
      const result = await this.exec(
        'ip',
        ['link', 'add', links.home, 'type', 'veth', 'peer', 'name', links.edgeHomeSide, 'netns', edgeNs],
        {
          reject: false,
        },
      );
      if (result.exitCode === 0) return slot;
      if (!/exists/i.test(result.stderr)) {
        throw new ProviderError(`could not create a veth link: ${result.stderr.trim()}`, {
          hint: 'the local provider needs veth support in the kernel',
        });
      }
    }
    throw new ProviderError('every local edge slot is in use (126 local edges at most)', {
      hint: 'remove unused local tunnels with innisfree down NAME',
    });
  }

  private async startSshd(edge: LocalEdge): Promise<void> {
    const { paths, layout, record } = edge;
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    await rm(paths.sshdPid, { force: true });
    const check = await this.exec(SSHD, ['-t', '-f', paths.sshdConfig], { reject: false });
    if (check.exitCode !== 0) {
      throw new ProviderError(`the local edge's sshd configuration is invalid: ${check.stderr.trim()}`, {
        hint: 'this is a bug in innisfree',
      });
    }
    await this.run(
      ['netns', 'exec', layout.namespaces.edge, SSHD, '-f', paths.sshdConfig, '-E', paths.sshdLog],
      'start the edge sshd',
    );
    const deadline = this.clock.now() + 10_000;
    for (;;) {
      const ready =
        livePidFrom(paths.sshdPid) !== undefined &&
        (await probeTcp(layout.addresses.edge, record.sshPort, 1000).then(
          () => true,
          () => false,
        ));
      if (ready) return;
      if (this.clock.now() > deadline) {
        const log = ((await readTextIfExists(paths.sshdLog)) ?? '').trim().split('\n').pop();
        throw new ProviderError(
          `the local edge's sshd did not start listening on ${layout.addresses.edge}:${record.sshPort}` +
            `${log ? `: ${log}` : ''}`,
          {
            hint: 'see the sshd log in the local edge runtime directory',
          },
        );
      }
      await this.clock.sleep(100);
    }
  }

  /**
   * The edge's commands: innisfree-edge-status and innisfree-edge-repair (as on a real edge) and the activation agent.
   */
  private async writeEdgeCommands(paths: RuntimePaths): Promise<void> {
    const agent = agentScriptPath();
    if (!existsSync(agent)) {
      throw new EnvironmentError(`the local edge agent ${agent} is missing`, {
        hint: 'build innisfree first: npm run build',
      });
    }
    if (!existsSync(edgeStatusScriptPath())) {
      throw new EnvironmentError(`the edge status script ${edgeStatusScriptPath()} is missing from this innisfree`, {
        hint: 'reinstall innisfree',
      });
    }
    await mkdir(paths.bin, { recursive: true, mode: 0o755 });
    const write = async (name: string, text: string) => {
      const path = join(paths.bin, name);
      await writeFile(path, text, { mode: 0o755 });
      await chmod(path, 0o755);
    };
    await write(AGENT_COMMAND, agentWrapperText(process.execPath, agent));
    // innisfree-edge-repair, as on a NixOS edge: the agent applies the serving generation again.
    await write(EDGE_REPAIR_COMMAND, agentWrapperText(process.execPath, agent, 'repair'));
    const statusEnv = agentPaths(paths.agent).statusEnv;
    if (!existsSync(statusEnv)) {
      // Not deployed yet: no interface, no forwarder, no config hash.
      const tunnel = paths.dir.split('/').filter(Boolean).pop()!;
      await writeFileAtomic(
        statusEnv,
        edgeStatusEnvText({
          name: tunnel,
          interface: 'none',
          forwarding: 'nginx',
          hashFile: agentPaths(paths.agent).configHash,
          forwarderCheck: 'false',
        }),
      );
    }
    await write('innisfree-edge-status', edgeStatusWrapperText(statusEnv, edgeStatusScriptPath()));
  }

  private async run(args: string[], what: string): Promise<void> {
    const result = await this.exec('ip', args, { reject: false });
    if (result.exitCode !== 0) {
      throw new ProviderError(
        `local edge: could not ${what}: ${result.stderr.trim() || `ip exited with ${result.exitCode}`}`,
        {
          hint: 'the local provider needs root and network namespace support',
        },
      );
    }
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

function blocksText(blocks: AddressBlocks): string {
  return (
    `addresses from ${blocks.public}.0/24 (public), ${blocks.link}.0/24 (home link), ${blocks.client}.0/24 ` +
    `(clients), which no address or route of this host uses`
  );
}

/** The key itself ("ssh-ed25519 AAAA…"), without its comment. */
function identityKey(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(' ');
}

function ensureNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
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
