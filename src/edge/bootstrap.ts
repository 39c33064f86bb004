// Getting NixOS onto a fresh edge. "image": the droplet booted our NixOS image, so there is nothing to do but wait
// for SSH. "nixos-anywhere": the droplet runs stock Debian; nixos-anywhere kexecs into an installer, partitions
// with disko and installs the per-tunnel flake's nixosConfigurations.edge, keeping the edge's host key (the one the
// CLI made and pinned) through --extra-files.
//
// nixos-anywhere puts `-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no` before any --ssh-option, and
// ssh takes the first value it sees, so its own connections do not check the pin. We pass the pinned file anyway
// and check the pin ourselves right before handing over and again on the installed system.
import { chmod, copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../lib/context.js';
import { DeployError, EnvironmentError, type InnisfreeError, SshError } from '../lib/errors.js';
import type { Emit, LogEvent } from '../lib/events.js';
import { stripAnsi } from '../lib/lines.js';
import type { StreamExec } from '../lib/stream-exec.js';
import type { Bootstrap } from '../spec/tunnel.js';
import { readTextIfExists } from '../state/files.js';
import type { SshTarget } from './deployer-port.js';
import { pinHostKey } from './known-hosts.js';
import { type WaitReadyOptions, type ReadyEdge, refuseWhitespaceInSshPath } from './ssh.js';

export interface NixosAnywhereArgsInput {
  edgeDir: string;
  host: string;
  /** Port of the stock system's sshd (22 on a DigitalOcean Debian droplet). */
  sshPort: number;
  privateKeyPath: string;
  knownHostsPath: string;
  /** A directory whose tree is copied to / of the installed system. */
  extraFilesDir: string;
}

export function buildNixosAnywhereArgs(input: NixosAnywhereArgsInput): string[] {
  refuseWhitespaceInSshPath('known_hosts', input.knownHostsPath, 'ssh options cannot carry');
  return [
    '--flake',
    // path: keeps Nix from treating the state directory as part of an enclosing git repository.
    `path:${input.edgeDir}#edge`,
    '--target-host',
    `root@${input.host}`,
    '-i',
    input.privateKeyPath,
    '-p',
    String(input.sshPort),
    '--ssh-option',
    `UserKnownHostsFile=${input.knownHostsPath}`,
    '--extra-files',
    input.extraFilesDir,
  ];
}

export interface ExtraFiles {
  dir: string;
  remove(): Promise<void>;
}

/**
 * A 0700 temporary tree holding etc/ssh/ssh_host_ed25519_key{,.pub} for --extra-files. nixos-anywhere copies it
 * with tar -p, so etc and etc/ssh must be 0755 (they become the new system's /etc and /etc/ssh).
 */
export async function prepareHostKeyFiles(hostKeyPrivatePath: string, hostKeyPublicPath: string): Promise<ExtraFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'innisfree-extra-files-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await chmod(dir, 0o700);
    const sshDir = join(dir, 'etc', 'ssh');
    await mkdir(sshDir, { recursive: true });
    await chmod(join(dir, 'etc'), 0o755);
    await chmod(sshDir, 0o755);
    const privateTarget = join(sshDir, 'ssh_host_ed25519_key');
    await copyFile(hostKeyPrivatePath, privateTarget);
    await chmod(privateTarget, 0o600);
    const publicTarget = join(sshDir, 'ssh_host_ed25519_key.pub');
    await copyFile(hostKeyPublicPath, publicTarget);
    await chmod(publicTarget, 0o644);
  } catch (error) {
    await remove();
    throw new EnvironmentError(`could not stage the edge host key for nixos-anywhere: ${(error as Error).message}`, {
      hint:
        'check the tunnel state directory (ssh/edge_host_ed25519_key) and the temporary directory are readable ' +
        'and writable',
    });
  }
  return { dir, remove };
}

/** nixos-anywhere's own lines as events: its "### step ###" headings as info, the rest as debug, errors as warnings. */
export function nixosAnywhereLogEvent(raw: string): LogEvent | undefined {
  const line = stripAnsi(raw).trimEnd();
  if (line.trim() === '') return undefined;
  const heading = /^###\s*(.*?)\s*###$/.exec(line.trim());
  if (heading) return { type: 'log', level: 'info', message: heading[1]!, source: 'nixos-anywhere' };
  const level = /^\s*(error|abort|fatal)\b|\bERROR\b|Permission denied/i.test(line) ? 'warn' : 'debug';
  return { type: 'log', level, message: line, source: 'nixos-anywhere' };
}

