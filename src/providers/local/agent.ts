// The local edge agent: the activation script of a local edge. The local deployer runs it through the edge's sshd,
// so it runs inside the edge namespace and everything it starts (wireguard-go, nginx, the confirmation watcher)
// lives there too. It keeps numbered generations of the applied config and emulates deploy-rs's magic rollback:
// an activation that fails is undone at once, and an activation that is not confirmed over a new SSH connection
// within the timeout is undone by a watcher. What it does not reproduce is NixOS activation itself: it applies the
// Nix-rendered nginx/nftables/firewall config directly.
//
//   innisfree-local-edge activate [--confirm-timeout S] [--fail]   stdin: {"edgeJson","rendered","configHash"}
//   innisfree-local-edge confirm --generation G
//   innisfree-local-edge repair                               (innisfree-edge-repair: re-apply what serves now)
//   innisfree-local-edge watch --generation G --deadline MS   (internal: the confirmation watcher)
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { generateWireguardKeyPair } from '../../lib/keys.js';
import { type ExecResult, systemExec } from '../../lib/context.js';
import { EdgeConfig } from '../../spec/edge-config.js';
import { SECRET_MODE, readTextIfExists, writeFileAtomic, writeJsonAtomic } from '../../state/files.js';
import { LOCAL_EDGE_DIR_ENV, edgeStatusEnvText, forwarderCheckFor } from './edge-files.js';
import { type AgentPaths, WIREGUARD_SOCKET_DIR, agentPaths, generationDir, runtimePaths } from './layout.js';
import { livePidFrom, processAlive } from './netns.js';
import {
  DEBIAN_STREAM_MODULE,
  FORWARDING_TABLE,
  FIREWALL_TABLE,
  RenderedEdge,
  firewallRuleset,
  forwardingRuleset,
  nginxConfText,
} from './render.js';

export const EXIT_ROLLED_BACK = 3;

export interface AgentState {
  version: 1;
  /** The generation serving now; null before the first activation (or after rolling the first one back). */
  current: number | null;
  /** An activated generation waiting for confirmation, and what to go back to if none comes. */
  pending: { generation: number; previous: number | null; deadline: number } | null;
  next: number;
  /** Every WireGuard interface this edge ever ran: their control sockets are machine-wide. */
  interfaces: string[];
  /** pid: the wireguard-go daemon, or null for a kernel device (what a NixOS edge runs). */
  wireguard: { interface: string; pid: number | null } | null;
  forwarding: 'nginx' | 'nftables' | null;
}

interface Generation {
  number: number;
  dir: string;
  config: EdgeConfig;
  rendered: RenderedEdge;
  configHash: string;
}

class AgentFailure extends Error {}

const log = (message: string): void => void process.stderr.write(`${message}\n`);

async function run(file: string, args: readonly string[], input?: string): Promise<ExecResult> {
  return systemExec(file, args, { reject: false, ...(input === undefined ? {} : { input }) });
}

async function must(file: string, args: readonly string[], what: string, input?: string): Promise<ExecResult> {
  const result = await run(file, args, input);
  if (result.exitCode !== 0) {
    const detail = (result.stderr || result.stdout).trim().split('\n').slice(-2).join('; ');
    throw new AgentFailure(`${what} failed${detail ? `: ${detail}` : ` (${file} exited with ${result.exitCode})`}`);
  }
  return result;
}

export class Agent {
  readonly paths: AgentPaths;
  private readonly runtime: ReturnType<typeof runtimePaths>;

  readonly tunnel: string;

  constructor(readonly edgeDir: string) {
    this.tunnel = edgeDir.split('/').filter(Boolean).pop()!;
    this.runtime = runtimePaths(join(edgeDir, '..'), this.tunnel);
    this.paths = agentPaths(this.runtime.agent);
  }

  async readState(): Promise<AgentState> {
    const text = await readTextIfExists(this.paths.state);
    if (!text)
      return { version: 1, current: null, pending: null, next: 1, interfaces: [], wireguard: null, forwarding: null };
    return JSON.parse(text) as AgentState;
  }

  async writeState(state: AgentState): Promise<void> {
    await writeJsonAtomic(this.paths.state, state, SECRET_MODE);
  }

