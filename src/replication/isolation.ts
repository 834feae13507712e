/**
 * Whether this member may be cut off from the cluster, and so must not serve or take sessions over.
 * Pure: the clock is injected, membership events are fed in (as the failure detector's rule is kept
 * apart from its timers). Every interval here is on the monotonic clock: an NTP step cannot shorten
 * a grace or wake a pause watch.
 *
 * The rule is a strict majority of the cluster's size. With `expectedMembers` that size is given, so
 * no partition, however long, lets two sides both serve, and a member started while it cannot reach
 * the others serves nothing. Without it the size is the seats this member has seen: a seat is a route,
 * alive or removed for failure (a pause, a partition, a reset or a kill look alike from here: a firewall
 * that answers with resets is not a dead process). Only a graceful leave frees a seat at once; a seat
 * silent for `forgetAfter` is forgotten, which is the one assumption left without `expectedMembers`.
 *
 *   seats:  alive ●●●  silent ○○      → 3 of 5: this side serves
 *           alive ●●   silent ○○○     → 2 of 5: this side waits (503)
 *
 * "Sees a majority" is a lease (`lease.ts`): a strict majority answered this member within `leaseMs`.
 * A member removed for failure may still be serving on the other side of a partition until its lease
 * runs out: its sessions are released only once this member's promise to it has run out (and, where a
 * takeover asks, every other member's: `Survey.promised`), unless it comes back.
 */
import type { Clock } from './clock.js';
import { Leases } from './lease.js';

export interface IsolationOptions {
  self: string;
  clock: Clock;
  /** Membership's drop time: how long a silent member goes unnoticed. */
  dropTime: number;
  /** How long an answer from another member counts toward this member's majority (`lease.ts`). */
  leaseMs: number;
  /** Without `expectedMembers`: a seat silent for this long no longer counts. */
  forgetAfter: number;
  /** After start, how long discovery takes: until then, an unknown session may be on an unseen member. */
  discoveryMs: number;
  /** The cluster's size, when given: the majority is of it, whatever this member has seen. */
  expectedMembers?: number;
}

type Seat = { state: 'alive' } | { state: 'silent'; since: number };

export class Isolation {
  readonly #o: IsolationOptions;
  readonly #seats = new Map<string, Seat>();
  /** Routes seen leave since this member started, and not back since. */
  readonly #gone = new Set<string>();
  /** When another member was first seen alive since this member started (monotonic), if it was. */
  #metAt: number | undefined;
  readonly #startedAt: number;
  /** Until when this member treats its view as unsettled after its own process was paused. */
  #pausedUntil = 0;
  readonly #leases: Leases;
  /** Whether this member held its lease when last looked at, and how often it lost it since start. */
  #held = false;
  /** The cluster's size when the lease was last held. */
  #heldSize = 1;
  #lapses = 0;
  /** Lapses already followed by catching up (`rejoined`). */
  #caughtUp = 0;

  constructor(options: IsolationOptions) {
    this.#o = options;
    this.#startedAt = options.clock.monotonic();
    this.#seats.set(options.self, { state: 'alive' });
    this.#leases = new Leases(options.leaseMs);
  }

  /** How long another member's answer counts toward this member's lease. */
  get leaseMs(): number {
    return this.#leases.leaseMs;
  }

  /** A request to `route` leaves now. */
  sent(route: string): void {
    this.#leases.sent(route, this.#o.clock.monotonic());
  }

  /** `route` answered a request that left at `sentAt` (monotonic). */
  acked(route: string, sentAt: number): void {
    this.hasQuorum(); // notes a lapse that this answer ends
    this.#leases.acked(route, sentAt);
    this.hasQuorum();
  }

  /** A request from `route` arrives now: our answer may count toward its lease. */
  heard(route: string): void {
    this.#leases.heard(route, this.#o.clock.monotonic());
  }

  /** Of `routes`, those to send a lease ping now. */
  leaseDue(routes: readonly string[]): string[] {
    return this.#leases.due(routes, this.#o.clock.monotonic());
  }

  /** Members this member has a running promise to (they may be serving on its answers), and for how long. */
  promises(): { route: string; ms: number }[] {
    return this.#leases.promises(this.#o.clock.monotonic());
  }

