// Typed errors. Every failure the user can see is one of these: a message (what failed and why), a hint (what to
// do) and an exit code that tells scripts which class of failure happened. Only src/cli.ts turns them into an exit.

export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  provider: 3,
  ssh: 4,
  deploy: 5,
  rolledBack: 6,
  dataPlane: 7,
  busy: 8,
  environment: 9,
  /** innisfree reload: no `up` of that tunnel runs here. */
  notRunning: 10,
  interrupted: 130,
} as const;

export type ExitCodeName = keyof typeof ExitCode;

export interface ErrorDetails {
  hint?: string;
  cause?: unknown;
}

export class InnisfreeError extends Error {
  readonly kind: ExitCodeName;
  readonly hint: string | undefined;

  constructor(kind: ExitCodeName, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.kind = kind;
    this.hint = details.hint;
  }

  get exitCode(): number {
    return ExitCode[this.kind];
  }
}

/** Bad input: flags, tunnel files, port specs, names. */
export class UsageError extends InnisfreeError {
  constructor(message: string, details?: ErrorDetails) {
    super('usage', message, details);
  }
}

/** The cloud provider (or the local provider's machinery) refused or failed. */
export class ProviderError extends InnisfreeError {
  readonly status: number | undefined;
  constructor(message: string, details: ErrorDetails & { status?: number } = {}) {
    super('provider', message, details);
    this.status = details.status;
  }
}

export class SshError extends InnisfreeError {
  constructor(message: string, details?: ErrorDetails) {
    super('ssh', message, details);
  }
}

export class DeployError extends InnisfreeError {
  constructor(message: string, details?: ErrorDetails) {
    super('deploy', message, details);
  }
}

/** deploy-rs (or the local deployer) rolled the edge back: the previous configuration is still serving. */
export class RolledBackError extends InnisfreeError {
  constructor(message: string, details?: ErrorDetails) {
    super('rolledBack', message, details);
  }
}

/** WireGuard link or forwarder failure on the home side. */
export class DataPlaneError extends InnisfreeError {
  constructor(message: string, details?: ErrorDetails) {
    super('dataPlane', message, details);
  }
}

/** Another live process holds what we need (the tunnel's lock). */
export class BusyError extends InnisfreeError {
  constructor(message: string, details?: ErrorDetails) {
    super('busy', message, details);
  }
}

/** This machine lacks a tool, a kernel feature or a privilege. */
export class EnvironmentError extends InnisfreeError {
  constructor(message: string, details?: ErrorDetails) {
    super('environment', message, details);
  }
}

/** What a command acts on is not running (innisfree reload without a running up). */
export class NotRunningError extends InnisfreeError {
  constructor(message: string, details?: ErrorDetails) {
    super('notRunning', message, details);
  }
}

export class InterruptedError extends InnisfreeError {
  constructor(message = 'interrupted', details?: ErrorDetails) {
    super('interrupted', message, details);
  }
}

export function isInnisfreeError(value: unknown): value is InnisfreeError {
  return value instanceof InnisfreeError;
}

/** One line for the terminal or the journal: "what failed: why. Hint: what to do." */
export function formatError(error: unknown): string {
  if (isInnisfreeError(error)) {
    const message = oneLine(error.message);
    return error.hint ? `${message} (hint: ${oneLine(error.hint)})` : message;
  }
  const message = error instanceof Error ? error.message : String(error);
  return (
    `internal error: ${oneLine(message)} (hint: this is a bug in innisfree; please report it with the command ` +
    `you ran)`
  );
}

export function exitCodeOf(error: unknown): number {
  return isInnisfreeError(error) ? error.exitCode : ExitCode.internal;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ').trim();
}
