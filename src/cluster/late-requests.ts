/**
 * Whether a request arrives after its sender gave up on it, judged by the receiver alone (pure; no
 * clock of its own: every time is passed in).
 *
 * Why: a request a partition held in the sender's kernel (TCP retransmits it) can be read long after
 * the sender's timeout, when what it carries is no longer true: the sender took the failure, the
 * cluster moved on (a session destroyed, its tombstones forgotten), and applying it then brings back
 * the past. A request whose sender has given up has no answer anyone waits for and an outcome its
 * sender already counts as "maybe not applied", so refusing it is always allowed.
 *
 * How: each request carries its sender's monotonic send time and the milliseconds it will still wait.
 * The two processes' monotonic clocks have unrelated origins, so the receiver learns the offset from
 * the requests themselves: `received − sent` is the offset plus that request's delay, and its minimum
 * over recent requests is the offset plus the smallest delay. The sender's clock now is estimated as
 * `received − that minimum`, never ahead of the truth (the smallest delay is at least zero) except by
 * the clocks' rate difference since the minimum was seen, which `MAX_RATE_ERROR` allows for.
 */

/** Rate difference of two monotonic clocks allowed for (NTP slews at most 0.05 %). */
export const MAX_RATE_ERROR = 0.01;
/** The minimum is kept over two windows of this length, so a rate difference cannot build up. */
export const WINDOW_MS = 10_000;

/** The message of a late request's refusal (`ERR_REQUEST_LATE`), the same from every receiver. */
export function lateRequestMessage(type: string, senderRoute: string, lateMs: number): string {
  return `"${type}" from ${senderRoute} arrived ${Math.round(lateMs)} ms after its sender stopped waiting; not run`;
}

/** The offset estimate of one connection direction (one per incoming connection). */
export class SenderClock {
  #min = Infinity;
  #minAt = 0;
  #prevMin = Infinity;
  #prevMinAt = 0;
  #windowStart = -Infinity;

  /**
   * How many ms after its sender's deadline a request sent at `sentAt` (sender's clock) with `leftMs`
   * to wait arrives at `receivedAt` (this member's clock); zero or less when it may still be awaited.
   * Judged on the requests seen before it; then it counts as a sample itself.
   */
  arrive(sentAt: number, leftMs: number, receivedAt: number): number {
    const late = this.lateBy(sentAt, leftMs, receivedAt);
    this.#observe(receivedAt - sentAt, receivedAt);
    return late;
  }

  /** As `arrive`, without counting the request as a sample. */
  lateBy(sentAt: number, leftMs: number, receivedAt: number): number {
    const [min, at] = this.#prevMin < this.#min ? [this.#prevMin, this.#prevMinAt] : [this.#min, this.#minAt];
    if (min === Infinity) return 0; // the first request of a connection sets the offset
    const senderNow = receivedAt - min;
    const allowance = Math.max(0, receivedAt - at) * MAX_RATE_ERROR;
    return senderNow - (sentAt + leftMs) - allowance;
  }

  #observe(skew: number, at: number): void {
    // Windows turn only on samples: across a partition (none arrive) the estimate before it stays.
    if (at - this.#windowStart >= WINDOW_MS) {
      this.#prevMin = this.#min;
      this.#prevMinAt = this.#minAt;
      this.#min = Infinity;
      this.#windowStart = at;
    }
    if (skew < this.#min) {
      this.#min = skew;
      this.#minAt = at;
    }
  }
}
