// innisfree ssh NAME [-- COMMAND…]: the system ssh client with the tunnel's key and pinned known_hosts, strict host
// key checking, stdio inherited (an interactive shell, or one remote command).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { readPinnedKeys } from '../edge/known-hosts.js';
import type { SshTarget } from '../edge/deployer-port.js';
import { pinnedSshClientOptions, sshTargetFor } from '../edge/ssh.js';
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { EnvironmentError, SshError } from '../lib/errors.js';
import { requireTunnelEdge } from './tunnel-edge.js';

/** remoteCommand: run this instead of a login shell (ssh joins the words with spaces, as it always does). */
export function buildSshArgv(target: SshTarget, remoteCommand: readonly string[]): string[] {
  return [
    ...pinnedSshClientOptions(target),
    '-p',
    String(target.port),
    `${target.user}@${target.host}`,
    ...remoteCommand,
  ];
}

export type InteractiveRunner = (file: string, args: readonly string[]) => Promise<number>;

/** Runs a program on this terminal; resolves with its exit code. The CLI survives ^C while it runs: ssh decides. */
export const runOnTerminal: InteractiveRunner = (file, args) =>
  new Promise((resolve, reject) => {
    const ignore = (): void => {};
    process.on('SIGINT', ignore);
    const child = spawn(file, [...args], { stdio: 'inherit' });
    const done = (): void => void process.off('SIGINT', ignore);
    child.once('error', (error: NodeJS.ErrnoException) => {
      done();
      reject(
        error.code === 'ENOENT'
          ? new EnvironmentError(`${file}: command not found`, {
              hint: 'install the OpenSSH client (apt-get install openssh-client)',
            })
          : error,
      );
    });
    child.once('exit', (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 127));
    });
  });

export interface SshOptions {
  name: string;
  /** The words after --: run on the edge instead of a shell. */
  remoteCommand: readonly string[];
}

export async function sshCommand(
  ctx: Pick<Context, 'env'>,
  options: SshOptions,
  run: InteractiveRunner = runOnTerminal,
): Promise<CommandOutcome> {
  const { name, remoteCommand } = options;
  const { paths, edge, sshPort } = await requireTunnelEdge(ctx.env, name);
  if (!existsSync(paths.sshPrivate)) {
    throw new SshError(`tunnel "${name}" has no SSH key (${paths.sshPrivate} is missing)`, {
      hint: `run innisfree up --name ${name} again, or restore the key from a backup`,
    });
  }
  if ((await readPinnedKeys(paths.knownHosts, edge.ipv4, sshPort)).length === 0) {
    throw new SshError(`no host key is pinned for the edge ${edge.ipv4}:${sshPort} in ${paths.knownHosts}`, {
      hint: `run innisfree up --name ${name} again: it pins the edge's host key`,
    });
  }
  const argv = buildSshArgv(sshTargetFor(paths, edge.ipv4, sshPort), remoteCommand);
  return { exitCode: await run('ssh', argv) };
}
