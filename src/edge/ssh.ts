// SSH to an edge with ssh2: the host key pinned in the tunnel's known_hosts is enforced (a changed key is refused,
// an absent pin is written on first contact), commands run with a timeout and take secrets only on stdin, and
// waitReady() waits for a freshly created edge: first its TCP port, then a working login, with backoff.
import { readFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { Clock } from '../lib/context.js';
import { InterruptedError, SshError, UsageError } from '../lib/errors.js';
import type { Emit } from '../lib/events.js';
import { createLineSplitter } from '../lib/lines.js';
import type { TunnelPaths } from '../state/paths.js';
import type { SshTarget } from './deployer-port.js';
import { type HostPublicKey, fingerprintOf, knownHostsPattern, pinHostKey, readPinnedKeys } from './known-hosts.js';

export type { SshTarget } from './deployer-port.js';

/** Why a connection attempt failed; waitReady retries every reason but a changed host key. */
export type SshFailureReason = 'refused' | 'unreachable' | 'timeout' | 'auth' | 'hostKey' | 'protocol' | 'closed';

export class SshConnectError extends SshError {
  constructor(
    message: string,
    readonly reason: SshFailureReason,
    hint: string,
    cause?: unknown,
  ) {
    super(message, { hint, cause });
  }
}

export interface SshExecOptions {
  /** Written to the command's stdin, then stdin is closed. The only way secrets reach the edge. */
  input?: string;
  /** The command is abandoned (and its channel closed) after this long. Default 120 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called once per line of stderr as it arrives (for streaming progress). */
  onStderrLine?: (line: string) => void;
}

export interface SshExecResult {
  stdout: string;
  stderr: string;
  /** The remote exit status; 255 when the command was killed by a signal or the channel closed without one. */
  exitCode: number;
  /** The signal that ended the remote command, if any. */
  signal?: string;
}

export interface SshConnection {
  readonly target: SshTarget;
  /** "SHA256:…" of the host key the edge presented. */
  readonly hostKeyFingerprint: string;
  exec(command: string, options?: SshExecOptions): Promise<SshExecResult>;
  close(): void;
}

export interface SshConnectOptions {
  /** TCP connect, key exchange and authentication together. Default 20 s. */
  readyTimeoutMs?: number;
  signal?: AbortSignal;
  emit?: Emit;
}

/** Runs one command on an edge over a fresh connection (what deploy steps and status reads use). */
export type SshRunner = (
  target: SshTarget,
  command: string,
  options?: SshExecOptions & SshConnectOptions,
) => Promise<SshExecResult>;

const DEFAULT_READY_TIMEOUT_MS = 20_000;
const DEFAULT_EXEC_TIMEOUT_MS = 120_000;
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** Host key algorithms to ask for, so a server with several host keys presents the pinned kind. */
function hostKeyAlgorithmsFor(keys: readonly HostPublicKey[]): string[] | undefined {
  const algorithms = new Set<string>();
  for (const key of keys) {
    if (key.type === 'ssh-rsa') ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'].forEach((a) => algorithms.add(a));
    else if (key.type === 'ssh-ed25519' || key.type.startsWith('ecdsa-sha2-')) algorithms.add(key.type);
    else return undefined;
  }
  return algorithms.size > 0 ? [...algorithms] : undefined;
}

function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString('latin1');
}

/** host:port, with an IPv6 host in brackets. */
export function endpointOf(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new InterruptedError();
}

