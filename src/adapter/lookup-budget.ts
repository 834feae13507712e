/**
 * A budget, per source address, of lookups that found nothing. An id no member holds costs a question
 * to every member (the ids found nowhere are remembered for a few seconds, but random ids are new each
 * time): with unsigned cookies, that is an amplification anyone can use. A source that spent its budget
 * gets 503 for ids this member does not hold, until the budget refills. Lookups that find the session
 * (a balancer moving many users after a member died, all from one address) cost nothing.
 */
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

  /** Whether `source` may start a lookup that may miss. */
  allows(source: string): boolean {
    return this.#refilled(source).tokens >= 1;
  }

  /** A lookup from `source` found nothing. */
  missed(source: string): void {
    const s = this.#refilled(source);
    s.tokens = Math.max(0, s.tokens - 1);
    this.#sources.delete(source);
    this.#sources.set(source, s);
    if (this.#sources.size > this.#o.maxSources) this.#sources.delete(this.#sources.keys().next().value as string);
  }
}
