// How a local edge is made on this machine: its namespaces, veth links and addresses (IPv4, and IPv6 with --ipv6),
// the destination host's namespace, the edge's sshd with the tunnel's host key, and the commands a NixOS edge has
// (innisfree-edge-status, innisfree-edge-repair, the activation agent). The local provider decides when; this
// builds. Each step that fails is a ProviderError naming it; create undoes what it made.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readHostNetworks } from '../../addressing.js';
import { EDGE_REPAIR_COMMAND } from '../../edge/edge-session.js';
import { probeTcp } from '../../edge/ssh.js';
import { type Clock, type Context, type Exec } from '../../lib/context.js';
import { BusyError, EnvironmentError, ProviderError } from '../../lib/errors.js';
import { fsFailure } from '../../lib/fs-errors.js';
import { generateWireguardKeyPair } from '../../lib/keys.js';
import { packageRoot } from '../../lib/package-root.js';
import { SECRET_MODE, ensureDir, readTextIfExists, writeFileAtomic, writeJsonAtomic } from '../../state/files.js';
import { stateRoot } from '../../state/paths.js';
import type { EnsureEdgeRequest } from '../provider.js';
import {
  AGENT_COMMAND,
  agentWrapperText,
  edgeStatusEnvText,
  edgeStatusWrapperText,
  sshdConfigText,
} from './edge-runtime-files.js';
import { edgeStatusScriptPath } from './rendered-edge.js';
import {
  type AddressBlocks,
  type RuntimePaths,
  agentPaths,
  layoutOf,
  pickBlock6,
  pickBlocks,
  runtimePaths,
  slotCandidates,
} from './layout.js';
import { type LocalEdge, type LocalEdgeRecord, runtimeDirHint } from './local-edge-record.js';
import {
  hostAddressUse,
  hostNetworks6,
  ipv6Available,
  killNetnsProcesses,
  linkExists,
  livePidFrom,
  netnsExists,
} from './netns.js';

export const SSHD = '/usr/sbin/sshd';

/** The compiled edge agent, run on the edge (the edge shares this machine's filesystem). */
export function agentScriptPath(): string {
  return join(packageRoot, 'dist', 'src', 'providers', 'local', 'agent.js');
}

export class LocalEdgeBuilder {
  constructor(
    private readonly exec: Exec,
    private readonly clock: Clock,
    private readonly env: Context['env'],
    private readonly runtimeDir: string,
  ) {}

