/**
 * A member's capacity (issue 26): how many sessions it holds, primaries and copies together, and what
 * happens to a new session past that. A flood of session creations (a crawler, credential stuffing,
 * an app writing to every anonymous session) must not grow members until the OOM killer ends one and
 * the survivors, taking over its sessions and copies, fall after it.
 *
 * Three bounds, from the hardest:
 *
 * | bound | what crosses it | what happens |
 * | --- | --- | --- |
 * | `maxSessions` (held here) | a copy of a session this member does not hold yet | refused (`SessionCapacityError` to the sender); re-protection leaves the session with fewer copies (`sessions.underReplicated`) |
 * | planned level, `plannedLevel()` | a new session created here (a new primary) | `'refuse'`: 503 with Retry-After (the balancer tries another member); `'evict-idle'`: the least recently used session idle longer than `idleMs` is destroyed first, durably, as a logout |
 * | event-loop delay (`maxEventLoopDelay`) | a new session while the loop is saturated | 503 with Retry-After: new sessions go before requests of existing ones are delayed |
 *
 * Nothing that exists is ever dropped to make room under `'refuse'`, and cluster traffic (heartbeats,
 * acknowledgements, copies of sessions already held, takeovers) is never shed: an overloaded member
 * that stopped answering would be evicted by the others, which is the domino this module prevents.
 *
 * The planned level leaves room for a failure. With `N` live members each holding `L` sessions in
 * backup mode, a failed member's `L` primaries and copies are re-homed over the `N - 1` others
 * (takeover turns a copy into a primary, re-protection makes the missing copies), so each survivor
 * ends with `L · N / (N - 1)`. Planning for `f = min(backups, N - 1)` simultaneous failures:
 *
 *     plannedLevel = floor(maxSessions · (N - f) / N)
 *
 * (4 members, one backup: 75 % of maxSessions). Delta mode holds every session on every member, so a
 * failure adds nothing: the planned level is `maxSessions` itself.
 */
import { PerformanceObserver, constants as perf, monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

/** Heap in use now (cheaper than `process.memoryUsage()`, which reads the RSS too). */
const heapUsed = (): number => getHeapStatistics().used_heap_size;
import type { Logger } from 'pino';
import { LogLimiter } from '../cluster/log-limiter.js';
import { ClusterRequestError, SessionCapacityError, type CapacityReason } from '../errors.js';
import { shortId } from './session-id.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';

/** What `onCapacity` may say. */
export type OnCapacity = 'refuse' | 'evict-idle';

/** Heap a member spends on sessions when `maxSessions` is not set: half its limit. */
export const HEAP_SHARE = 0.5;
/**
 * Heap one held session costs before anything is measured: a copy of a small session (a user and a few
 * keys) measured by the memory bench is about 1.5 KiB of RSS; a little more, to be safe.
 */
export const INITIAL_COST_BYTES = 2048;
/** The measured cost never goes below this (heap growth can lag behind the sessions it holds). */
const MIN_COST_BYTES = 512;
/**
 * The cost per session is the live heap's growth since start over the sessions held, read right after
 * a major GC (the heap in use at any other moment is mostly garbage while requests run: a bench fill
 * measured 50 KB a session that way, and refused its own sessions), once it is signal, not noise: at
 * least this many sessions held, and a growth of at least `MEASURE_SHARE` of the heap limit (large
 * sessions) or `MEASURE_FROM` sessions held (small ones).
 */
const MEASURE_MIN = 10;
const MEASURE_FROM = 1000;
const MEASURE_SHARE = 0.05;
const MEASURE_MS = 1000;
const LOOP_MS = 500;
const LRU_SWEEP_MS = 30_000;
/** How long a member that refused a copy for capacity is taken as full (no copy is sent meanwhile). */
export const FULL_MS = 2000;

/** The bounds `maxSessions` derived from the heap: logged at start, on the status page. */
export interface DerivedLimit {
  maxSessions: number;
  heapLimitBytes: number;
  costPerSessionBytes: number;
}

/** `floor(max · (N - f) / N)` with `f = min(backups, N - 1)`; `max` itself in delta mode or alone. */
export function plannedLevel(max: number, live: number, mode: 'backup' | 'delta', backups = 1): number {
  if (mode === 'delta' || live <= 1) return max;
  const f = Math.min(backups, live - 1);
  return Math.floor((max * (live - f)) / live);
}

/**
 * The default `maxSessions`: `HEAP_SHARE` of the heap the process has not used before its first session
 * (`baselineBytes`: the application, the libraries, the cluster) over the cost of one held session.
 * The other half is room for requests' garbage, the decoded cache and the tombstones.
 */
export function derivedMaxSessions(heapLimitBytes: number, costPerSessionBytes: number, baselineBytes = 0): number {
  const budget = Math.max(0, heapLimitBytes - baselineBytes) * HEAP_SHARE;
  return Math.max(100, Math.floor(budget / Math.max(MIN_COST_BYTES, costPerSessionBytes)));
}

/** Whether `err` (or what caused it) is a capacity refusal: a copy holder's, as it crosses the wire, or our own. */
export function capacityRefusal(err: unknown): Error | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof SessionCapacityError) return e;
    if (e instanceof ClusterRequestError && e.code === 'ERR_REMOTE' && e.remote?.code === SessionCapacityError.CODE) return e;
  }
  return undefined;
}

