/**
 * One async critical section per key: writes, takeovers and hand-offs of one session run one at a
 * time on a member, in arrival order, while different sessions proceed in parallel. The line is
 * bounded: past `maxWaiting` callers, or after the caller's `waitMs`, a caller is refused (`busy`)
 * rather than queued without end behind a takeover that waits on the network.
 */
import { systemClock, type Clock } from './clock.js';

export interface KeyLockOptions {
  /** Callers that may wait for one key at once; more are refused at once. */
  maxWaiting: number;
  /** The error a refused caller gets (for a session: 503, retry). */
  busy: (key: string, why: string) => Error;
  clock: Clock;
}

interface Line {
  tail: Promise<void>;
  waiting: number;
}

export class KeyLock {
  readonly #lines = new Map<string, Line>();
  readonly #o: KeyLockOptions;

  constructor(options: Partial<KeyLockOptions> = {}) {
    this.#o = { maxWaiting: 256, busy: (key, why) => new Error(`key ${key}: ${why}`), clock: systemClock, ...options };
  }

  /**
   * Runs `fn` after every earlier holder of `key` has finished. With `waitMs`, gives up (rejects with
   * `busy`, and `fn` never runs) when the key is not free by then; its turn then passes at once.
   */
  async run<T>(key: string, fn: () => Promise<T>, waitMs?: number): Promise<T> {
    let line = this.#lines.get(key);
    if (line !== undefined && line.waiting >= this.#o.maxWaiting) {
      throw this.#o.busy(key, `${line.waiting} callers already wait for it`);
    }
    const previous = line?.tail ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    if (line === undefined) this.#lines.set(key, (line = { tail, waiting: 0 }));
    else line.tail = tail;
    const ours = line;
    ours.waiting++;
    let waiting = true;
    try {
      if (waitMs === undefined) await previous;
      else await this.#within(previous, waitMs, key);
      waiting = false;
      ours.waiting--;
      return await fn();
    } finally {
      release();
      if (!waiting) {
        if (ours.tail === tail) this.#lines.delete(key);
      } else {
        // Gave up while earlier callers still hold the key: the line ends only once they are done.
        ours.waiting--;
        void tail.then(() => {
          if (this.#lines.get(key) === ours && ours.tail === tail) this.#lines.delete(key);
        });
      }
    }
  }

  /** Resolves when `previous` does, or rejects with `busy` after `waitMs`. */
  #within(previous: Promise<void>, waitMs: number, key: string): Promise<void> {
    const clock = this.#o.clock;
    return new Promise<void>((resolve, reject) => {
      const timer = clock.setTimeout(() => reject(this.#o.busy(key, `not free within ${waitMs} ms`)), waitMs);
      void previous.then(() => {
        clock.clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Whether anyone holds or waits for `key`. */
  busy(key: string): boolean {
    return this.#lines.has(key);
  }
}
