/**
 * The store calls under way on a member (acquire, write, remove). A graceful stop sets `stopping` (new
 * calls get 503), then waits for the counted ones: a write in flight at SIGTERM is answered as it ends,
 * never acknowledged unreplicated.
 */
import type { Clock } from './clock.js';

export class InFlight {
  #count = 0;
  #drained: (() => void)[] = [];
  readonly #clock: Clock;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Runs `fn`, counted while it runs. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.#count++;
    try {
      return await fn();
    } finally {
      if (--this.#count === 0) for (const resolve of this.#drained.splice(0)) resolve();
    }
  }

  /** Resolves when no counted call runs, or after `maxMs` (a stop must not hang on a stuck call). */
  drained(maxMs: number): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#drained.push(resolve);
      this.#clock.setTimeout(resolve, maxMs);
    });
  }
}