  /** One agent at a time changes the edge (activate, confirm and the watcher's rollback race otherwise). */
  async withLock<T>(work: () => Promise<T>): Promise<T> {
    await mkdir(this.paths.dir, { recursive: true, mode: 0o700 });
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        const handle = await open(this.paths.lock, 'wx', 0o600);
        await handle.writeFile(String(process.pid));
        await handle.close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = Number((await readTextIfExists(this.paths.lock))?.trim());
        if (!Number.isInteger(holder) || holder <= 0 || !processAlive(holder)) {
          await unlink(this.paths.lock).catch(() => {});
          continue;
        }
        if (Date.now() > deadline)
          throw new AgentFailure(`the edge is busy (agent pid ${holder} holds ${this.paths.lock})`);
        await delay(50);
      }
    }
    try {
      return await work();
    } finally {
      await unlink(this.paths.lock).catch(() => {});
    }
  }

  async loadGeneration(number: number): Promise<Generation> {
    const dir = generationDir(this.paths, number);
    const config = EdgeConfig.parse(JSON.parse(await readFile(join(dir, 'edge.json'), 'utf8')));
    const rendered = RenderedEdge.parse(JSON.parse(await readFile(join(dir, 'rendered.json'), 'utf8')));
    const configHash = (await readFile(join(dir, 'config-hash'), 'utf8')).trim();
    return { number, dir, config, rendered, configHash };
  }

  // ---- activation -------------------------------------------------------------------------------------------

  async activate(
    input: { edgeJson: string; rendered: unknown; configHash: string },
    confirmTimeoutS: number,
    fail: boolean,
  ): Promise<number> {
    const config = EdgeConfig.parse(JSON.parse(input.edgeJson));
    const rendered = RenderedEdge.parse(input.rendered);
    if (!/^[0-9a-f]{64}$/.test(input.configHash)) throw new AgentFailure('configHash must be a sha256 in hex');
    return this.withLock(async () => {
      const state = await this.readState();
      if (state.pending) {
        log(`generation ${state.pending.generation} was never confirmed; rolling it back first`);
        await this.rollBackPending(state);
      }
      const number = state.next;
      state.next += 1;
      const dir = generationDir(this.paths, number);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeFile(join(dir, 'edge.json'), input.edgeJson);
      await writeFile(join(dir, 'rendered.json'), `${JSON.stringify(rendered, null, 2)}\n`);
      await writeFile(join(dir, 'config-hash'), `${input.configHash}\n`);
      const previous = state.current;
      log(
        `activating generation ${number} (config ${input.configHash.slice(0, 12)}, ${config.ports.length} ` +
          `port(s), ${config.forwarding})`,
      );
      try {
        await this.apply(await this.loadGeneration(number), state);
        if (fail) throw new AgentFailure('activation failed on purpose (INNISFREE_LOCAL_FAIL_ACTIVATION is set)');
      } catch (error) {
        log(`activation of generation ${number} failed: ${(error as Error).message}`);
        await this.restore(previous, state);
        await rm(dir, { recursive: true, force: true });
        await this.writeState(state);
        throw new RolledBack(
          `activation failed (${(error as Error).message}); rolled back to ` +
            `${previous === null ? 'the unconfigured edge' : `generation ${previous}`}`,
        );
      }
      state.current = number;
      state.pending = { generation: number, previous, deadline: Date.now() + confirmTimeoutS * 1000 };
      await this.writeState(state);
      this.spawnWatcher(number, state.pending.deadline);
      log(`generation ${number} is active; waiting ${confirmTimeoutS} s for confirmation over a new SSH connection`);
      return number;
    });
  }

  /** Puts a previous generation back (or, with none, takes everything down), after a failure or a timeout. */
  private async restore(previous: number | null, state: AgentState): Promise<void> {
    try {
      if (previous === null) await this.deconfigure(state);
      else await this.apply(await this.loadGeneration(previous), state);
      state.current = previous;
      log(
        previous === null
          ? 'rolled back: no earlier configuration, the edge serves nothing'
          : `rolled back to generation ${previous}`,
      );
    } catch (error) {
      await this.writeState(state).catch(() => {});
      throw new AgentFailure(`rolling back failed too: ${(error as Error).message}`);
    }
  }

  private async rollBackPending(state: AgentState): Promise<void> {
    const pending = state.pending!;
    state.pending = null;
    await this.restore(pending.previous, state);
    await rm(generationDir(this.paths, pending.generation), { recursive: true, force: true });
    await this.writeState(state);
  }

  async confirm(generation: number): Promise<void> {
    await this.withLock(async () => {
      const state = await this.readState();
      if (state.pending?.generation !== generation) {
        throw new RolledBack(
          `generation ${generation} is not waiting for confirmation (its confirmation timed out and it was ` +
            `rolled back)`,
        );
      }
      state.pending = null;
      await this.writeState(state);
      await this.pruneGenerations(state);
      log(`generation ${generation} confirmed`);
    });
  }

  /**
   * innisfree-edge-repair on a local edge: the serving generation applied again, which starts what died (nginx,
   * wireguard-go or the kernel link) and restores what was changed under it (peer, addresses, link state, firewall), as
   * restarting the units does on NixOS. Connections through a running nginx survive (it reloads).
   */
  async repair(): Promise<string> {
    return this.withLock(async () => {
      const state = await this.readState();
      if (state.current === null) throw new AgentFailure('nothing to repair: this edge serves no configuration yet');
      const generation = await this.loadGeneration(state.current);
      const restarted: string[] = [];
      if (generation.config.forwarding === 'nginx' && livePidFrom(this.paths.nginxPid) === undefined)
        restarted.push('nginx');
      const wireguard = state.wireguard;
      if (!wireguard) restarted.push('WireGuard');
      else if (wireguard.pid === null) {
        if ((await run('ip', ['link', 'show', 'dev', wireguard.interface])).exitCode !== 0)
          restarted.push('the kernel WireGuard link');
      } else if (!processAlive(wireguard.pid)) restarted.push('wireguard-go');
      await this.apply(generation, state);
      await this.writeState(state);
      const what = restarted.length > 0 ? `restarted ${restarted.join(' and ')}` : 'nothing had stopped';
      log(`repaired generation ${generation.number}: ${what}`);
      return `generation ${generation.number} applied again; ${what}`;
    });
  }

  /** Keeps the serving generation and the few before it. */
  private async pruneGenerations(state: AgentState): Promise<void> {
    if (state.current === null || !existsSync(this.paths.generations)) return;
    for (const entry of readdirSync(this.paths.generations)) {
      const number = Number(entry);
      if (Number.isInteger(number) && number < state.current - 4) {
        await rm(join(this.paths.generations, entry), { recursive: true, force: true });
      }
    }
  }

  private spawnWatcher(generation: number, deadline: number): void {
    const logFd = openSync(this.paths.watcherLog, 'a', 0o600);
    try {
      const child = spawn(
        process.execPath,
        [fileURLToPath(import.meta.url), 'watch', '--generation', String(generation), '--deadline', String(deadline)],
        {
          detached: true,
          stdio: ['ignore', logFd, logFd],
          env: { ...process.env, [LOCAL_EDGE_DIR_ENV]: this.edgeDir },
        },
      );
      child.unref();
    } finally {
      closeSync(logFd);
    }
  }

  /** The confirmation watcher: rolls the generation back unless it is confirmed before the deadline. */
  async watch(generation: number, deadline: number): Promise<void> {
    for (;;) {
      const state = await this.readState();
      if (state.pending?.generation !== generation) return;
      if (Date.now() >= deadline) break;
      await delay(Math.min(200, Math.max(10, deadline - Date.now())));
    }
    await this.withLock(async () => {
      const state = await this.readState();
      if (state.pending?.generation !== generation) return;
      log(`generation ${generation} was not confirmed in time; rolling back`);
      await this.rollBackPending(state);
    });
  }

  // ---- applying a generation --------------------------------------------------------------------------------

  private async apply(generation: Generation, state: AgentState): Promise<void> {
    const { config, rendered } = generation;
    await writeFileAtomic(this.runtime.authorizedKeys, `${config.ssh.authorizedKeys.join('\n')}\n`);
    await this.applyWireguard(config, state);
    if (config.forwarding === 'nginx') {
      await this.removeForwardingTables();
      await this.applyNginx(generation);
    } else {
      await this.stopNginx();
      await this.applyForwardingTable(generation);
    }
    await must(
      'nft',
      ['-f', '-'],
      'loading the edge firewall',
      firewallRuleset(rendered.firewall, config.ssh.port, config.wireguard.listenPort),
    );
    state.forwarding = config.forwarding;
    await writeFile(this.paths.configHash, `${generation.configHash}\n`);
    await this.writeStatusEnv(
      config.name,
      config.wireguard.interface,
      config.forwarding,
      forwarderCheckFor(config.forwarding, this.paths.nginxPid, rendered.nftables.family),
    );
  }

  /** What innisfree-edge-status (nix/edge-status.sh, as on NixOS edges) reports about. */
  private async writeStatusEnv(
    name: string,
    wireguardInterface: string,
    forwarding: 'nginx' | 'nftables',
    forwarderCheck: string,
  ): Promise<void> {
    await writeFileAtomic(
      this.paths.statusEnv,
      edgeStatusEnvText({
        name,
        interface: wireguardInterface,
        forwarding,
        hashFile: this.paths.configHash,
        forwarderCheck,
      }),
    );
  }

  private async deconfigure(state: AgentState): Promise<void> {
    await this.stopNginx();
    await this.removeForwardingTables();
    await run('nft', ['delete', 'table', 'inet', FIREWALL_TABLE]);
    await this.stopWireguard(state);
    state.forwarding = null;
    await rm(this.paths.configHash, { force: true });
    await this.writeStatusEnv(this.tunnel, 'none', 'nginx', 'false');
  }

  private async ensurePrivateKey(): Promise<string> {
    if (!existsSync(this.runtime.wireguardPrivate)) {
      await writeFileAtomic(this.runtime.wireguardPrivate, `${generateWireguardKeyPair().privateKey}\n`, SECRET_MODE);
    }
    return this.runtime.wireguardPrivate;
  }

  private async applyWireguard(config: EdgeConfig, state: AgentState): Promise<void> {
    const wg = config.wireguard;
    const name = wg.interface;
    if (state.wireguard && state.wireguard.interface !== name) await this.stopWireguard(state);
    const socket = join(WIREGUARD_SOCKET_DIR, `${name}.sock`);
    const current = state.wireguard?.interface === name ? state.wireguard : null;
    const running =
      current !== null &&
      (current.pid === null
        ? (await run('ip', ['link', 'show', 'dev', name])).exitCode === 0
        : processAlive(current.pid) && existsSync(socket));
    // A device of this name in the edge's own namespace that no live state owns is left from a crash: replace it.
    if (!running) await run('ip', ['link', 'del', 'dev', name]);
    if (!running && (await run('ip', ['link', 'add', 'dev', name, 'type', 'wireguard'])).exitCode === 0) {
      // Kernel WireGuard, as networking.wireguard gives a NixOS edge; wireguard-go only where the kernel has none.
      if (!state.interfaces.includes(name)) state.interfaces.push(name);
      state.wireguard = { interface: name, pid: null };
      await this.writeState(state);
    } else if (!running) {
      if (existsSync(socket)) {
        if ((await run('wg', ['show', name, 'public-key'])).exitCode === 0) {
          throw new AgentFailure(
            `a WireGuard interface named ${name} already runs on this machine (another tunnel uses the name)`,
          );
        }
        await rm(socket, { force: true });
      }
      const logFd = openSync(this.paths.wireguardLog, 'a', 0o600);
      let pid: number | undefined;
      try {
        const child = spawn('wireguard-go', ['-f', name], { detached: true, stdio: ['ignore', logFd, logFd] });
        child.on('error', () => {});
        pid = child.pid;
        child.unref();
      } finally {
        closeSync(logFd);
      }
      if (pid === undefined) throw new AgentFailure('wireguard-go could not be started (is it installed?)');
      if (!state.interfaces.includes(name)) state.interfaces.push(name);
      state.wireguard = { interface: name, pid };
      await this.writeState(state);
      for (let i = 0; !existsSync(socket); i++) {
        if (i > 100 || !processAlive(pid))
          throw new AgentFailure(`wireguard-go did not create ${name}: ${lastLine(this.paths.wireguardLog)}`);
        await delay(50);
      }
    }
    const allowed = [`${wg.peer.address}/32`, ...(wg.peer.address6 ? [`${wg.peer.address6}/128`] : [])].join(',');
    await must(
      'wg',
      [
        'set',
        name,
        'private-key',
        await this.ensurePrivateKey(),
        'listen-port',
        String(wg.listenPort),
        'peer',
        wg.peer.publicKey,
        'allowed-ips',
        allowed,
      ],
      `configuring WireGuard ${name}`,
    );
    const peers = (await must('wg', ['show', name, 'peers'], 'listing WireGuard peers')).stdout
      .split('\n')
      .filter(Boolean);
    for (const peer of peers) {
      if (peer !== wg.peer.publicKey)
        await must('wg', ['set', name, 'peer', peer, 'remove'], 'removing an old WireGuard peer');
    }
    const wanted = [wg.address, ...(wg.address6 ? [wg.address6] : [])];
    const present = addressesOf(
      (await must('ip', ['-j', 'addr', 'show', 'dev', name], `reading the addresses of ${name}`)).stdout,
    );
    for (const address of present)
      if (!wanted.includes(address)) await must('ip', ['addr', 'del', address, 'dev', name], 'removing an old address');
    for (const address of wanted)
      if (!present.includes(address)) await must('ip', ['addr', 'add', address, 'dev', name], `addressing ${name}`);
    await must('ip', ['link', 'set', 'dev', name, 'mtu', String(wg.mtu), 'up'], `bringing up ${name}`);
  }

  private async stopWireguard(state: AgentState): Promise<void> {
    if (!state.wireguard) return;
    const { interface: name, pid } = state.wireguard;
    if (pid === null) await run('ip', ['link', 'del', 'dev', name]);
    else await stopProcess(pid, 'SIGTERM');
    await rm(join(WIREGUARD_SOCKET_DIR, `${name}.sock`), { force: true });
    state.wireguard = null;
  }

  private async applyNginx(generation: Generation): Promise<void> {
    const { paths } = this;
    await mkdir(paths.nginxDir, { recursive: true, mode: 0o700 });
    const text = nginxConfText(
      generation.rendered,
      { pid: paths.nginxPid, errorLog: paths.nginxErrorLog },
      existsSync(DEBIAN_STREAM_MODULE),
    );
    const candidate = join(generation.dir, 'nginx.conf');
    await writeFile(candidate, text);
    await must(
      'nginx',
      ['-q', '-t', '-c', candidate, '-e', paths.nginxErrorLog],
      'nginx -t (checking the new configuration)',
    );
    await copyFile(candidate, paths.nginxConf);
    const master = livePidFrom(paths.nginxPid);
    if (master !== undefined) {
      // A reload: the master starts workers with the new config and lets the old ones finish their connections.
      const before = new Set(childrenOf(master));
      process.kill(master, 'SIGHUP');
      for (let i = 0; !childrenOf(master).some((pid) => !before.has(pid)); i++) {
        if (i > 100)
          throw new AgentFailure(`nginx did not take the new configuration: ${lastLine(paths.nginxErrorLog)}`);
        await delay(50);
      }
      log('nginx reloaded (open connections on unchanged ports are kept)');
    } else {
      // Workers of a master that was killed keep the listening sockets: the new master could not bind them.
      await stopStrayNginx();
      const logFd = openSync(paths.nginxErrorLog, 'a', 0o600);
      try {
        const child = spawn('nginx', ['-c', paths.nginxConf, '-e', paths.nginxErrorLog], {
          stdio: ['ignore', logFd, logFd],
        });
        child.on('error', () => {});
        const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
        if (code !== 0 || livePidFrom(paths.nginxPid) === undefined) {
          throw new AgentFailure(`nginx did not start: ${lastLine(paths.nginxErrorLog)}`);
        }
      } finally {
        closeSync(logFd);
      }
      log('nginx started');
    }
    await this.waitForListeners(generation.config);
  }

  private async waitForListeners(config: EdgeConfig): Promise<void> {
    const wanted = config.ports.map((p) => `${p.protocol}/${p.publicPort}`);
    for (let i = 0; ; i++) {
      const listening = new Set([
        ...listeningPorts('tcp', (await run('ss', ['-Hltn'])).stdout),
        ...listeningPorts('udp', (await run('ss', ['-Hlun'])).stdout),
      ]);
      const missing = wanted.filter((w) => !listening.has(w));
      if (missing.length === 0) return;
      if (i > 100)
        throw new AgentFailure(`nginx does not listen on ${missing.join(', ')}: ${lastLine(this.paths.nginxErrorLog)}`);
      await delay(50);
    }
  }

  private async stopNginx(): Promise<void> {
    const master = livePidFrom(this.paths.nginxPid);
    if (master === undefined) return;
    await stopProcess(master, 'SIGQUIT');
    await rm(this.paths.nginxPid, { force: true });
  }

  private async applyForwardingTable(generation: Generation): Promise<void> {
    const { nftables } = generation.rendered;
    for (const family of await forwardingTableFamilies()) {
      if (family !== nftables.family)
        await must('nft', ['delete', 'table', family, FORWARDING_TABLE], 'removing the old forwarding table');
    }
    await must('nft', ['-f', '-'], 'loading the nftables forwarding table', forwardingRuleset(nftables));
    // /proc/sys/net is this process's namespace: the edge's forwarding switch, not the home host's.
    await writeFile('/proc/sys/net/ipv4/ip_forward', '1\n');
    if (generation.config.ipv6) await writeFile('/proc/sys/net/ipv6/conf/all/forwarding', '1\n');
  }

  private async removeForwardingTables(): Promise<void> {
    for (const family of await forwardingTableFamilies())
      await run('nft', ['delete', 'table', family, FORWARDING_TABLE]);
  }
}