/**
 * Where a session's copies go, without the members known full: each full one is replaced by a member
 * that holds the session already (`holders`: alive, so keeping it there costs nothing), or left out,
 * and the session keeps fewer copies (`sessions.underReplicated`; re-protection tries again when
 * room appears). A new session (`fresh`) is refused instead: it is not created with fewer copies.
 */
export function withRoom<T extends { route: string }>(full: FullMembers, targets: T[], holders: T[], fresh: boolean): T[] {
  const holds = (t: T) => holders.some((h) => h.route === t.route);
  if (!targets.some((t) => full.has(t.route) && !holds(t))) return targets;
  if (fresh) throw new SessionCapacityError('copy-holder-full', 'a member that would hold the new session\'s copy is at its maxSessions');
  const spare = holders.filter((h) => !targets.some((t) => t.route === h.route));
  const out: T[] = [];
  for (const t of targets) {
    if (!full.has(t.route) || holds(t)) out.push(t);
    else if (spare.length > 0) out.push(spare.shift()!);
  }
  return out;
}

/**
 * Members that refused a copy for capacity a moment ago. Writes and re-protection send them nothing
 * until `FULL_MS` passed: a refusal costs a round trip, and a full member would be asked again for
 * every session of every flood request otherwise.
 */
export class FullMembers {
  readonly #until = new Map<string, number>();
  readonly #now: () => number;

  constructor(clock: Clock = systemClock) {
    this.#now = () => clock.monotonic();
  }

  mark(route: string): void {
    this.#until.set(route, this.#now() + FULL_MS);
  }

  has(route: string): boolean {
    const until = this.#until.get(route);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#until.delete(route);
    return false;
  }
}

/** Counters for the status page and metrics. */
export interface CapacityCounters {
  /** New sessions refused here because this member is at its planned level. */
  refusedFull: number;
  /** New sessions refused because the event loop was saturated. */
  refusedOverloaded: number;
  /** New sessions refused because a copy holder is full. */
  refusedCopyHolderFull: number;
  /** Copies of sessions not held yet refused here at `maxSessions`. */
  copiesRefused: number;
  /** Idle sessions destroyed to make room (`onCapacity: 'evict-idle'`). */
  evicted: number;
}

/** What `/cluster/status` shows of a member's capacity. */
export interface CapacityStatus extends CapacityCounters {
  onCapacity: OnCapacity;
  /** The bound in force: the option, or derived from the heap. */
  maxSessions: number;
  /** `option` or `heap` (derived: see `heapLimitBytes` and `costPerSessionBytes`). */
  source: 'option' | 'heap';
  /** New primaries stop at this many sessions held (room for a failed member's share). */
  plannedLevel: number;
  held: number;
  /** `held / maxSessions`, 0 to 1 (3 decimals). */
  fill: number;
  /** Median event-loop delay over the last half second, ms. */
  eventLoopDelayMs: number;
  /** Whether new sessions are shed for event-loop delay now. */
  overloaded: boolean;
  heapLimitBytes: number;
  costPerSessionBytes: number;
}

