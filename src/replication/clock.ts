/**
 * Time as the replication layer sees it. Every timer and every reading of the clock in
 * `src/replication` goes through a `Clock`, so the deterministic simulator (`test/sim/`) can run the
 * real protocol on simulated time, as undici swaps `lib/util/timers.js` in its tests.
 */

/** An opaque timer handle. */
export type TimerHandle = unknown;

export interface Clock {
  /**
   * Wall time, milliseconds since the epoch: only for what is wall time by nature (session expiry,
   * koa-session's `_expire`, and timestamps other members read). NTP may step it either way.
   */
  now(): number;
  /**
   * Milliseconds on a clock that never steps (an arbitrary origin): every interval, grace and
   * deadline of the protocol is measured on it, so an NTP step cannot shorten or stretch one.
   */
  monotonic(): number;
  /** Runs `fn` once after `ms`; the timer never holds the process open. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Runs `fn` every `ms`; the timer never holds the process open. */
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
}

/** The real clock: `Date.now()`, `performance.now()` and Node's timers, `unref()`ed (one policy for the layer). */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref();
    return t;
  },
  clearInterval(handle) {
    clearInterval(handle as NodeJS.Timeout);
  },
};
