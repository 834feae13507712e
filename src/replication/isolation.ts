/**
 * Whether this member may be cut off from the cluster, and so must not serve or take sessions over.
 * Pure: the clock is injected, membership events are fed in (as the failure detector's rule is kept
 * apart from its timers).
 *
 * The rule is a majority of seats. A seat is a route: alive, or removed for silence (a pause or a
 * partition: it may be alive and serving on the other side). A member removed because its connection
 * was refused (the process is gone) or because it left gracefully frees its seat at once. A silent seat
 * is forgotten after `forgetAfter`. Only the side that holds a strict majority of seats serves; the
 * other answers 503, so the two sides of a partition never both acknowledge writes to one session.
 *
 *   seats:  alive ●●●  silent ○○      → 3 of 5: this side serves
 *           alive ●●   silent ○○○     → 2 of 5: this side waits (503)
 */
import type { Clock } from './clock.js';

export interface IsolationOptions {
  self: string;
  clock: Clock;
  /** Membership's drop time: how long a silent member goes unnoticed. */
  dropTime: number;
  /** A seat silent for this long no longer counts (a member that died without a refused connection). */
  forgetAfter: number;
  /** After start, how long discovery takes: until then, an unknown session may be on an unseen member. */
  discoveryMs: number;
}

type Seat = { state: 'alive' } | { state: 'silent'; since: number };

export class Isolation {
  readonly #o: IsolationOptions;
  readonly #seats = new Map<string, Seat>();
  /** Routes seen leave or die (refused) since this member started, and not back since. */
  readonly #gone = new Set<string>();
  readonly #startedAt: number;
  /** Until when this member treats its view as unsettled after its own process was paused. */
  #pausedUntil = 0;

  constructor(options: IsolationOptions) {
    this.#o = options;
    this.#startedAt = options.clock.now();
    this.#seats.set(options.self, { state: 'alive' });
  }

  memberAdded(route: string): void {
    this.#seats.set(route, { state: 'alive' });
    this.#gone.delete(route);
  }

  /** `refused`: the direct check's connection was refused, so the process is gone. */
  memberRemoved(route: string, reason: 'left' | 'failed', refused: boolean): void {
    if (reason === 'left' || refused) {
      this.#seats.delete(route);
      this.#gone.add(route);
    } else this.#seats.set(route, { state: 'silent', since: this.#o.clock.now() });
  }

  /**
   * Whether `owner` (not a live member) may still be serving: it went silent a moment ago, or this
   * member is still discovering the cluster and has not seen it leave or die.
   */
  mayServe(owner: string): boolean {
    return !this.ownerReleased(owner) || (!this.settled() && !this.#gone.has(owner));
  }

  #forgetOld(now: number): void {
    for (const [route, seat] of this.#seats) {
      if (seat.state === 'silent' && now - seat.since >= this.#o.forgetAfter) this.#seats.delete(route);
    }
  }

  /** Whether this member sees a strict majority of the seats it knows. */
  hasQuorum(): boolean {
    const now = this.#o.clock.now();
    this.#forgetOld(now);
    let alive = 0;
    for (const seat of this.#seats.values()) if (seat.state === 'alive') alive++;
    return alive * 2 > this.#seats.size;
  }

  /** Routes removed for silence and not yet forgotten: they may hold sessions nobody here can see. */
  silentRoutes(): string[] {
    this.#forgetOld(this.#o.clock.now());
    return [...this.#seats].filter(([, s]) => s.state === 'silent').map(([r]) => r);
  }

  /**
   * Whether the sessions of `owner` (not alive) may be taken from their copies. A member removed for
   * silence may still be writing on the other side of a partition until it notices it lost its
   * majority, which takes it about as long as it took us to remove it: we wait one more drop time.
   */
  ownerReleased(owner: string): boolean {
    const seat = this.#seats.get(owner);
    if (seat === undefined) return true;
    if (seat.state === 'alive') return false;
    return this.#o.clock.now() - seat.since >= this.#o.dropTime;
  }

  /**
   * Routes removed for silence less than a drop time ago. Until their grace is over this member may be
   * on the smaller side of a partition without knowing it yet: a write must not be acknowledged by a
   * copy holder chosen in their place.
   */
  recentlySilent(): string[] {
    return this.silentRoutes().filter((r) => !this.ownerReleased(r));
  }

  /** The process was paused for `ms` (measured by the caller): until the failure detector catches up, be careful. */
  paused(ms: number): void {
    if (ms > this.#o.dropTime / 2) this.#pausedUntil = this.#o.clock.now() + this.#o.dropTime;
  }

  /**
   * This member sees a majority again after it had lost it (a partition healed): the others may not
   * have seen it back yet, and may be taking its sessions over on their old view. Catch up first.
   */
  rejoined(): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, this.#o.clock.now() + this.#o.dropTime);
  }

  /**
   * Whether this process was paused, or cut off, a moment ago: the others may have evicted it and
   * moved its sessions on, and have not seen it back yet. It serves nothing until they have.
   */
  recovering(): boolean {
    return this.#o.clock.now() < this.#pausedUntil;
  }

  /**
   * Whether an unknown session may be answered "no session": discovery is over, no pause is being
   * digested, and no silent member may hold it.
   */
  settled(): boolean {
    const now = this.#o.clock.now();
    return now - this.#startedAt >= this.#o.discoveryMs && now >= this.#pausedUntil;
  }
}