async function readPrivateKey(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    // Not a connect failure: waiting longer cannot fix it, so waitReady gives up at once.
    throw new SshError(
      `cannot read the tunnel's SSH key ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      {
        hint: 'run innisfree up for this tunnel once, which creates its keys, or restore the file from a backup',
      },
    );
  }
}

function hostKeyChanged(
  target: SshTarget,
  presented: HostPublicKey,
  pinned: readonly HostPublicKey[],
): SshConnectError {
  const pattern = knownHostsPattern(target.host, target.port);
  return new SshConnectError(
    `the edge at ${endpointOf(target.host, target.port)} presented host key ${presented.type} ` +
      `${fingerprintOf(presented.blob)}, ` +
      `but ${target.knownHostsPath} pins ${pinned.map((k) => `${k.type} ${fingerprintOf(k.blob)}`).join(', ')}; ` +
      'refusing to connect, because the machine answering may not be your edge',
    'hostKey',
    `if the edge was re-created on purpose, remove the old pin (ssh-keygen -R '${pattern}' -f ` +
      `${target.knownHostsPath}) and run the command again; otherwise find out who answers at ${target.host}`,
  );
}

/** Turns an ssh2 error into a one-line SshConnectError with a reason and a hint. */
function classifyError(target: SshTarget, error: Error & { level?: string; code?: string }): SshConnectError {
  const where = endpointOf(target.host, target.port);
  if (error.level === 'client-authentication') {
    return new SshConnectError(
      `the edge at ${where} refused the tunnel's SSH key for ${target.user}`,
      'auth',
      `the edge must authorize ${target.privateKeyPath}.pub for ${target.user}; a new edge may still be ` +
        `installing it, otherwise re-create the edge`,
      error,
    );
  }
  if (error.level === 'client-timeout' || error.code === 'ETIMEDOUT') {
    return new SshConnectError(
      `SSH to ${where} timed out`,
      'timeout',
      `check that ${where} is reachable (TCP) from here`,
      error,
    );
  }
  if (error.code === 'ECONNREFUSED') {
    return new SshConnectError(
      `nothing accepts SSH connections at ${where} (connection refused)`,
      'refused',
      'the edge may still be booting; check it is running',
      error,
    );
  }
  if (error.code === 'EHOSTUNREACH' || error.code === 'ENETUNREACH' || error.code === 'EADDRNOTAVAIL') {
    return new SshConnectError(
      `${where} is unreachable (${error.code})`,
      'unreachable',
      "check the edge address and this host's network",
      error,
    );
  }
  if (error.code === 'ECONNRESET' || /closed|ended|disconnect/i.test(error.message)) {
    return new SshConnectError(
      `the SSH connection to ${where} was closed: ${error.message}`,
      'closed',
      'the edge may be restarting its SSH server; try again',
      error,
    );
  }
  if (error.level === 'handshake' && /host key/i.test(error.message)) {
    return new SshConnectError(
      `the edge at ${where} offers no host key of the pinned type (${error.message}); refusing to connect`,
      'hostKey',
      `if the edge was re-created on purpose, remove its line from ${target.knownHostsPath} and run the command again`,
      error,
    );
  }
  return new SshConnectError(
    `SSH to ${where} failed: ${error.message}`,
    'protocol',
    'run the command again with --verbose for details',
    error,
  );
}

/**
 * Opens an authenticated connection. The host key must match the pin in target.knownHostsPath; with no pin for
 * this host:port the presented key is pinned (trust on first use, when the CLI could not pin it in advance).
 */
export async function connectSsh(target: SshTarget, options: SshConnectOptions = {}): Promise<SshConnection> {
  const { signal, emit } = options;
  if (signal?.aborted) throw abortReason(signal);
  const privateKey = await readPrivateKey(target.privateKeyPath);
  const pinned = await readPinnedKeys(target.knownHostsPath, target.host, target.port);
  const algorithms = hostKeyAlgorithmsFor(pinned);
  const client = new ssh2.Client();
  let presented: HostPublicKey | undefined;
  let verifyFailure: SshConnectError | undefined;

  return new Promise<SshConnection>((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, connection?: SshConnection): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (error) {
        client.end();
        reject(error);
      } else {
        resolve(connection!);
      }
    };
    const onAbort = (): void => finish(abortReason(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });

    client.on('ready', () => finish(undefined, new Ssh2Connection(client, target, fingerprintOf(presented!.blob))));
    client.on('error', (error: Error & { level?: string; code?: string }) =>
      finish(verifyFailure ?? classifyError(target, error)),
    );
    client.on('close', () =>
      finish(
        verifyFailure ??
          new SshConnectError(
            `the SSH connection to ${endpointOf(target.host, target.port)} closed before login`,
            'closed',
            'try again',
          ),
      ),
    );
    client.connect({
      host: target.host,
      port: target.port,
      username: target.user,
      privateKey,
      readyTimeout: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
      ...(algorithms ? { algorithms: { serverHostKey: algorithms as ssh2.ServerHostKeyAlgorithm[] } } : {}),
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
        presented = { type: keyTypeOfBlob(key), blob: key.toString('base64') };
        if (pinned.length > 0) {
          const known = pinned.some((k) => k.blob === presented!.blob);
          if (!known) verifyFailure = hostKeyChanged(target, presented, pinned);
          verify(known);
          return;
        }
        const line = `${presented.type} ${presented.blob}`;
        pinHostKey(target.knownHostsPath, target.host, target.port, line).then(
          () => {
            emit?.({
              type: 'log',
              level: 'info',
              message:
                `pinned the host key of ${endpointOf(target.host, target.port)} (` +
                `${fingerprintOf(presented!.blob)}) on first contact in ${target.knownHostsPath}`,
            });
            verify(true);
          },
          (error: Error) => {
            verifyFailure = new SshConnectError(
              `could not pin the host key of ${endpointOf(target.host, target.port)} in ` +
                `${target.knownHostsPath}: ${error.message}`,
              'protocol',
              'check that the tunnel state directory is writable',
              error,
            );
            verify(false);
          },
        );
      },
    });
  });
}

