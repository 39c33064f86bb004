// A clock whose sleeps advance virtual time at once (one macrotask later), so long waits run instantly in tests.
import type { Clock } from '../../src/lib/context.js';

export class FakeClock implements Clock {
  constructor(public time = Date.parse('2026-11-22T00:00:00Z')) {}

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      setImmediate(() => {
        if (signal?.aborted) return reject(signal.reason);
        this.time += ms;
        resolve();
      });
    });
  }
}