export interface CapacityOptions {
  maxSessions?: number;
  onCapacity: OnCapacity;
  /** `'evict-idle'`: only sessions unused this long (ms) are evicted. */
  idleMs: number;
  /** Median event-loop delay (ms, over half a second, two windows in a row) past which new sessions are refused; 0: never. */
  maxEventLoopDelay: number;
  mode: 'backup' | 'delta';
  backups: number;
  /** Sessions held here, primaries and copies. */
  held(): number;
  /** Live members, self included. */
  liveMembers(): number;
  /** Whether this member serves `base` now (only those are evicted). */
  isPrimary(base: string): boolean;
  /** Destroys `base` as a logout does, firing `sessionDestroyed` with reason `evicted`; false when it was gone (rejects when the removal failed). */
  evict(base: string): Promise<boolean>;
  logger: Logger;
  /** For tests: the heap limit instead of V8's. */
  heapLimitBytes?: number;
  /** Timers and idle times (the event-loop delay and the heap are the process's own, never simulated). */
  clock?: Clock;
}

/**
 * The capacity of one member: admits new sessions and new copies, picks idle sessions to evict, and
 * sheds new sessions while the event loop is saturated.
 */
export class Capacity {
  readonly #o: CapacityOptions;
  readonly #log: Logger;
  readonly #limiter = new LogLimiter(10_000);
  readonly counters: CapacityCounters = { refusedFull: 0, refusedOverloaded: 0, refusedCopyHolderFull: 0, copiesRefused: 0, evicted: 0 };
  /** New sessions admitted here whose creation has not ended yet (`admitSession` to `creationEnded`). */
  readonly #creating = new Set<string>();
  /** Sessions served here by last use, least recent first (a Map keeps insertion order). `'evict-idle'` only. */
  readonly #lru = new Map<string, number>();
  readonly #heapLimit: number;
  #cost = INITIAL_COST_BYTES;
  #max: number;
  #baselineHeap = 0;
  /** The heap in use right after the last major GC (live data), and whether it was measured since. */
  #liveHeap: number | undefined;
  #gc: PerformanceObserver | undefined;
  #loop: IntervalHistogram | undefined;
  #delayMs = 0;
  #overloaded = false;
  /** Consecutive half-second windows with the median delay over the bound. */
  #overWindows = 0;
  #timers: TimerHandle[] = [];
  readonly #clock: Clock;

  constructor(o: CapacityOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#log = o.logger;
    this.#heapLimit = o.heapLimitBytes ?? getHeapStatistics().heap_size_limit;
    this.#max = o.maxSessions ?? derivedMaxSessions(this.#heapLimit, this.#cost);
  }

  /** Starts the event-loop monitor and the heap measurement; logs the bounds in force. */
  start(): void {
    this.#baselineHeap = heapUsed();
    if (this.#o.maxSessions === undefined) this.#max = derivedMaxSessions(this.#heapLimit, this.#cost, this.#baselineHeap);
    const mib = (b: number) => Math.round(b / 1048576);
    if (this.#o.maxSessions === undefined) {
      this.#log.info(
        { maxSessions: this.#max, heapLimitMiB: mib(this.#heapLimit), baselineHeapMiB: mib(this.#baselineHeap), costPerSessionBytes: this.#cost, onCapacity: this.#o.onCapacity },
        `capacity: maxSessions not set; ${this.#max} sessions held at most, from ${HEAP_SHARE * 100} % of the heap left by the application over the cost per session (measured again as sessions arrive; set maxSessions to fix it)`,
      );
    } else {
      this.#log.info({ maxSessions: this.#max, onCapacity: this.#o.onCapacity }, `capacity: at most ${this.#max} sessions held`);
    }
    if (this.#o.maxEventLoopDelay > 0) {
      this.#loop = monitorEventLoopDelay({ resolution: 10 });
      this.#loop.enable();
      this.#every(LOOP_MS, () => this.#sampleLoop());
    }
    if (this.#o.maxSessions === undefined) {
      this.#gc = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind !== perf.NODE_PERFORMANCE_GC_MAJOR) continue;
          const live = heapUsed();
          // A collection before sessions arrive is a cleaner baseline than the reading at start.
          if (this.#o.held() < MEASURE_MIN) this.#baselineHeap = Math.min(this.#baselineHeap, live);
          this.#liveHeap = live;
        }
      });
      this.#gc.observe({ entryTypes: ['gc'] });
      this.#every(MEASURE_MS, () => this.#measure());
    }
    if (this.#o.onCapacity === 'evict-idle') this.#every(LRU_SWEEP_MS, () => this.#sweepLru());
  }

