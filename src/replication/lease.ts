/**
 * Leases: a member serves only while a strict majority of the cluster answered it a moment ago, and a
 * member that answered it promises, for as long, not to let anyone take its sessions. So a member cut
 * off from the majority stops serving within `leaseMs` of its last answers, whatever the shape of the
 * cut (a reset, a silent drop, one way only, a pause), and the others take its sessions over only once
 * every promise they made has run out, without trusting a reset or a timeout to mean death.
 *
 *   X sends at s ──────────────▶ M receives at r: promises X until r + leaseMs + margin
 *   X hears M's answer: X counts M until s + leaseMs   (s ≤ r, so X stops before M's promise ends)
 *
 * Pure: times are monotonic milliseconds given by the caller, one clock per member. The margin covers
 * the two members' clocks running at slightly different rates (it is a quarter of the lease).
 */

/** Lease bookkeeping of one member. */
export class Leases {
  readonly #leaseMs: number;
  readonly #margin: number;
  /** Per route: the send time of the latest request that route answered (its acknowledgement). */
  readonly #acked = new Map<string, number>();
  /** Per route: when the last request to it left (lease pings go only where nothing went lately). */
  readonly #sent = new Map<string, number>();
  /** Per route: until when this member promised not to release it (it heard from it then). */
  readonly #promised = new Map<string, number>();
  /** Per route: when it was removed for failure; answers to requests sent before then never count. */
  readonly #withdrawn = new Map<string, number>();

  constructor(leaseMs: number) {
    this.#leaseMs = leaseMs;
    this.#margin = Math.ceil(leaseMs / 4) + 50;
  }

  get leaseMs(): number {
    return this.#leaseMs;
  }

  /** How long a promise outlasts the lease it backs: for clocks that run at slightly different rates. */
  get margin(): number {
    return this.#margin;
  }

  /** A request to `route` leaves at `at`. */
  sent(route: string, at: number): void {
    if ((this.#sent.get(route) ?? -Infinity) < at) this.#sent.set(route, at);
  }

  /** `route` answered a request that left at `sentAt` (with a reply, or with an error it raised). */
  acked(route: string, sentAt: number): void {
    if (sentAt <= (this.#withdrawn.get(route) ?? -Infinity)) return;
    if ((this.#acked.get(route) ?? -Infinity) < sentAt) this.#acked.set(route, sentAt);
  }

  /**
   * `route` was removed for failure at `at`: its answers stop counting at once, late ones included. A
   * member cut off behind firewalls that reset removes the others within milliseconds; answers they
   * gave just before still covered a lease, in whose last moments it acknowledged writes and created
   * sessions whose only copies were on its side (or on it alone), which the majority then never saw.
   */
  withdraw(route: string, at: number): void {
    this.#acked.delete(route);
    if ((this.#withdrawn.get(route) ?? -Infinity) < at) this.#withdrawn.set(route, at);
  }

  /** A request from `route` arrived at `at`: it may count our answer toward its lease. */
  heard(route: string, at: number): void {
    const until = at + this.#leaseMs + this.#margin;
    if ((this.#promised.get(route) ?? -Infinity) < until) this.#promised.set(route, until);
  }

  /**
   * Until when this member holds its lease with a cluster of `size`: the others' answers, each good for
   * a lease from when its request left, of which it needs `floor(size / 2)` (with itself, a strict
   * majority). Infinity when it needs none (a cluster of one).
   */
  coveredUntil(size: number): number {
    const need = Math.floor(size / 2);
    if (need <= 0) return Infinity;
    const ends = [...this.#acked.values()].map((at) => at + this.#leaseMs).sort((a, b) => b - a);
    return ends.length >= need ? ends[need - 1] : -Infinity;
  }

  /** The other members that answered within the lease, as of `now`. */
  fresh(now: number): string[] {
    const out: string[] = [];
    for (const [route, at] of this.#acked) if (now - at < this.#leaseMs) out.push(route);
    return out.sort();
  }

  /** Routes to ping now: nothing was sent to them for a third of the lease. */
  due(routes: readonly string[], now: number): string[] {
    const every = this.#leaseMs / 3;
    return routes.filter((r) => now - (this.#sent.get(r) ?? -Infinity) >= every);
  }

  /** Whether a promise to `route` is running at `now`: it may be serving on what we told it. */
  promised(route: string, now: number): boolean {
    return (this.#promised.get(route) ?? -Infinity) > now;
  }

  /** Routes with a running promise at `now`, and the milliseconds each still runs. */
  promises(now: number): { route: string; ms: number }[] {
    const out: { route: string; ms: number }[] = [];
    for (const [route, until] of this.#promised) {
      if (until > now) out.push({ route, ms: Math.ceil(until - now) });
      else this.#promised.delete(route);
    }
    return out;
  }

  /** Milliseconds the promise to `route` still runs at `now` (0 if none). */
  promisedFor(route: string, now: number): number {
    return Math.max(0, (this.#promised.get(route) ?? -Infinity) - now);
  }
}