/** What went wrong, from nixos-anywhere's output: the failure class, a message and what to do. */
export function classifyNixosAnywhereFailure(lines: readonly string[], exitCode: number, host: string): InnisfreeError {
  const text = lines.map(stripAnsi).join('\n');
  const last =
    [...lines]
      .map((l) => stripAnsi(l).trim())
      .reverse()
      .find((l) => /error|abort|fail|denied|refused/i.test(l)) ?? `exit ${exitCode}`;
  if (/Permission denied \(publickey/.test(text)) {
    return new SshError(`nixos-anywhere could not log in to ${host} as root: the tunnel's SSH key was refused`, {
      hint:
        'the stock droplet must authorize the tunnel key for root (it is sent at create); destroy the edge ' +
        '(innisfree down NAME) and run up again',
    });
  }
  if (/Connection refused|Connection timed out|No route to host|Could not resolve hostname/.test(text)) {
    return new SshError(`nixos-anywhere lost the SSH connection to ${host}: ${last}`, {
      hint:
        'check the edge is still running and reachable, then run innisfree up again (it resumes with the ' +
        'same edge)',
    });
  }
  if (/Failure unpacking initrd|Cannot allocate memory|Out of memory|not enough (memory|RAM)/i.test(text)) {
    return new DeployError(`nixos-anywhere's kexec step ran out of memory on ${host}`, {
      hint: 'nixos-anywhere needs at least 1.5 GB of RAM: use --size s-1vcpu-2gb, or --bootstrap image',
    });
  }
  if (/Unable to find a command to use to escalate privileges/.test(text)) {
    return new DeployError(`nixos-anywhere cannot become root on ${host}`, {
      hint: 'the stock image must allow root login with the tunnel key',
    });
  }
  if (
    new RegExp(
      /Please specify the name of the NixOS configuration|does not provide attribute|error: /.source +
        /(getting|evaluating|flake)/.source,
    ).test(text)
  ) {
    return new DeployError(`nixos-anywhere could not evaluate the edge configuration: ${last}`, {
      hint:
        'the per-tunnel flake in the tunnel state (edge/flake.nix) is broken; run with --verbose for the full ' +
        'Nix error',
    });
  }
  return new DeployError(`installing NixOS on ${host} with nixos-anywhere failed (exit ${exitCode}): ${last}`, {
    hint:
      'run again with --verbose for its full log; destroying the edge (innisfree down NAME) and starting over is ' +
      'always safe',
  });
}

export interface BootstrapContext {
  exec: StreamExec;
  clock: Clock;
  /** ssh.waitReady, injected so tests can fake the edge. */
  waitReady: (target: SshTarget, options: WaitReadyOptions) => Promise<ReadyEdge>;
}

export interface BootstrapRequest {
  method: Bootstrap;
  edgeDir: string;
  /** The installed edge: root, the edge SSH port of the tunnel spec, the tunnel key and pinned known_hosts. */
  target: SshTarget;
  /** The edge's host key the CLI made (ssh/edge_host_ed25519_key{,.pub}). */
  hostKeyPrivatePath: string;
  hostKeyPublicPath: string;
  /** The stock system's sshd port for nixos-anywhere (default 22). */
  installSshPort?: number;
  /** For each wait for SSH (default 10 minutes: a droplet boot, or a reboot into the installed system). */
  waitTimeoutMs?: number;
  /** The nixos-anywhere program (default "nixos-anywhere"; the innisfree Nix package puts it on PATH). */
  command?: string;
  emit: Emit;
  signal: AbortSignal;
}

/** Makes the edge run NixOS and answer SSH with the pinned host key. */
export async function bootstrapEdge(ctx: BootstrapContext, request: BootstrapRequest): Promise<ReadyEdge> {
  const { emit, signal, target } = request;
  const wait = (t: SshTarget) =>
    ctx.waitReady(t, { timeoutMs: request.waitTimeoutMs ?? 600_000, clock: ctx.clock, emit, signal });
  if (request.method === 'image') return wait(target);

  const hostPublicKey = (await readTextIfExists(request.hostKeyPublicPath))?.trim();
  if (!hostPublicKey) {
    throw new EnvironmentError(`the edge host key ${request.hostKeyPublicPath} is missing`, {
      hint: 'it is made when the tunnel is prepared; run innisfree up again',
    });
  }
  const installTarget: SshTarget = { ...target, port: request.installSshPort ?? 22 };
  // The stock system presents the same host key (injected at create); pin it for the install port too.
  await pinHostKey(target.knownHostsPath, target.host, installTarget.port, hostPublicKey);
  await wait(installTarget);

  const extraFiles = await prepareHostKeyFiles(request.hostKeyPrivatePath, request.hostKeyPublicPath);
  const lines: string[] = [];
  let exitCode: number;
  try {
    const args = buildNixosAnywhereArgs({
      edgeDir: request.edgeDir,
      host: target.host,
      sshPort: installTarget.port,
      privateKeyPath: target.privateKeyPath,
      knownHostsPath: target.knownHostsPath,
      extraFilesDir: extraFiles.dir,
    });
    const onLine = (raw: string): void => {
      lines.push(raw);
      if (lines.length > 2000) lines.shift();
      const event = nixosAnywhereLogEvent(raw);
      if (event) emit(event);
    };
    const command = request.command ?? 'nixos-anywhere';
    try {
      ({ exitCode } = await ctx.exec(command, args, { signal, onStdoutLine: onLine, onStderrLine: onLine }));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new EnvironmentError(`${command} is not installed`, {
          hint:
            'run innisfree from its Nix package (nix run <innisfree flake>#innisfree), which brings ' +
            'nixos-anywhere, or use --bootstrap image',
        });
      }
      throw error;
    }
  } finally {
    await extraFiles.remove();
  }
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new DeployError('bootstrap interrupted');
  if (exitCode !== 0) throw classifyNixosAnywhereFailure(lines, exitCode, target.host);
  emit({ type: 'log', level: 'info', message: `NixOS is installed on ${target.host}; waiting for it to boot` });
  return wait(target);
}
