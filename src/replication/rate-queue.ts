/**
 * A bounded-rate work queue: re-protection and rebalancing copy many sessions after a membership
 * change, and must not starve the requests the member is serving meanwhile.
 */
import { systemClock, type Clock } from './clock.js';

export class RateQueue<T> {
  readonly #pending = new Map<string, T>();
  readonly #perSecond: number;
  readonly #concurrency: number;
  readonly #work: (item: T) => Promise<void>;
  #running = 0;
  #timer: unknown;
  readonly #clock: Clock;
  #windowStart = -Infinity;
  #inWindow = 0;
  #idle: (() => void)[] = [];
  #stopped = false;

  constructor(options: { perSecond: number; concurrency: number; work: (item: T) => Promise<void>; clock?: Clock }) {
    this.#clock = options.clock ?? systemClock;
    this.#perSecond = options.perSecond;
    this.#concurrency = options.concurrency;
    this.#work = options.work;
  }

  /** Queues an item; a newer item with the same key replaces a waiting one. */
  push(key: string, item: T): void {
    if (this.#stopped) return;
    this.#pending.set(key, item);
    this.#pump();
  }

  get size(): number {
    return this.#pending.size + this.#running;
  }

  /** Resolves when nothing is queued or running. */
  async drained(): Promise<void> {
    if (this.size === 0) return;
    await new Promise<void>((resolve) => this.#idle.push(resolve));
  }


  stop(): void {
    this.#stopped = true;
    this.#pending.clear();
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#settle();
  }

  #settle(): void {
    if (this.size !== 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }

  #pump(): void {
    if (this.#timer !== undefined) return;
    while (this.#running < this.#concurrency && this.#pending.size > 0) {
      const now = this.#clock.monotonic();
      if (now - this.#windowStart >= 1000) {
        this.#windowStart = now;
        this.#inWindow = 0;
      }
      if (this.#inWindow >= this.#perSecond) {
        this.#timer = this.#clock.setTimeout(() => {
          this.#timer = undefined;
          this.#pump();
        }, 1000 - (now - this.#windowStart));
        return;
      }
      const [key, item] = this.#pending.entries().next().value as [string, T];
      this.#pending.delete(key);
      this.#inWindow++;
      this.#running++;
      this.#work(item)
        .catch(() => undefined) // the work function logs its own failures
        .finally(() => {
          this.#running--;
          this.#pump();
          this.#settle();
        });
    }
    this.#settle();
  }
}
