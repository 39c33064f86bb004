// Reload requests for a running command (SIGHUP, which `innisfree reload` sends): the CLI records them, the
// running tunnel takes them one at a time. Requests that arrive while one is being applied fold into one more
// reload afterwards, so a burst of SIGHUPs never queues a reload per signal.
export class ReloadRequests {
  private pending = false;
  private wake: (() => void) | undefined;

  /** Whether a reload is asked for; `next()` resolves at once then. */
  get isPending(): boolean {
    return this.pending;
  }

  request(): void {
    this.pending = true;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Resolves when a reload is asked for (at once if one is pending), and takes that request. */
  async next(): Promise<void> {
    if (!this.pending) await new Promise<void>((resolve) => (this.wake = resolve));
    this.pending = false;
  }
}
