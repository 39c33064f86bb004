// Network-namespace test beds: namespaces, veth pairs, processes and temp dirs with random names, torn down in
// reverse order of creation whatever happens, and checked afterwards — a test fails if it left anything behind.
// Other engineers run tests on the same machine at the same time, so nothing here ever touches a resource it did
// not create: no cleanup by prefix, processes are stopped by pid, and a namespace is only deleted by its own name.
//
//   await withTestbed('forwarder', async (bed) => {
//     const edge = await bed.namespace('edge');
//     const home = await bed.namespace('home');
//     await bed.veth(edge, home, { a: '198.51.100.1/30', b: '198.51.100.2/30' });
//     const server = bed.spawn(home, process.execPath, [script]);
//     await server.waitForOutput(/listening/);
//   });
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { wireguardSocketPath } from '../../src/home/wireguard.js';

/** Why namespace tests cannot run here, or undefined when they can. Tests print this and skip. */
export function namespaceSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (ip.error) return 'the "ip" command (iproute2) is not installed';
  return undefined;
}

/** Prints a clear skip line (never a silent pass) and tells the caller whether to skip. */
export function skipUnless(what: string, ...requirements: Array<() => string | undefined>): boolean {
  for (const requirement of requirements) {
    const reason = requirement();
    if (reason !== undefined) {
      console.log(`  SKIPPED: ${what}: ${reason}`);
      return true;
    }
  }
  return false;
}

/** A requirement for skipUnless: the command exists on PATH. */
export function needsCommand(command: string): () => string | undefined {
  return () =>
    spawnSync('sh', ['-c', `command -v ${command}`]).status === 0 ? undefined : `${command} is not installed`;
}

export function randomHex(bytes = 3): string {
  return randomBytes(bytes).toString('hex');
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (no shell); never throws for a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (error) => {
      if (timer) clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (child.stdin) {
      // The command may exit without reading its input; that is its answer, not an error here.
      child.stdin.on('error', () => {});
      child.stdin.end(options.input);
    }
  });
}

/** Like run, but a non-zero exit is an error naming the command and its stderr. */
export async function runOk(
  command: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited with ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
  }
  return result.stdout;
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is dead for our purposes: it holds no resources but its exit status.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** True when something accepts connections on a wireguard-go control socket. */
export function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Processes inside namespace name, optionally only those whose command name (/proc/PID/comm) is comm. */
export async function pidsIn(ns: { name: string }, comm?: string): Promise<number[]> {
  const pids = (await run('ip', ['netns', 'pids', ns.name])).stdout.split('\n').filter(Boolean).map(Number);
  if (comm === undefined) return pids.filter(pidAlive);
  return pids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm && pidAlive(pid);
    } catch {
      return false;
    }
  });
}

export interface Namespace {
  name: string;
  /** Runs a command inside the namespace to completion. */
  run(command: string, args: readonly string[], options?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  /** Like run; a non-zero exit throws. */
  runOk(command: string, args: readonly string[], options?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** `ip` inside the namespace (`ip -n NAME …`). */
  ip(...args: string[]): Promise<string>;
}

export interface Proc {
  pid: number;
  child: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr interleaved, capped). */
  output(): string;
  /** Resolves on the first output line matching pattern; rejects if the process exits first or time runs out. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends signal, waits up to timeoutMs, then SIGKILL. Resolves when the process is gone. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Keep stdin open as a pipe (default: closed). */
  stdin?: boolean;
}

const OUTPUT_CAP = 256 * 1024;

interface Resource {
  describe: string;
  release(): Promise<void>;
  /** Returns a description of what is still there, or undefined when it is gone. */
  check(): Promise<string | undefined>;
}

const live = new Set<Testbed>();
let exitHookInstalled = false;

/** Last-resort cleanup when the test process dies without running finally blocks (uncaught error, signal). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const emergency = (): void => {
    for (const bed of live) bed.releaseSync();
  };
  process.on('exit', emergency);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      emergency();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

export class Testbed {
  /** Random and short, so names built from it fit the 15-byte interface name limit. */
  readonly id = randomHex(3);
  private counter = 0;
  private readonly resources: Resource[] = [];
  private readonly namespaces: string[] = [];
  private readonly pids = new Set<number>();
  private released = false;
  /** Set once cleanup() has finished; until then the exit hook still has work to do. */
  private finished = false;

  constructor(readonly label: string) {
    live.add(this);
    installExitHook();
  }

