/**
 * A budget, per source (an IPv4 address, or an IPv6 /64: one host owns a whole /64), of lookups that
 * found nothing. An id no member holds costs a question to every member (the ids found nowhere are
 * remembered for a few seconds, but random ids are new each time): with unsigned cookies, that is an
 * amplification anyone can use. A source that spent its budget is asked about only where the ring puts
 * the session (one or two members): found there, it goes on as usual (a balancer moving many users
 * after a member died, all from one address, is not refused); else it gets 503 until the budget
 * refills. Lookups that find the session cost nothing.
 */
import { sourceKey } from '../cluster/admission.js';

export interface LookupBudgetOptions {
  /** Misses a source may spend at once. */
  burst: number;
  /** Misses a source regains per second. */
  perSecond: number;
  /** Sources tracked at most (the oldest are forgotten first). */
  maxSources?: number;
  now?: () => number;
}

export class LookupBudget {
  readonly #o: Required<LookupBudgetOptions>;
  /** Tokens left and when they were counted, per source; insertion order is age. */
  readonly #sources = new Map<string, { tokens: number; at: number }>();

  constructor(options: LookupBudgetOptions) {
    this.#o = { maxSources: 10_000, now: () => Date.now(), ...options };
  }

  #refilled(source: string): { tokens: number; at: number } {
    const now = this.#o.now();
    const s = this.#sources.get(source) ?? { tokens: this.#o.burst, at: now };
    s.tokens = Math.min(this.#o.burst, s.tokens + ((now - s.at) / 1000) * this.#o.perSecond);
    s.at = now;
    return s;
  }

  /** Whether `address` may start a lookup that may miss. */
  allows(address: string): boolean {
    return this.#refilled(sourceKey(address)).tokens >= 1;
  }

  /** A lookup from `address` found nothing. */
  missed(address: string): void {
    const source = sourceKey(address);
    const s = this.#refilled(source);
    s.tokens = Math.max(0, s.tokens - 1);
    this.#sources.delete(source);
    this.#sources.set(source, s);
    if (this.#sources.size > this.#o.maxSources) this.#sources.delete(this.#sources.keys().next().value as string);
  }
}