  async create(request: EnsureEdgeRequest): Promise<LocalEdge> {
    const { spec, identity, emit } = request;
    const paths = runtimePaths(this.runtimeDir, spec.name);
    const id = randomBytes(4).toString('hex');
    const undo: Array<() => Promise<unknown>> = [];
    await this.claimRuntimeDir(paths, spec.name);
    undo.push(() => rm(paths.dir, { recursive: true, force: true }));
    try {
      const edgeNs = `isf-edge-${id}`;
      await this.ip(['netns', 'add', edgeNs], `create namespace ${edgeNs}`);
      undo.push(() => this.exec('ip', ['netns', 'del', edgeNs], { reject: false }));
      // Address blocks that hold no address or route of this host, so the edge's and the client's packets never
      // meet a real network here (this host's LAN may well be a documentation range).
      const blocks = pickBlocks(await readHostNetworks(this.exec));
      const slot = await this.claimSlot(id, edgeNs, blocks);
      const layout = layoutOf(id, slot, blocks);
      const { namespaces: ns, links, addresses: a } = layout;
      undo.push(() => this.exec('ip', ['link', 'del', 'dev', links.home], { reject: false }));
      await this.ip(['-n', ns.edge, 'link', 'set', 'lo', 'up'], 'bring up loopback');
      await this.ip(
        ['addr', 'add', `${a.home}/32`, 'peer', `${a.edge}/32`, 'dev', links.home],
        'address the home link',
      );
      await this.ip(['link', 'set', links.home, 'up'], 'bring up the home link');
      await this.ip(
        ['-n', ns.edge, 'addr', 'add', `${a.edge}/32`, 'peer', `${a.home}/32`, 'dev', links.edgeHomeSide],
        'address the edge',
      );
      await this.ip(['-n', ns.edge, 'link', 'set', links.edgeHomeSide, 'up'], 'bring up the edge side');

      await this.ip(['netns', 'add', ns.client], `create namespace ${ns.client}`);
      undo.push(() => this.exec('ip', ['netns', 'del', ns.client], { reject: false }));
      await this.ip(['-n', ns.client, 'link', 'set', 'lo', 'up'], 'bring up loopback');
      await this.ip(
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
      await this.ip(
        ['-n', ns.edge, 'addr', 'add', `${a.edge}/32`, 'peer', `${a.client}/32`, 'dev', links.edgeClientSide],
        'address the internet link',
      );
      await this.ip(['-n', ns.edge, 'link', 'set', links.edgeClientSide, 'up'], 'bring up the internet link');
      await this.ip(
        ['-n', ns.client, 'addr', 'add', `${a.client}/32`, 'peer', `${a.edge}/32`, 'dev', links.clientSide],
        'address the client',
      );
      await this.ip(['-n', ns.client, 'link', 'set', links.clientSide, 'up'], 'bring up the client side');

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
   * Gives the edge and the internet client IPv6 from a 2001:db8::/48 that no address or route of this host uses:
   * a /128 each with a route to the other, inside the two namespaces only (nothing in this namespace: the home
   * side reaches the edge over IPv4 and the tunnel carries IPv6 inside). Records the block in the edge record.
   */
  async addIpv6(edge: LocalEdge, emit: EnsureEdgeRequest['emit']): Promise<void> {
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
    await this.ip(
      ['-n', ns.edge, '-6', 'addr', 'replace', `${a.edge6}/128`, 'dev', links.edgeClientSide, 'nodad'],
      'give the edge its IPv6',
    );
    await this.ip(
      ['-n', ns.edge, '-6', 'route', 'replace', `${a.client6}/128`, 'dev', links.edgeClientSide],
      'route to the IPv6 client',
    );
    await this.ip(
      ['-n', ns.client, '-6', 'addr', 'replace', `${a.client6}/128`, 'dev', links.clientSide, 'nodad'],
      'give the client its IPv6',
    );
    await this.ip(
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
  async removeIpv6(edge: LocalEdge, emit: EnsureEdgeRequest['emit']): Promise<void> {
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

  /** The destination host's namespace and its link from here (ensureDestination). */
  async addDestination(edge: LocalEdge): Promise<void> {
    const { layout } = edge;
    const ns = layout.namespaces.destination;
    if (!netnsExists(ns)) await this.ip(['netns', 'add', ns], `create namespace ${ns}`);
    await this.ip(['-n', ns, 'link', 'set', 'lo', 'up'], 'bring up loopback');
    if (!(await linkExists(this.exec, layout.links.destination))) {
      await this.ip(
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
      await this.ip(
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
      await this.ip(['link', 'set', layout.links.destination, 'up'], 'bring up the destination link');
      await this.ip(
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
      await this.ip(['-n', ns, 'link', 'set', layout.links.destinationSide, 'up'], 'bring up the destination side');
    }
    await writeJsonAtomic(edge.paths.record, { ...edge.record, destination: true });
  }

  /**
   * Makes the edge's runtime directory, or throws BusyError while another process is making the same tunnel's
   * edge (another state directory's `up`: the lock does not cover it). A directory without a record whose creator
   * is gone was left by a run that died while creating, and holds nothing live.
   */
  private async claimRuntimeDir(paths: RuntimePaths, tunnel: string): Promise<void> {
    await ensureDir(this.runtimeDir, runtimeDirHint(this.runtimeDir));
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await mkdir(paths.dir, { mode: 0o700 });
        await writeFile(paths.creating, `${process.pid}\n`, { mode: 0o600 });
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
          throw fsFailure(error, paths.dir, 'create', runtimeDirHint(this.runtimeDir));
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

  async startSshd(edge: LocalEdge): Promise<void> {
    const { paths, layout, record } = edge;
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    await mkdir(paths.home, { recursive: true, mode: 0o700 });
    await rm(paths.sshdPid, { force: true });
    const check = await this.exec(SSHD, ['-t', '-f', paths.sshdConfig], { reject: false });
    if (check.exitCode !== 0) {
      throw new ProviderError(`the local edge's sshd configuration is invalid: ${check.stderr.trim()}`, {
        hint: 'this is a bug in innisfree',
      });
    }
    await this.ip(
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
  async writeEdgeCommands(paths: RuntimePaths): Promise<void> {
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

  /** Runs ip; a failure is a ProviderError naming what it was for. */
  async ip(args: string[], what: string): Promise<void> {
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

export function blocksText(blocks: AddressBlocks): string {
  return (
    `addresses from ${blocks.public}.0/24 (public), ${blocks.link}.0/24 (home link), ${blocks.client}.0/24 ` +
    `(clients), which no address or route of this host uses`
  );
}

function ensureNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}
