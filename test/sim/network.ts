/**
 * The simulated network: one connection per (sender, receiver) member pair, like the channel's
 * persistent TCP connection, FIFO in each direction (requests one way, replies the other), with
 * random delays, so messages on different connections reorder. A partition holds what crosses it
 * (TCP retransmits) until it heals or the connection is closed; closing a connection drops what is
 * in flight. What has reached a paused receiver's kernel is read when it resumes.
 */
import type { Prng } from './prng.js';
import type { Proc, SimLoop } from './loop.js';

/** Direction on a connection: 0 carries requests (sender → receiver), 1 carries replies. */
export type Dir = 0 | 1;

/** Delays, ms. */
export interface LatencyModel {
  base: [number, number];
  /** Probability and range of a slow message (a GC on the way, a retransmit). */
  slow: number;
  slowRange: [number, number];
}

export const DEFAULT_LATENCY: LatencyModel = { base: [0.05, 1.5], slow: 0.04, slowRange: [5, 120] };

/** A connection's end as the network knows it (the requesting end is told of resets). */
export interface ConnEnd {
  id: string;
  route: string;
  proc: Proc;
  connectionBroke?(memberId: string, reconnectAfter: number): void;
}

/** One simulated TCP connection, from `from`'s outgoing side to `to`'s receiver. */
export class Conn {
  open = true;
  /** Last scheduled arrival per direction, to keep FIFO. */
  readonly lastAt: [number, number] = [0, 0];
  /** Messages held by a partition, per direction. */
  readonly held: [(() => void)[], (() => void)[]] = [[], []];
  /** Nothing arrives before the connection is (re)established. */
  readonly readyAt: number;
  constructor(
    readonly id: number,
    readonly from: ConnEnd,
    readonly to: ConnEnd,
    readyAt: number,
  ) {
    this.readyAt = readyAt;
  }
}

export class SimNetwork {
  /** Partition: route → side; routes on different sides cannot talk. */
  #side: Map<string, number> | undefined;
  /** Directed cuts (`a>b`: nothing from a reaches b), beside the partition: one-way and non-transitive ones. */
  readonly #cuts = new Set<string>();
  /**
   * The cuts answer with TCP resets (a firewall's reject) instead of dropping silently: every one
   * ('all'), or only on the connections named `a>b` (a's connection to b is reset; elsewhere silence).
   */
  #resets: 'all' | ReadonlySet<string> | undefined;
  /** Slow directions (`a>b`) until a time, with the extra delay range (a link missing ackTimeout). */
  readonly #slow = new Map<string, { until: number; extra: [number, number] }>();
  #connIds = 0;
  readonly #conns = new Set<Conn>();
  messages = 0;
  held = 0;
  dropped = 0;

  constructor(
    readonly loop: SimLoop,
    readonly rng: Prng,
    readonly latency: LatencyModel = DEFAULT_LATENCY,
  ) {}

  delay(): number {
    const l = this.latency;
    if (this.rng.chance(l.slow)) return this.rng.range(l.slowRange[0], l.slowRange[1]);
    return this.rng.range(l.base[0], l.base[1]);
  }

  open(from: Conn['from'], to: Conn['to'], readyAt = this.loop.now): Conn {
    const c = new Conn(++this.#connIds, from, to, readyAt);
    this.#conns.add(c);
    return c;
  }

  close(c: Conn): void {
    if (!c.open) return;
    c.open = false;
    this.dropped += c.held[0].length + c.held[1].length;
    c.held[0].length = 0;
    c.held[1].length = 0;
    this.#conns.delete(c);
  }

  /** Whether `a` and `b` cannot talk both ways (a partition, or a cut in either direction). */
  crossing(a: string, b: string): boolean {
    const s = this.#side;
    if (s !== undefined && (s.get(a) ?? 0) !== (s.get(b) ?? 0)) return true;
    return this.#cuts.size > 0 && (this.#cuts.has(`${a}>${b}`) || this.#cuts.has(`${b}>${a}`));
  }

  /** Whether what `from` sends does not reach `to`. */
  blocked(from: string, to: string): boolean {
    const s = this.#side;
    if (s !== undefined && (s.get(from) ?? 0) !== (s.get(to) ?? 0)) return true;
    return this.#cuts.size > 0 && this.#cuts.has(`${from}>${to}`);
  }

  get partitioned(): boolean {
    return this.#side !== undefined || this.#cuts.size > 0;
  }

  /** `resets`: true for every crossing connection, or the connections (`a>b`) that are reset. */
  partition(side: Map<string, number>, resets: boolean | ReadonlySet<string> = false): void {
    this.#side = side;
    this.#resets = resets === true ? 'all' : resets === false ? undefined : resets;
  }

  /** Whether `from`'s connection to `to` is answered with a reset while blocked. */
  resets(from: string, to: string): boolean {
    return this.#resets === 'all' || (this.#resets !== undefined && this.#resets.has(`${from}>${to}`));
  }

  /** Directed cuts: nothing from `a` reaches `b`, for each `[a, b]`. */
  cut(pairs: readonly (readonly [string, string])[]): void {
    for (const [a, b] of pairs) this.#cuts.add(`${a}>${b}`);
  }

  /** What `from` sends reaches `to` `extra` ms late (random in the range), until `until`. */
  slow(from: string, to: string, until: number, extra: [number, number]): void {
    this.#slow.set(`${from}>${to}`, { until, extra });
  }

  /** Ends the partition; what it held is retransmitted, in order. */
  heal(): void {
    this.#side = undefined;
    this.#cuts.clear();
    this.#resets = undefined;
    for (const c of this.#conns) {
      for (const dir of [0, 1] as const) {
        const held = c.held[dir].splice(0);
        for (const deliver of held) this.#schedule(c, dir, deliver);
      }
    }
  }

  /** Sends on `c` in direction `dir`; `deliver` runs on the receiving process. */
  send(c: Conn, dir: Dir, deliver: () => void): void {
    if (!c.open) {
      this.dropped++;
      return;
    }
    this.messages++;
    this.#schedule(c, dir, deliver);
  }

  #schedule(c: Conn, dir: Dir, deliver: () => void): void {
    const sender = dir === 0 ? c.from : c.to;
    let extra = 0;
    if (this.#slow.size > 0) {
      const slow = this.#slow.get(`${sender.route}>${(dir === 0 ? c.to : c.from).route}`);
      if (slow !== undefined && slow.until > this.loop.now) extra = this.rng.range(slow.extra[0], slow.extra[1]);
    }
    const at = Math.max(this.loop.now + this.delay() + extra, c.lastAt[dir], c.readyAt + this.delay());
    c.lastAt[dir] = at;
    const receiver = dir === 0 ? c.to : c.from;
    // Arrival is the world's event (the kernel takes the bytes even from a paused process); the
    // receiving process reads them when it runs.
    this.loop.at(at, this.loop.world, () => {
      if (!c.open) {
        this.dropped++;
        return;
      }
      if (this.#resets !== undefined && this.blocked(sender.route, receiver.route) && this.resets(c.from.route, c.to.route)) {
        // A firewall that rejects: the requesting end sees its connection reset, nothing is held.
        this.close(c);
        this.loop.at(this.loop.now, c.from.proc, () => c.from.connectionBroke?.(c.to.id, 50));
        return;
      }
      if (this.#cuts.size > 0 ? this.blocked(sender.route, receiver.route) : this.crossing(c.from.route, c.to.route)) {
        this.held++;
        c.held[dir].push(deliver);
        return;
      }
      this.loop.at(this.loop.now, receiver.proc, deliver);
    });
  }
}