  /** A name unique to this bed and machine: prefix + bed id + counter, at most 15 bytes. */
  name(prefix: string): string {
    const name = `${prefix}${this.id}${(this.counter++).toString(36)}`;
    if (name.length > 15) throw new Error(`name ${name} is longer than 15 bytes; use a shorter prefix`);
    return name;
  }

  async namespace(prefix = 'isft-'): Promise<Namespace> {
    const name = this.name(prefix);
    // Recorded before it exists: a test process that dies while `ip netns add` runs still has it removed on exit.
    this.namespaces.push(name);
    this.track({
      describe: `namespace ${name}`,
      release: async () => {
        // Every process in a namespace this bed made is ours: stop them so none outlives the bed.
        await this.killNamespacePids(name);
        await run('ip', ['netns', 'del', name]);
      },
      check: async () => {
        const list = await runOk('ip', ['netns', 'list']);
        return list.split('\n').some((line) => line.split(' ')[0] === name)
          ? `namespace ${name} still exists`
          : undefined;
      },
    });
    await runOk('ip', ['netns', 'add', name]);
    await runOk('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    const ns: Namespace = {
      name,
      run: (command, args, options) => run('ip', ['netns', 'exec', name, command, ...args], options),
      runOk: (command, args, options) => runOk('ip', ['netns', 'exec', name, command, ...args], options),
      ip: (...args) => runOk('ip', ['-n', name, ...args]),
    };
    return ns;
  }

  /** A veth pair between two namespaces, addressed and up. Returns the device names. */
  async veth(
    a: Namespace,
    b: Namespace,
    addresses: { a: string; b: string; a6?: string; b6?: string },
  ): Promise<{ a: string; b: string }> {
    const nameA = this.name('vta');
    const nameB = this.name('vtb');
    await runOk('ip', ['link', 'add', nameA, 'netns', a.name, 'type', 'veth', 'peer', 'name', nameB, 'netns', b.name]);
    // Deleting either namespace removes the pair; this entry covers a failure before both exist.
    this.track({
      describe: `veth ${nameA}`,
      release: async () => {
        await run('ip', ['-n', a.name, 'link', 'del', nameA]);
      },
      check: async () => undefined,
    });
    await a.ip('addr', 'add', addresses.a, 'dev', nameA);
    await b.ip('addr', 'add', addresses.b, 'dev', nameB);
    if (addresses.a6) await a.ip('addr', 'add', addresses.a6, 'dev', nameA, 'nodad');
    if (addresses.b6) await b.ip('addr', 'add', addresses.b6, 'dev', nameB, 'nodad');
    await a.ip('link', 'set', nameA, 'up');
    await b.ip('link', 'set', nameB, 'up');
    return { a: nameA, b: nameB };
  }

  /**
   * Reserves a WireGuard interface name (unique machine-wide, because wireguard-go's control sockets share
   * /var/run/wireguard) and checks at the end that neither its link nor its control socket survived.
   */
  wireguardName(prefix = 'isfw'): string {
    const name = this.name(prefix);
    const socket = wireguardSocketPath(name);
    this.track({
      describe: `wireguard interface ${name}`,
      release: async () => {
        // Only a socket nobody answers on is removed: a live one belongs to a process the check will report.
        if (existsSync(socket) && !(await socketInUse(socket))) rmSync(socket, { force: true });
      },
      check: async () => {
        if (existsSync(socket)) return `wireguard-go control socket ${socket} still exists`;
        const link = await run('ip', ['link', 'show', 'dev', name]);
        return link.code === 0 ? `interface ${name} still exists in the root namespace` : undefined;
      },
    });
    return name;
  }

  tempDir(): string {
    const path = mkdtempSync(join(tmpdir(), `isft-${this.id}-`));
    this.track({
      describe: `temp dir ${path}`,
      release: async () => rmSync(path, { recursive: true, force: true }),
      check: async () => (existsSync(path) ? `temp dir ${path} still exists` : undefined),
    });
    return path;
  }