class RolledBack extends Error {}

/** "10.50.0.1/30"-style addresses of `ip -j addr show dev X`, link-local ones left out. */
export function addressesOf(json: string): string[] {
  const links = JSON.parse(json || '[]') as Array<{
    addr_info?: Array<{ local: string; prefixlen: number; scope?: string }>;
  }>;
  return links
    .flatMap((l) => l.addr_info ?? [])
    .filter((a) => a.scope !== 'link')
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/** "tcp/443"-style keys for `ss -Hl[tu]n` output. */
export function listeningPorts(protocol: 'tcp' | 'udp', ss: string): string[] {
  return ss
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[3])
    .filter((local): local is string => local !== undefined)
    .map((local) => `${protocol}/${local.slice(local.lastIndexOf(':') + 1)}`);
}

async function forwardingTableFamilies(): Promise<string[]> {
  const result = await run('nft', ['list', 'tables']);
  return result.stdout
    .split('\n')
    .map((line) => /^table (\S+) (\S+)$/.exec(line.trim()))
    .filter((m): m is RegExpExecArray => m !== null && m[2] === FORWARDING_TABLE)
    .map((m) => m[1]!);
}

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** nginx processes left in this edge's network namespace (the agent runs in it) without a live master. */
async function stopStrayNginx(): Promise<void> {
  let own: string;
  try {
    own = readlinkSync('/proc/self/ns/net');
  } catch {
    return;
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'nginx') continue;
      if (readlinkSync(`/proc/${entry}/ns/net`) !== own) continue;
      await stopProcess(Number(entry), 'SIGKILL');
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
}

