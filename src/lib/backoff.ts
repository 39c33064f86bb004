// Backoff for retried requests and polls: exponential growth with "equal jitter" (half fixed, half random), so
// several clients that failed together do not retry in lockstep, yet no wait collapses to zero.

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  /** Defaults to Math.random; tests pass a fixed source. */
  random?: () => number;
}

/** The wait before retry number `attempt` (0 for the first retry). */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const ceiling = Math.min(options.maxMs, options.minMs * 2 ** Math.max(0, attempt));
  const random = options.random ?? Math.random;
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