  stop(): void {
    for (const t of this.#timers) this.#clock.clearInterval(t);
    this.#timers = [];
    this.#loop?.disable();
    this.#gc?.disconnect();
  }

  #every(ms: number, fn: () => void): void {
    this.#timers.push(this.#clock.setInterval(fn, ms));
  }

  get maxSessions(): number {
    return this.#max;
  }

  plannedLevel(): number {
    return plannedLevel(this.#max, this.#o.liveMembers(), this.#o.mode, this.#o.backups);
  }

  /** A request used `base` here (read or written): it is the most recently used now. */
  touched(base: string): void {
    if (this.#o.onCapacity !== 'evict-idle') return;
    this.#lru.delete(base);
    this.#lru.set(base, this.#clock.monotonic());
  }

  /**
   * Before a new session is created here. Resolves when it may be (after evicting one idle session,
   * with `'evict-idle'` at the planned level); throws `SessionCapacityError` when it may not.
   * `holderFull`: a member that would hold its copy refused copies a moment ago.
   */
  async admitSession(base: string, holderFull: string | undefined): Promise<void> {
    if (this.#overloaded) throw this.#refuse('overloaded', base);
    if (holderFull !== undefined) throw this.#refuse('copy-holder-full', base, holderFull);
    if (this.#held() < this.plannedLevel()) {
      this.#creating.add(base);
      return;
    }
    // A few tries: a victim may be gone meanwhile (logged out, moved, expired).
    for (let tries = 0; this.#o.onCapacity === 'evict-idle' && tries < 3; tries++) {
      const victim = this.#idlest();
      if (victim === undefined) break;
      // A removal that failed (a copy holder did not acknowledge it) counts as no room made.
      const gone = await this.#o.evict(victim).catch((err: unknown) => {
        this.#log.debug({ err, session: shortId(victim) }, 'capacity: an eviction failed; trying the next idle session');
        return false;
      });
      if (gone) {
        this.#creating.add(base);
        this.counters.evicted++;
        const allowed = this.#limiter.allow('evicted');
        if (allowed !== false) {
          this.#log.info({ session: shortId(victim), held: this.#o.held(), planned: this.plannedLevel(), since: allowed }, 'capacity: evicted the least recently used idle session to make room');
        }
        return;
      }
    }
    throw this.#refuse('full', base);
  }

  /** A creation `admitSession` let through has ended, committed or failed: its place is no longer kept. */
  creationEnded(base: string): void {
    this.#creating.delete(base);
  }

  /**
   * Sessions held, and those being created here: a creation admitted (room made for it) is not in the
   * table until its copies are acknowledged, and copies arriving meanwhile must not take its place.
   */
  #held(): number {
    return this.#o.held() + this.#creating.size;
  }

  /** Before a copy of a session not held here is installed: throws `SessionCapacityError` at `maxSessions`. */
  admitCopy(base: string): void {
    if (this.#held() < this.#max) return;
    this.counters.copiesRefused++;
    const allowed = this.#limiter.allow('copy');
    if (allowed !== false) {
      this.#log.warn({ session: shortId(base), held: this.#o.held(), maxSessions: this.#max, suppressed: allowed }, 'capacity: a copy refused at maxSessions; the session keeps fewer copies (sessions.underReplicated)');
    }
    throw new SessionCapacityError('full', `this member holds ${this.#o.held()} sessions, its maxSessions: a new copy is refused`);
  }

  /** A new session failed because a copy holder refused it for capacity. */
  copyHolderRefused(base: string, route?: string): SessionCapacityError {
    return this.#refuse('copy-holder-full', base, route);
  }

  #refuse(reason: CapacityReason, base: string, holder?: string): SessionCapacityError {
    if (reason === 'overloaded') this.counters.refusedOverloaded++;
    else if (reason === 'full') this.counters.refusedFull++;
    else this.counters.refusedCopyHolderFull++;
    const why =
      reason === 'overloaded'
        ? `the event loop is saturated (median delay ${Math.round(this.#delayMs)} ms, over maxEventLoopDelay ${this.#o.maxEventLoopDelay} ms)`
        : reason === 'full'
          ? `this member holds ${this.#o.held()} sessions, its planned level (${this.plannedLevel()} of maxSessions ${this.#max}, room kept for a failed member's share)`
          : `${holder === undefined ? 'a member' : `member ${holder}`} that would hold its copy is at its maxSessions`;
    const allowed = this.#limiter.allow(reason);
    if (allowed !== false) this.#log.warn({ session: shortId(base), reason, suppressed: allowed }, `capacity: a new session refused (503): ${why}`);
    return new SessionCapacityError(reason, `a new session was refused: ${why}; retry, or on another member`);
  }