class Ssh2Connection implements SshConnection {
  constructor(
    private readonly client: ssh2.Client,
    readonly target: SshTarget,
    readonly hostKeyFingerprint: string,
  ) {
    // Errors after login (e.g. the edge going away) surface through the pending exec; never crash the process.
    client.on('error', () => {});
  }

  exec(command: string, options: SshExecOptions = {}): Promise<SshExecResult> {
    const { signal } = options;
    const timeoutMs = options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const where = endpointOf(this.target.host, this.target.port);
    const shortCommand = command.split(/\s+/).slice(0, 2).join(' ');
    return new Promise<SshExecResult>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      let settled = false;
      let channel: ssh2.ClientChannel | undefined;
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let size = 0;
      let exitCode: number | undefined;
      let exitSignal: string | undefined;
      const stderrLines = options.onStderrLine ? createLineSplitter(options.onStderrLine) : undefined;
      const finish = (error?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.client.removeListener('close', onClientClose);
        stderrLines?.flush();
        if (error) {
          channel?.close();
          reject(error);
          return;
        }
        resolve({
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: Buffer.concat(stderr).toString('utf8'),
          exitCode: exitCode ?? 255,
          ...(exitSignal ? { signal: exitSignal } : {}),
        });
      };
      const timer = setTimeout(
        () =>
          finish(
            new SshError(
              `"${shortCommand}" on the edge at ${where} did not finish within ${Math.round(timeoutMs / 1000)} s`,
              {
                hint: 'the edge may be overloaded or stuck; check it with innisfree ssh NAME',
              },
            ),
          ),
        timeoutMs,
      );
      const onAbort = (): void => finish(abortReason(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      const onClientClose = (): void =>
        finish(
          new SshError(`the SSH connection to ${where} closed while "${shortCommand}" was running`, {
            hint: 'check the edge; then try again',
          }),
        );
      this.client.once('close', onClientClose);
      const collect = (into: Buffer[]) => (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_OUTPUT_BYTES) {
          finish(
            new SshError(`"${shortCommand}" on the edge printed more than ${MAX_OUTPUT_BYTES} bytes`, {
              hint: 'this is a bug in innisfree',
            }),
          );
          return;
        }
        into.push(chunk);
      };
      this.client.exec(command, (error, stream) => {
        if (error) {
          finish(
            new SshError(`could not run "${shortCommand}" on the edge at ${where}: ${error.message}`, {
              hint: 'try again',
            }),
          );
          return;
        }
        channel = stream;
        stream.on('data', collect(stdout));
        stream.stderr.on('data', (chunk: Buffer) => {
          collect(stderr)(chunk);
          stderrLines?.push(chunk);
        });
        stream.on('exit', (code: number | null, name?: string) => {
          if (typeof code === 'number') exitCode = code;
          if (name) exitSignal = name;
        });
        stream.on('close', () => finish());
        // Always close stdin: a command that reads it must see EOF rather than wait forever.
        stream.end(options.input ?? '');
      });
    });
  }

  close(): void {
    this.client.end();
  }
}

/** Connects, runs one command, disconnects. */
export const runSsh: SshRunner = async (target, command, options = {}) => {
  const connection = await connectSsh(target, options);
  try {
    return await connection.exec(command, options);
  } finally {
    connection.close();
  }
};

/** Resolves once host:port accepts a TCP connection; rejects with the socket error otherwise. */
export function probeTcp(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const done = (error?: Error): void => {
      socket.removeAllListeners();
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => done(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    socket.once('connect', () => done());
    socket.once('error', (error) => done(error));
    socket.connect(port, host);
  });
}

