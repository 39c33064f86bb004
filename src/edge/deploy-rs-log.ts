// Reading deploy-rs's log. deploy-rs exits 1 for every failure, so whether the edge rolled back (and the previous
// configuration still serves) can only be told from its log lines. Pure: lines in, outcome out.
import type { LogEvent } from '../lib/events.js';
import { stripAnsi } from '../lib/lines.js';

export interface DeployLogLine {
  /** deploy (local side), activate / wait (remote side, relayed over ssh), revoke. */
  component: string;
  level: 'ERROR' | 'WARN' | 'INFO' | 'DEBUG' | 'TRACE';
  message: string;
}

// "🚀 ❌ [deploy] [ERROR] message", "⭐ ℹ️ [activate] [INFO] message"; colours already stripped.
const LOG_LINE = /^\S+\s+\S+\s+\[(deploy|activate|wait|revoke)\]\s+\[(ERROR|WARN|INFO|DEBUG|TRACE)\]\s?(.*)$/;

export function parseDeployLogLine(raw: string): DeployLogLine | undefined {
  const match = LOG_LINE.exec(stripAnsi(raw).trim());
  if (!match) return undefined;
  return { component: match[1]!, level: match[2] as DeployLogLine['level'], message: match[3]! };
}

/** A streamed deploy-rs line as a progress event: its own levels where it has them, nix's chatter as debug. */
export function deployLogEvent(raw: string, source = 'deploy-rs'): LogEvent | undefined {
  const line = stripAnsi(raw).trimEnd();
  if (line.trim() === '') return undefined;
  const parsed = parseDeployLogLine(line);
  if (parsed) {
    const level =
      parsed.level === 'ERROR' || parsed.level === 'WARN' ? 'warn' : parsed.level === 'INFO' ? 'info' : 'debug';
    return { type: 'log', level, message: `[${parsed.component}] ${parsed.message}`, source };
  }
  return { type: 'log', level: /^\s*error\b/i.test(line) ? 'warn' : 'debug', message: line, source };
}

/** Lines that only appear when the edge went back to its previous generation (or never left it). */
const ROLLBACK_MARKERS = [
  /rolled back to previous generation/,
  /the server should roll back/,
  /De-activating due to error/,
  /Attempting to re-activate the last generation/,
  /Timeout elapsed for confirmation/,
];

/**
 * Errors that carry no cause: with --auto-rollback deploy-rs prints the "rolled back" summary after every activation
 * failure, and a build failure's own line names the node twice ("Failed to build profile on node edge: edge", at
 * the pinned rev), so the cause is in another line (nix's `error:` line for a build).
 */
const GENERIC_ERRORS = [
  /^Deployment to node \S+ failed, rolled back to previous generation$/,
  /^Failed to (?:build|push) profile (?:on|to) node (\S+): \1$/,
];

/** activate-rs could not go back (src/bin/activate.rs, DeactivateError): neither generation is known to serve. */
const DEACTIVATION_FAILED = /^There was an error de-activating after an error was encountered: (.*)$/;

export type DeployOutcome =
  | { kind: 'success' }
  | { kind: 'rolledBack'; reason: string }
  | { kind: 'rollbackFailed'; reason: string }
  | { kind: 'failed'; reason: string };

export function classifyDeployOutcome(lines: readonly string[], exitCode: number): DeployOutcome {
  if (exitCode === 0) return { kind: 'success' };
  const clean = lines.map((l) => stripAnsi(l).trim()).filter((l) => l !== '');
  const deactivation = clean
    .map(parseDeployLogLine)
    .find((l) => l?.level === 'ERROR' && DEACTIVATION_FAILED.test(l.message));
  if (deactivation) return { kind: 'rollbackFailed', reason: DEACTIVATION_FAILED.exec(deactivation.message)![1]! };
  const rolledBack = clean.some((l) => ROLLBACK_MARKERS.some((m) => m.test(l)));
  return { kind: rolledBack ? 'rolledBack' : 'failed', reason: reasonOf(clean, exitCode) };
}

/** The most specific error: the first deploy-rs ERROR line that is not the generic summary, else nix's error. */
function reasonOf(lines: readonly string[], exitCode: number): string {
  const errors = lines
    .map(parseDeployLogLine)
    .filter((l): l is DeployLogLine => l !== undefined && l.level === 'ERROR')
    .map((l) => l.message.trim());
  const specific = errors.find((m) => !GENERIC_ERRORS.some((g) => g.test(m)));
  if (specific) return specific;
  const nixError = lines.find((l) => /^error:/.test(l));
  if (nixError) return nixError;
  if (errors[0]) return errors[0];
  return lines.length > 0 ? lines[lines.length - 1]! : `deploy exited with ${exitCode} and printed nothing`;
}