  /**
   * Milliseconds until `ownerReleased(owner)` may turn true as far as time goes here (this member's
   * promise, its own first lease after a start): 0 when it is released; Infinity while the owner is
   * alive, or this member is still discovering the cluster.
   */
  releaseIn(owner: string): number {
    if (this.ownerReleased(owner) && (this.settled() || this.#gone.has(owner))) return 0;
    const seat = this.#seats.get(owner);
    if (seat?.state === 'alive') return Infinity;
    const now = this.#o.clock.monotonic();
    const blackout = this.#startedAt + this.#leases.leaseMs + this.#leases.margin - now;
    return Math.max(0, blackout, this.#leases.promisedFor(owner, now), this.#settledIn(now));
  }

  /** Milliseconds until `settled()` (Infinity when it waits for a peer it has not met). */
  #settledIn(now: number): number {
    if (this.settled()) return 0;
    const discovered = Math.max(this.#startedAt + this.#o.discoveryMs, this.#pausedUntil) - now;
    if (this.#o.expectedMembers !== undefined) return Math.max(0, discovered);
    if (this.#metAt !== undefined) return Math.max(0, discovered, this.#metAt + this.#o.discoveryMs - now);
    return Math.max(0, discovered, this.#startedAt + this.#o.forgetAfter - now);
  }

  /** Other members whose answer counts toward the lease now. */
  answering(): string[] {
    return this.#leases.fresh(this.#o.clock.monotonic());
  }

  /** How many times this member lost its lease since it started (each time, others may have moved on). */
  get lapses(): number {
    this.hasQuorum();
    return this.#lapses;
  }

  /** The cluster's size as this member counts it (`expectedMembers`, or its seats). */
  size(): number {
    return this.#o.expectedMembers ?? this.#countSeats().seats;
  }

  memberAdded(route: string): void {
    this.#seats.set(route, { state: 'alive' });
    this.#gone.delete(route);
    this.#metAt ??= this.#o.clock.monotonic();
  }

  /**
   * A member was removed. `left`: it said so, and its seat is freed. `failed`: silent, reset or refused
   * alike; it keeps its seat, since it may be alive and serving on the other side of a partition, and
   * its answers stop counting toward this member's lease (`Leases.withdraw`).
   */
  memberRemoved(route: string, reason: 'left' | 'failed'): void {
    if (reason === 'left') {
      this.#seats.delete(route);
      this.#gone.add(route);
      return;
    }
    this.hasQuorum(); // a lease held until now is lost by this removal, not earlier
    const now = this.#o.clock.monotonic();
    this.#seats.set(route, { state: 'silent', since: now });
    // Its answers no longer count toward the lease: the side that removed the others stops serving now.
    this.#leases.withdraw(route, now);
  }

  /**
   * Whether `owner` (not a live member) may still be serving: it went silent less than a grace ago, or
   * this member is still discovering the cluster and has not seen it leave.
   */
  mayServe(owner: string): boolean {
    return !this.ownerReleased(owner) || (!this.settled() && !this.#gone.has(owner));
  }

  #countSeats(): { alive: number; seats: number } {
    const now = this.#o.clock.monotonic();
    let alive = 0;
    let seats = 0;
    for (const [route, seat] of this.#seats) {
      if (seat.state === 'alive') alive++;
      else if (this.#o.expectedMembers === undefined && now - seat.since >= this.#o.forgetAfter) {
        this.#seats.delete(route);
        continue;
      }
      seats++;
    }
    return { alive, seats };
  }

  /**
   * Whether this member holds its lease: a strict majority of the cluster (itself included) answered it
   * within `leaseMs`. Regained after a lapse, it first catches up (`recovering`).
   */
  hasQuorum(): boolean {
    const now = this.#o.clock.monotonic();
    const size = this.size();
    const covered = !this.#unmet(now) && now < this.#leases.coveredUntil(size);
    if (!covered && this.#held) {
      this.#held = false;
      // Lost because the cluster grew (a member seen for the first time), not because time ran out: every
      // promise it held still runs, so nobody can have taken anything over.
      if (now >= this.#leases.coveredUntil(this.#heldSize)) this.#lapses++;
    } else if (covered && !this.#held) {
      this.#held = true;
      if (this.#lapses > this.#caughtUp) {
        this.#caughtUp = this.#lapses;
        this.rejoined();
      }
    }
    if (covered) this.#heldSize = size;
    return covered;
  }

  /**
   * Without `expectedMembers`: this member has met nobody since it started, and not for `forgetAfter`.
   * It cannot tell a cluster it has not met (that keeps its seat for `forgetAfter`) from none, so it
   * holds no lease: a cluster of one seat would let it create and serve sessions that the others,
   * not reaching it, answer "no session" for. After `forgetAfter` alone, they have forgotten it too.
   */
  #unmet(now: number): boolean {
    return this.#o.expectedMembers === undefined && this.#metAt === undefined && now - this.#startedAt < this.#o.forgetAfter;
  }

  /** Whether the members this member sees alive make a strict majority (its view, not its lease). */
  seesMajority(): boolean {
    const { alive, seats } = this.#countSeats();
    return alive * 2 > (this.#o.expectedMembers ?? seats);
  }

  /** Live routes beyond `expectedMembers` (a misconfiguration: the majority rule then protects nothing). */
  excess(): number {
    const n = this.#o.expectedMembers;
    return n === undefined ? 0 : Math.max(0, this.#countSeats().alive - n);
  }

  /** Routes removed for failure and not forgotten: they may hold sessions nobody here can see. */
  silentRoutes(): string[] {
    this.#countSeats();
    return [...this.#seats].filter(([, s]) => s.state === 'silent').map(([r]) => r);
  }

  /**
   * How many members of the cluster this member cannot ask now: silent seats, and with
   * `expectedMembers` the members it has not seen at all (one started cut off, say).
   */
  unreachable(): number {
    const { alive, seats } = this.#countSeats();
    return Math.max(seats - alive, (this.#o.expectedMembers ?? 0) - alive);
  }

  /**
   * Whether the sessions of `owner` (not alive) may be taken from their copies, as far as this member
   * knows: it left; or no promise of this member to it is running, and this process has been up longer
   * than a promise lasts (a restarted member may have made promises in its previous life). A takeover
   * also needs every other member's promises run out (`Survey.promised`).
   */
  ownerReleased(owner: string): boolean {
    const seat = this.#seats.get(owner);
    if (seat?.state === 'alive') return false;
    if (seat === undefined && this.#gone.has(owner)) return true;
    const now = this.#o.clock.monotonic();
    if (now - this.#startedAt < this.#leases.leaseMs + this.#leases.margin) return false;
    return !this.#leases.promised(owner, now);
  }

  /**
   * Routes removed for failure and not released yet. Until then this member may be on the smaller side
   * of a partition without knowing it yet: a write must not be acknowledged by a copy holder chosen in
   * their place.
   */
  recentlySilent(): string[] {
    return this.silentRoutes().filter((r) => !this.ownerReleased(r));
  }

  /** The process was paused for `ms` (measured by the caller): until the failure detector catches up, be careful. */
  paused(ms: number): void {
    if (ms > this.#o.dropTime / 2) this.#pausedUntil = this.#o.clock.monotonic() + this.#o.dropTime;
  }

  /**
   * This member sees a majority again after it had lost it (a partition healed): the others may not
   * have seen it back yet, and may be taking its sessions over on their old view. Catch up first.
   */
  rejoined(): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, this.#o.clock.monotonic() + this.#o.dropTime);
  }

  /**
   * Whether this process was paused, or cut off, a moment ago: the others may have evicted it and
   * moved its sessions on, and have not seen it back yet. It serves nothing until they have.
   */
  recovering(): boolean {
    return this.#o.clock.monotonic() < this.#pausedUntil;
  }

  /**
   * Whether an unknown session may be answered "no session": discovery is over and no pause is being
   * digested. Without `expectedMembers`, also: this member met another at least a discovery window ago
   * (one started cut off meets the others one by one when it heals, and counts only those it met), or
   * has waited `forgetAfter` (a member started cut off from everyone cannot tell a cluster it has not
   * met from none).
   */
  settled(): boolean {
    const now = this.#o.clock.monotonic();
    if (now - this.#startedAt < this.#o.discoveryMs || now < this.#pausedUntil) return false;
    if (this.#o.expectedMembers !== undefined) return true;
    if (this.#metAt !== undefined) return now - this.#metAt >= this.#o.discoveryMs;
    return now - this.#startedAt >= this.#o.forgetAfter;
  }
}