export interface WaitReadyOptions {
  /** Overall budget for both phases. */
  timeoutMs: number;
  clock: Clock;
  emit: Emit;
  signal: AbortSignal;
  /** First delay between attempts; doubles up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

export interface ReadyEdge {
  hostKeyFingerprint: string;
}

/**
 * Waits until the edge accepts TCP connections on its SSH port, then until the tunnel's key logs in, retrying with
 * exponential backoff within one overall timeout. A changed host key fails at once; it is never retried.
 */
export async function waitReady(target: SshTarget, options: WaitReadyOptions): Promise<ReadyEdge> {
  const { clock, emit, signal } = options;
  const where = endpointOf(target.host, target.port);
  const deadline = clock.now() + options.timeoutMs;
  const maxDelay = options.maxDelayMs ?? 5000;
  let delay = options.initialDelayMs ?? 250;
  let phase: 'tcp' | 'login' = 'tcp';
  let lastFailure: string;
  let attempt = 0;
  emit({ type: 'log', level: 'info', message: `waiting for SSH on ${where}` });
  for (;;) {
    if (signal.aborted) throw abortReason(signal);
    attempt++;
    const remaining = deadline - clock.now();
    try {
      if (phase === 'tcp') {
        await probeTcp(target.host, target.port, Math.max(200, Math.min(3000, remaining)));
        phase = 'login';
        emit({ type: 'log', level: 'info', message: `${where} accepts TCP connections; logging in as ${target.user}` });
      }
      const connection = await connectSsh(target, {
        readyTimeoutMs: Math.max(1000, Math.min(15_000, deadline - clock.now())),
        signal,
        emit,
      });
      const fingerprint = connection.hostKeyFingerprint;
      connection.close();
      emit({ type: 'log', level: 'info', message: `logged in to ${where} (host key ${fingerprint})` });
      return { hostKeyFingerprint: fingerprint };
    } catch (error) {
      if (signal.aborted) throw abortReason(signal);
      if (error instanceof SshConnectError) {
        if (error.reason === 'hostKey') throw error;
        if (error.reason === 'refused' || error.reason === 'unreachable') phase = 'tcp';
        lastFailure = error.message;
      } else if (error instanceof SshError) {
        throw error;
      } else {
        const code = (error as NodeJS.ErrnoException).code;
        lastFailure = code === 'ECONNREFUSED' ? 'connection refused' : (code ?? (error as Error).message);
      }
    }
    const left = deadline - clock.now();
    if (left <= 0) {
      throw new SshError(
        `the edge at ${where} did not accept an SSH login within ${Math.round(options.timeoutMs / 1000)} s ` +
          `(last error: ${lastFailure})`,
        {
          hint:
            `check that the edge is running (innisfree status NAME) and that TCP port ${target.port} is open ` +
            `between here and ${target.host}; then run the command again`,
        },
      );
    }
    const wait = Math.min(delay, left);
    emit({
      type: 'log',
      level: 'debug',
      message: `SSH attempt ${attempt} to ${where} failed (${lastFailure}); retrying in ${(wait / 1000).toFixed(1)} s`,
    });
    await clock.sleep(wait, signal).catch(() => {
      throw abortReason(signal);
    });
    delay = Math.min(maxDelay, delay * 2);
  }
}

/** The SSH target of a tunnel's edge: root, the tunnel's key and its pinned known_hosts. */
export function sshTargetFor(
  paths: Pick<TunnelPaths, 'sshPrivate' | 'knownHosts'>,
  host: string,
  port: number,
): SshTarget {
  return { host, port, user: 'root', privateKeyPath: paths.sshPrivate, knownHostsPath: paths.knownHosts };
}

/**
 * The OpenSSH client options that hold the system ssh (`innisfree ssh`, deploy-rs) to what innisfree pinned: only
 * the tunnel's key, only its known_hosts, strict host key checking. ssh splits -o values on whitespace unless
 * quoted (UserKnownHostsFile takes a list), so a known_hosts path with a space is quoted.
 */
export function pinnedSshClientOptions(target: Pick<SshTarget, 'privateKeyPath' | 'knownHostsPath'>): string[] {
  return [
    '-i',
    target.privateKeyPath,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${quoteSshOptionValue(target.knownHostsPath)}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
  ];
}

function quoteSshOptionValue(value: string): string {
  return /\s/.test(value) ? `"${value.replace(/"/g, '\\"')}"` : value;
}

/**
 * A path that goes into an ssh option a wrapper passes on (deploy-rs splits --ssh-opts on single spaces with no
 * quoting; nixos-anywhere's --ssh-option likewise): one with whitespace cannot be passed, so it is refused.
 * `which` says who cannot carry it, for the message.
 */
export function refuseWhitespaceInSshPath(label: string, path: string, which: string): void {
  if (/\s/.test(path)) {
    throw new UsageError(`the ${label} path "${path}" contains whitespace, which ${which}`, {
      hint:
        'move the innisfree state to a path without spaces (set INNISFREE_STATE_DIR or XDG_STATE_HOME) ' +
        'and run again',
    });
  }
}
