// How long and how often the adapter waits. Defaults follow DigitalOcean's guidance (poll no faster than every few
// seconds; a droplet is usually active within a minute or two); tests pass a fake clock rather than other numbers.
export interface Timing {
  /** Droplet and action polls: first wait, growth per poll, ceiling (2 s rising to 5 s). */
  pollFirstMs: number;
  pollStepMs: number;
  pollMaxMs: number;
  /** A new droplet must be active with its addresses within this. */
  activeTimeoutMs: number;
  /** Right after a create, GET may 404 for a while; after this long a 404 means the droplet is gone. */
  notFoundGraceMs: number;
  /** DELETE is asynchronous: wait until GET answers 404. */
  deleteTimeoutMs: number;
  /** Droplet and reserved-IP actions. */
  actionTimeoutMs: number;
  /** After an ambiguous create failure, look by tag after each of these waits before posting again. */
  reconcileDelaysMs: number[];
  imagePollMs: number;
  imageTimeoutMs: number;
}

export const DEFAULT_TIMING: Timing = {
  pollFirstMs: 2000,
  pollStepMs: 1000,
  pollMaxMs: 5000,
  activeTimeoutMs: 10 * 60_000,
  notFoundGraceMs: 2 * 60_000,
  deleteTimeoutMs: 2 * 60_000,
  actionTimeoutMs: 5 * 60_000,
  reconcileDelaysMs: [3000, 10_000],
  imagePollMs: 15_000,
  imageTimeoutMs: 60 * 60_000,
};

export function pollDelay(timing: Timing, poll: number): number {
  return Math.min(timing.pollMaxMs, timing.pollFirstMs + poll * timing.pollStepMs);
}
