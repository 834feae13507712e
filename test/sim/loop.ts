/**
 * Simulated time: one queue of events in (time, sequence) order, each owned by a process (a member
 * incarnation, or the world: clients, nemesis, checker). A paused process's events are held and run
 * late, in order, when it resumes (its timers first, as Node runs expired timers before socket
 * reads); a dead process's events are dropped. Between events every microtask is drained, so the
 * protocol's promise chains run to their next real wait before simulated time moves on.
 */
import { setImmediate as realSetImmediate } from 'node:timers';
import type { Clock, TimerHandle } from '../../src/replication/clock.js';

/** Simulated time starts at a fixed wall-clock-like instant: session expiry is epoch ms. */
export const SIM_EPOCH = 1_800_000_000_000;

export type ProcState = 'running' | 'paused' | 'dead';

/** Something that runs code: a member incarnation, or the world (never paused). */
export class Proc {
  state: ProcState = 'running';
  /** Events that came due while paused, in due order. */
  held: SimEvent[] = [];
  constructor(readonly name: string) {}
}

export interface SimEvent {
  at: number;
  seq: number;
  proc: Proc;
  /** Timers run before deliveries when a paused process resumes. */
  timer: boolean;
  fn: () => void;
  cancelled: boolean;
}

/** A binary min-heap on (at, seq). */
class Heap {
  readonly #a: SimEvent[] = [];
  get size(): number {
    return this.#a.length;
  }
  push(e: SimEvent): void {
    const a = this.#a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): SimEvent | undefined {
    const a = this.#a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l], a[m])) m = l;
        if (r < a.length && before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
  peek(): SimEvent | undefined {
    return this.#a[0];
  }
}

function before(x: SimEvent, y: SimEvent): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}

/** Events run per turn of the real event loop (each in its own immediate, microtasks drained between). */
const STEPS_PER_TURN = 64;

/** The simulated world's clock and scheduler. */
export class SimLoop {
  now = SIM_EPOCH;
  readonly world = new Proc('world');
  /** The process whose event is running (for timers set through the global shim). */
  current: Proc = this.world;
  events = 0;
  /** Exceptions thrown out of events (the real process would have crashed). */
  readonly errors: string[] = [];
  readonly #heap = new Heap();
  #seq = 0;

  /** Schedules `fn` at `at` on `proc`. */
  at(at: number, proc: Proc, fn: () => void, timer = false): SimEvent {
    const e: SimEvent = { at: Math.max(at, this.now), seq: this.#seq++, proc, timer, fn, cancelled: false };
    if (proc.state !== 'dead') this.#heap.push(e);
    return e;
  }

  after(ms: number, proc: Proc, fn: () => void, timer = false): SimEvent {
    return this.at(this.now + ms, proc, fn, timer);
  }

  /** Resumes a paused process: what it missed runs now, timers first, then deliveries. */
  resume(proc: Proc): void {
    if (proc.state !== 'paused') return;
    proc.state = 'running';
    const held = proc.held;
    proc.held = [];
    // The same event objects go back in (they are the timer handles, so clearing still works).
    for (const e of [...held.filter((x) => x.timer), ...held.filter((x) => !x.timer)]) {
      e.at = this.now;
      e.seq = this.#seq++;
      this.#heap.push(e);
    }
  }

  pause(proc: Proc): void {
    if (proc.state === 'running') proc.state = 'paused';
  }

  kill(proc: Proc): void {
    proc.state = 'dead';
    proc.held = [];
  }

  /**
   * Runs events up to `until` (inclusive), draining microtasks after each. Each event runs in its own
   * `setImmediate` callback (Node drains microtasks between those), and a batch of them is queued per
   * turn of the real event loop: a turn per event cost a third of the simulator's time.
   */
  async run(until: number): Promise<void> {
    while (this.#due(until) !== undefined) {
      await new Promise<void>((resolve) => {
        for (let i = 0; i < STEPS_PER_TURN; i++) realSetImmediate(() => this.#step(until));
        realSetImmediate(resolve);
      });
      this.current = this.world;
    }
    if (until > this.now) this.now = until;
  }

  /** The next event to run by `until`, setting aside those of dead or paused processes. */
  #due(until: number): SimEvent | undefined {
    for (;;) {
      const e = this.#heap.peek();
      if (e === undefined || e.at > until) return undefined;
      if (!e.cancelled && e.proc.state === 'running') return e;
      this.#heap.pop();
      if (!e.cancelled && e.proc.state === 'paused') e.proc.held.push(e);
    }
  }

  #step(until: number): void {
    const e = this.#due(until);
    if (e === undefined) return;
    this.#heap.pop();
    this.now = e.at;
    this.current = e.proc;
    this.events++;
    try {
      e.fn();
    } catch (err) {
      // A throw out of the protocol's callback would have crashed that process: record it.
      this.errors.push(`${e.proc.name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  /**
   * A `Clock` for the replication layer of one process: its timers freeze while it is paused. With
   * `skew` (the clock nemesis), its wall time is off by `offset` (stepped by changing it) and both its
   * clocks run `drift` fast (timers too: a clock that runs fast fires them early).
   */
  clockFor(proc: Proc, skew?: ClockSkew): Clock {
    if (skew === undefined) {
      return {
        // Integer ms, as Date.now gives: times go on the wire as Avro longs.
        now: () => Math.floor(this.now),
        monotonic: () => this.now,
        setTimeout: (fn, ms) => this.after(Math.max(0, ms), proc, fn, true),
        clearTimeout: (h: TimerHandle) => cancel(h),
        setInterval: (fn, ms) => this.interval(proc, fn, ms),
        clearInterval: (h: TimerHandle) => cancel(h),
      };
    }
    const t0 = this.now;
    const local = () => this.now + skew.drift * (this.now - t0);
    return {
      now: () => Math.floor(local() + skew.offset),
      monotonic: local,
      setTimeout: (fn, ms) => this.after(Math.max(0, ms) / (1 + skew.drift), proc, fn, true),
      clearTimeout: (h: TimerHandle) => cancel(h),
      setInterval: (fn, ms) => this.interval(proc, fn, ms / (1 + skew.drift)),
      clearInterval: (h: TimerHandle) => cancel(h),
    };
  }

  /** Like Node's setInterval: after a late run, the next one is `ms` after it. */
  interval(proc: Proc, fn: () => void, ms: number): IntervalHandle {
    const step = Math.max(1, ms);
    const handle: IntervalHandle = { cancelled: false, event: undefined };
    const arm = () => {
      handle.event = this.after(step, proc, () => {
        if (handle.cancelled) return;
        arm();
        fn();
      }, true);
    };
    arm();
    return handle;
  }
}

/** How a member's clocks are off (mutable: a step changes `offset`). */
export interface ClockSkew {
  /** Wall time minus true time, ms. */
  offset: number;
  /** Rate error of both clocks (0.01: 1 % fast). */
  drift: number;
}

export interface IntervalHandle {
  cancelled: boolean;
  event: SimEvent | undefined;
}

function cancel(h: TimerHandle): void {
  if (h === null || typeof h !== 'object') return;
  const x = h as Partial<SimEvent & IntervalHandle>;
  x.cancelled = true;
  if (x.event !== undefined) x.event.cancelled = true;
}
