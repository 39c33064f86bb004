// What SIGINT/SIGTERM mean to a long-running command: the first asks for an orderly stop (abort, then teardown);
// a second one while that runs means "out now". One Ctrl-C can arrive twice within a few milliseconds (a terminal
// and a wrapper such as `timeout` or a shell both forwarding it), so the same signal inside a short window is one.

export const DUPLICATE_SIGNAL_WINDOW_MS = 50;

export interface SignalPolicy {
  /** The first signal: start the orderly stop. */
  stop(signal: NodeJS.Signals): void;
  /** A second, distinct signal during the stop: exit at once (the caller exits the process). */
  exitNow(signal: NodeJS.Signals): void;
  now?: () => number;
  windowMs?: number;
}

export function signalHandler(policy: SignalPolicy): (signal: NodeJS.Signals) => void {
  const now = policy.now ?? Date.now;
  const windowMs = policy.windowMs ?? DUPLICATE_SIGNAL_WINDOW_MS;
  let first: { name: NodeJS.Signals; at: number } | undefined;
  return (signal) => {
    if (first === undefined) {
      first = { name: signal, at: now() };
      policy.stop(signal);
      return;
    }
    if (first.name === signal && now() - first.at < windowMs) return;
    policy.exitNow(signal);
  };
}