  /** Starts a process, inside ns when given. It is stopped (SIGTERM, then SIGKILL) at cleanup if still running. */
  spawn(ns: Namespace | undefined, command: string, args: readonly string[], options: SpawnOptions = {}): Proc {
    const argv = ns ? ['netns', 'exec', ns.name, command, ...args] : [...args];
    const child = spawn(ns ? 'ip' : command, argv, {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    if (child.pid === undefined) throw new Error(`could not start ${command}`);
    // `ip netns exec` execs the command in place, so this pid is the command's own.
    const pid = child.pid;
    this.pids.add(pid);
    let output = '';
    const listeners = new Set<() => void>();
    const onData = (data: Buffer): void => {
      output += data.toString();
      if (output.length > OUTPUT_CAP) output = output.slice(-OUTPUT_CAP);
      for (const listener of listeners) listener();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('close', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: null, signal: null }));
      // 'close' waits for the output pipes, which a forked grandchild (socat with fork) can hold open forever:
      // after 'exit', give the last output a moment to arrive and then report the exit anyway.
      child.once('exit', (code, signal) => setTimeout(() => resolve({ code, signal }), 300).unref());
    });
    let done = false;
    void exited.then(() => {
      done = true;
      for (const listener of listeners) listener();
    });
    const proc: Proc = {
      pid,
      child,
      output: () => output,
      exited,
      waitForOutput: (pattern, timeoutMs = 15_000) =>
        new Promise((resolve, reject) => {
          const check = (): void => {
            for (const line of output.split('\n')) {
              const match = pattern.exec(line);
              if (match) return finish(undefined, match);
            }
            if (done)
              finish(new Error(`${command} exited before printing ${pattern}; output:\n${output.slice(-2000)}`));
          };
          const timer = setTimeout(
            () =>
              finish(new Error(`timed out waiting for ${pattern} from ${command}; output:\n${output.slice(-2000)}`)),
            timeoutMs,
          );
          const finish = (error?: Error, match?: RegExpMatchArray): void => {
            clearTimeout(timer);
            listeners.delete(check);
            if (error) reject(error);
            else resolve(match!);
          };
          listeners.add(check);
          check();
        }),
      stop: async (signal = 'SIGTERM', timeoutMs = 5_000) => {
        if (!done) {
          child.kill(signal);
          const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
          await exited;
          clearTimeout(timer);
        }
        return exited;
      },
    };
    this.track({
      describe: `process ${pid} (${command})`,
      release: async () => {
        await proc.stop('SIGTERM', 3_000);
      },
      check: async () => (pidAlive(pid) ? `process ${pid} (${command}) is still running` : undefined),
    });
    return proc;
  }

  /** Registers any other cleanup; runs in reverse order of registration with the rest. */
  track(resource: Resource): void {
    if (this.released) throw new Error(`testbed ${this.label} is already torn down`);
    this.resources.push(resource);
  }

  /** Tears everything down in reverse order and returns what is still there (empty when clean). */
  async cleanup(): Promise<string[]> {
    if (this.released) return [];
    this.released = true;
    const failures: string[] = [];
    for (const resource of [...this.resources].reverse()) {
      try {
        await resource.release();
      } catch (error) {
        failures.push(`releasing ${resource.describe}: ${(error as Error).message}`);
      }
    }
    for (const resource of this.resources) {
      const leftover = await resource
        .check()
        .catch((error: Error) => `checking ${resource.describe}: ${error.message}`);
      if (leftover) failures.push(leftover);
    }
    this.finished = true;
    live.delete(this);
    return failures;
  }

  /** Synchronous best effort for process exit: kill our pids, delete our namespaces. */
  releaseSync(): void {
    if (this.finished) return;
    this.released = true;
    this.finished = true;
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const name of this.namespaces) {
      const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout ?? '';
      for (const pid of pids.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      spawnSync('ip', ['netns', 'del', name]);
    }
    live.delete(this);
  }

  private async killNamespacePids(name: string): Promise<void> {
    const list = async (): Promise<number[]> =>
      (await run('ip', ['netns', 'pids', name])).stdout
        .split('\n')
        .filter(Boolean)
        .map(Number)
        .filter((pid) => pidAlive(pid));
    let pids = await list();
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    const deadline = Date.now() + 3_000;
    while (pids.length > 0 && Date.now() < deadline) {
      await delay(50);
      pids = await list();
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await waitFor(
      `processes in namespace ${name} to exit`,
      async () => ((await list()).length === 0 ? true : undefined),
      3_000,
    );
  }
}

/**
 * Runs body with a fresh test bed and always tears it down. Throws when body failed, or when anything the bed
 * made is still there afterwards (so a leak fails the test that caused it).
 */
export async function withTestbed(label: string, body: (bed: Testbed) => Promise<void>): Promise<void> {
  const bed = new Testbed(label);
  let failure: unknown;
  try {
    await body(bed);
  } catch (error) {
    failure = error;
  }
  const leftovers = await bed.cleanup();
  if (failure !== undefined) {
    if (leftovers.length > 0 && failure instanceof Error)
      failure.message += `\n(also left behind: ${leftovers.join('; ')})`;
    throw failure;
  }
  if (leftovers.length > 0) throw new Error(`testbed ${label} left resources behind: ${leftovers.join('; ')}`);
}