  /** The least recently used session served here and idle longer than `idleMs`, if any. */
  #idlest(): string | undefined {
    const cutoff = this.#clock.monotonic() - this.#o.idleMs;
    for (const [base, at] of this.#lru) {
      if (!this.#o.isPrimary(base)) {
        this.#lru.delete(base); // moved away, destroyed or expired: no longer ours to evict
        continue;
      }
      // Least recently used first: if this one is not idle long enough, none is.
      if (at > cutoff) return undefined;
      this.#lru.delete(base); // taken: a concurrent creation picks the next one
      return base;
    }
    return undefined;
  }

  /** Forgets sessions no longer served here (the evictor skips them anyway; this bounds the map). */
  #sweepLru(): void {
    for (const base of this.#lru.keys()) if (!this.#o.isPrimary(base)) this.#lru.delete(base);
  }

  #sampleLoop(): void {
    const h = this.#loop!;
    this.#delayMs = h.count > 0 ? h.percentile(50) / 1e6 : 0;
    h.reset();
    const was = this.#overloaded;
    // Saturated for two windows in a row (a second): one long GC or one slow request is not overload.
    this.#overWindows = this.#delayMs > this.#o.maxEventLoopDelay ? this.#overWindows + 1 : 0;
    this.#overloaded = this.#overWindows >= 2;
    if (this.#overloaded !== was) {
      this.#log.warn(
        { eventLoopDelayMs: Math.round(this.#delayMs), maxEventLoopDelay: this.#o.maxEventLoopDelay },
        this.#overloaded ? 'capacity: event loop saturated; new sessions are refused (503) so existing ones keep being served' : 'capacity: event loop recovered; new sessions are accepted again',
      );
    }
  }

  /** Measures the heap one held session costs, and derives `maxSessions` from it (when not set). */
  #measure(): void {
    const held = this.#o.held();
    if (this.#liveHeap === undefined) return; // no major GC since the last measurement
    const growth = this.#liveHeap - this.#baselineHeap;
    this.#liveHeap = undefined;
    if (held < MEASURE_MIN || (held < MEASURE_FROM && growth < this.#heapLimit * MEASURE_SHARE)) return;
    const measured = growth / held;
    // Up at once (a flood of large sessions must not outrun the measurement), down slowly: the heap
    // holds garbage between collections, and too high a cost errs on the safe side.
    const next = measured > this.#cost ? measured : 0.7 * this.#cost + 0.3 * measured;
    this.#cost = Math.max(MIN_COST_BYTES, Math.round(next));
    const max = derivedMaxSessions(this.#heapLimit, this.#cost, this.#baselineHeap);
    if (Math.abs(max - this.#max) > this.#max * 0.1) {
      this.#log.info({ maxSessions: max, was: this.#max, costPerSessionBytes: this.#cost, held }, 'capacity: maxSessions derived again from the measured cost per session');
    }
    this.#max = max;
  }

  status(): CapacityStatus {
    const held = this.#o.held();
    return {
      onCapacity: this.#o.onCapacity,
      maxSessions: this.#max,
      source: this.#o.maxSessions === undefined ? 'heap' : 'option',
      plannedLevel: this.plannedLevel(),
      held,
      fill: Math.round((held / this.#max) * 1000) / 1000,
      eventLoopDelayMs: Math.round(this.#delayMs * 10) / 10,
      overloaded: this.#overloaded,
      heapLimitBytes: this.#heapLimit,
      costPerSessionBytes: this.#cost,
      ...this.counters,
    };
  }
}