async function stopProcess(pid: number, signal: NodeJS.Signals): Promise<void> {
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  for (let i = 0; i < 100 && processAlive(pid); i++) await delay(50);
  if (processAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 40 && processAlive(pid); i++) await delay(50);
  }
}

function lastLine(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').pop() ?? '(no log)';
  } catch {
    return '(no log)';
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function option(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
}

export async function agentMain(args: string[]): Promise<number> {
  const dir = process.env[LOCAL_EDGE_DIR_ENV];
  if (!dir) {
    log(`innisfree-local-edge: ${LOCAL_EDGE_DIR_ENV} is not set; this runs on a local edge, through its sshd`);
    return 2;
  }
  const agent = new Agent(dir);
  const [command, ...rest] = args;
  try {
    switch (command) {
      case 'activate': {
        const input = JSON.parse(await readStdin()) as { edgeJson: string; rendered: unknown; configHash: string };
        const generation = await agent.activate(
          input,
          Number(option(rest, '--confirm-timeout') ?? 30),
          rest.includes('--fail'),
        );
        process.stdout.write(`${JSON.stringify({ generation })}\n`);
        return 0;
      }
      case 'confirm':
        await agent.confirm(Number(option(rest, '--generation')));
        process.stdout.write(`${JSON.stringify({ confirmed: true })}\n`);
        return 0;
      case 'watch':
        await agent.watch(Number(option(rest, '--generation')), Number(option(rest, '--deadline')));
        return 0;
      case 'repair':
        process.stdout.write(`${await agent.repair()}\n`);
        return 0;
      default:
        log('usage: innisfree-local-edge activate [--confirm-timeout S] [--fail] | confirm --generation G | repair');
        return 2;
    }
  } catch (error) {
    log((error as Error).message);
    process.stdout.write(
      `${JSON.stringify({ error: (error as Error).message, rolledBack: error instanceof RolledBack })}\n`,
    );
    return error instanceof RolledBack ? EXIT_ROLLED_BACK : 1;
  }
}

function isEntryPoint(): boolean {
  try {
    return (
      process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
    );
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.exitCode = await agentMain(process.argv.slice(2));
}
