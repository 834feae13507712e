/**
 * Rate limit for warnings a peer (or an attacker) can trigger at will: a bad frame, a foreign
 * heartbeat, a refused connection. Every event is still counted in metrics; the log gets the
 * first one per key and interval, with how many were suppressed since.
 */
export class LogLimiter {
  readonly #intervalMs: number;
  readonly #maxKeys: number;
  readonly #keys = new Map<string, { last: number; suppressed: number }>();

  /** @param intervalMs at most one log line per key in this time. */
  constructor(intervalMs: number, maxKeys = 1000) {
    this.#intervalMs = intervalMs;
    this.#maxKeys = maxKeys;
  }

  /**
   * Whether to log now for `key`; if so, returns how many were suppressed before it (0 or more),
   * otherwise `false`.
   */
  allow(key: string, now = performance.now()): number | false {
    const e = this.#keys.get(key);
    if (e !== undefined && now - e.last < this.#intervalMs) {
      e.suppressed += 1;
      return false;
    }
    // Keys come from the network (addresses): bound the memory they can take.
    if (e === undefined && this.#keys.size >= this.#maxKeys) this.#keys.clear();
    const suppressed = e?.suppressed ?? 0;
    this.#keys.set(key, { last: now, suppressed: 0 });
    return suppressed;
  }
}
