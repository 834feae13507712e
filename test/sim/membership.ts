/**
 * Membership verdicts as src/cluster/failure-detector.ts gives them, over simulated time: a member is
 * admitted when its heartbeat is heard (within `frequency`) and the connection handshakes; silence
 * for `dropTime` (a pause, a partition) makes it suspect, and a direct check that gets no answer
 * within `checkTimeout` removes it ('failed'); a reset connection (a killed process) is suspected at
 * once and removed as soon as the reconnect is refused; a broken connection to a live member is
 * suspected and cleared by the check; a newer incarnation of a route replaces the old one; a leave
 * removes the member as 'left'. A resumed member hears everyone again and is re-admitted by those
 * who dropped it.
 */
import type { SimChannel } from './channel.js';
import type { SimLoop } from './loop.js';
import type { SimNetwork } from './network.js';
import type { Prng } from './prng.js';

export interface MembershipTiming {
  frequency: number;
  dropTime: number;
  /** The failure detector's sweep interval. */
  tick: number;
  checkTimeout: number;
}

export function timingFor(frequency: number, dropTime: number): MembershipTiming {
  return { frequency, dropTime, tick: Math.max(20, Math.min(100, Math.floor(frequency / 2))), checkTimeout: Math.min(1000, Math.floor(dropTime / 2)) };
}

export class Membership {
  /** The running incarnations (not crashed or stopped), paused ones included. */
  readonly up = new Set<SimChannel>();
  /** When each paused channel resumes (known to the nemesis; used to decide a check's outcome). */
  readonly #pausedUntil = new Map<SimChannel, number>();

  constructor(
    readonly loop: SimLoop,
    readonly net: SimNetwork,
    readonly rng: Prng,
    readonly t: MembershipTiming,
    readonly log: (s: string) => void,
  ) {}

  #rtt(): number {
    return this.net.delay() + this.net.delay();
  }

  /** `observer` hears `member`'s heartbeat within a heartbeat period and admits it after a handshake. */
  #hearLater(observer: SimChannel, member: SimChannel, within = this.t.frequency): void {
    this.loop.after(this.rng.range(0, within) + this.#rtt(), observer.proc, () => this.#hear(observer, member));
  }

  #hear(observer: SimChannel, member: SimChannel): void {
    if (!this.up.has(observer) || !this.up.has(member) || observer.stopped || member.stopped) return;
    if (member.proc.state !== 'running') return; // a paused member sends no heartbeats
    if (this.net.crossing(observer.route, member.route)) return;
    if (observer.has(member.id)) return;
    // A newer incarnation of a route replaces the old one at once.
    for (const m of observer.members()) {
      if (m.route === member.route && m.id !== member.id) {
        this.log(`${observer.route}: ${m.route}#${m.id.slice(0, 4)} replaced by a newer incarnation`);
        observer.remove(m.id, 'failed', { refused: true });
      }
    }
    this.log(`${observer.route}: admits ${member.route}#${member.id.slice(0, 4)}`);
    observer.admit(member.self);
    // Our hello told the member of us: it connects back and admits us a round trip later (the real
    // channel's onHello), not a heartbeat later.
    if (!member.has(observer.id)) this.loop.after(this.#rtt(), member.proc, () => this.#hear(member, observer));
  }

  /** A member started: it and everyone else hear each other. */
  joined(ch: SimChannel): void {
    this.up.add(ch);
    for (const o of this.up) {
      if (o === ch) continue;
      this.#hearLater(o, ch);
      this.#hearLater(ch, o);
    }
  }

  /** Killed: every connection to it is reset; peers notice at once. */
  crashed(ch: SimChannel): void {
    this.up.delete(ch);
    for (const o of this.up) {
      const rst = this.net.delay();
      this.loop.after(rst, o.proc, () => {
        if (o.connectedTo(ch.id)) o.connectionBroke(ch.id, 50);
        if (!o.has(ch.id)) return;
        o.suspect(ch.id);
        // The check's reconnect is refused at once.
        this.loop.after(this.rng.range(0.2, 3), o.proc, () => {
          if (o.stateOf(ch.id) === 'suspect') {
            this.log(`${o.route}: removes ${ch.route}#${ch.id.slice(0, 4)} (connection refused)`);
            o.remove(ch.id, 'failed', { refused: true });
          }
        });
      });
    }
  }

  /** After a graceful stop: whoever missed the leave sees the receiver closed. */
  stopped(ch: SimChannel): void {
    this.crashed(ch);
  }

  /** Silence of `member` as heard by `observer`, starting now: suspicion, then a check. */
  #silence(observer: SimChannel, member: SimChannel, stillSilent: () => boolean): void {
    const lastHeard = this.loop.now - this.rng.range(0, this.t.frequency);
    const suspectAt = lastHeard + this.t.dropTime + this.rng.range(0, this.t.tick);
    this.loop.at(suspectAt, observer.proc, () => {
      if (!stillSilent() || observer.stateOf(member.id) !== 'alive') return;
      this.log(`${observer.route}: suspects ${member.route}#${member.id.slice(0, 4)} (silent)`);
      observer.suspect(member.id);
      const checkEnd = this.loop.now + this.t.checkTimeout;
      this.loop.at(checkEnd, observer.proc, () => {
        if (observer.stateOf(member.id) !== 'suspect') return;
        if (stillSilent()) {
          this.log(`${observer.route}: removes ${member.route}#${member.id.slice(0, 4)} (direct check failed)`);
          observer.remove(member.id, 'failed', { refused: false });
        } else observer.clear(member.id);
      });
    });
  }

  /** A pause of `ch` for `ms`: the others suspect and drop it if it lasts past dropTime + check. */
  paused(ch: SimChannel, ms: number): void {
    const until = this.loop.now + ms;
    this.#pausedUntil.set(ch, until);
    for (const o of this.up) {
      if (o === ch || !o.has(ch.id)) continue;
      // The check's ping is answered once the process runs again (plus a round trip).
      this.#silence(o, ch, () => this.loop.now < until + 2);
    }
  }

  /** `ch` runs again: its own detector finds everyone silent (checks pass), the others re-admit it. */
  resumed(ch: SimChannel, pausedFor: number): void {
    this.#pausedUntil.delete(ch);
    for (const o of this.up) {
      if (o === ch) continue;
      if (pausedFor > this.t.dropTime && ch.has(o.id)) {
        this.loop.after(this.rng.range(0, this.t.tick), ch.proc, () => {
          if (ch.stateOf(o.id) !== 'alive') return;
          ch.suspect(o.id);
          this.loop.after(this.#rtt(), ch.proc, () => ch.stateOf(o.id) === 'suspect' && ch.clear(o.id));
        });
      }
      if (!o.has(ch.id)) this.#hearLater(o, ch);
      else if (o.stateOf(ch.id) === 'suspect') this.loop.after(this.#rtt(), o.proc, () => o.stateOf(ch.id) === 'suspect' && o.clear(ch.id));
    }
  }

  /** A partition: each side drops the other after dropTime + check. */
  partitioned(side: Map<string, number>): void {
    this.net.partition(side);
    for (const a of this.up) {
      for (const b of this.up) {
        if (a === b || !this.net.crossing(a.route, b.route) || !a.has(b.id)) continue;
        this.#silence(a, b, () => this.net.crossing(a.route, b.route));
      }
    }
  }

  /**
   * Directed cuts (`[a, b]`: nothing from a reaches b): b stops hearing a's heartbeats, suspects it,
   * and its direct check (a connect whose answer cannot come back) fails. a goes on hearing b.
   */
  cut(pairs: readonly (readonly [SimChannel, SimChannel])[]): void {
    this.net.cut(pairs.map(([a, b]) => [a.route, b.route] as const));
    for (const [a, b] of pairs) {
      if (!this.up.has(a) || !this.up.has(b) || !b.has(a.id)) continue;
      this.#silence(b, a, () => this.net.blocked(a.route, b.route));
    }
  }

  /**
   * A partition behind firewalls that reject: each side's connections across are reset at once, and
   * the direct check is refused, exactly as for a killed process (the failure detector cannot tell).
   * With `resets`, only the connections named (`a>b`) are reset; across the others a member meets
   * silence (a firewall on the far side rejects toward it, or drops), and drops its peer after dropTime.
   */
  resetPartitioned(side: Map<string, number>, resets?: ReadonlySet<string>): void {
    this.net.partition(side, resets ?? true);
    for (const a of this.up) {
      for (const b of this.up) {
        if (a === b || !this.net.crossing(a.route, b.route) || !a.has(b.id)) continue;
        // Where a's connection to b is not reset, a meets silence: it drops b after dropTime + check.
        if (!this.net.resets(a.route, b.route)) {
          this.#silence(a, b, () => this.net.crossing(a.route, b.route));
          continue;
        }
        this.loop.after(this.net.delay(), a.proc, () => {
          if (a.connectedTo(b.id)) a.connectionBroke(b.id, 50);
          if (!a.has(b.id) || !this.net.crossing(a.route, b.route)) return;
          a.suspect(b.id);
          this.loop.after(this.rng.range(0.2, 3), a.proc, () => {
            if (a.stateOf(b.id) === 'suspect' && this.net.crossing(a.route, b.route)) {
              this.log(`${a.route}: removes ${b.route}#${b.id.slice(0, 4)} (connection refused by a firewall)`);
              a.remove(b.id, 'failed', { refused: true });
            }
          });
        });
      }
    }
  }

  healed(): void {
    this.net.heal();
    for (const a of this.up) {
      for (const b of this.up) {
        if (a === b) continue;
        if (!a.has(b.id)) this.#hearLater(a, b);
        else if (a.stateOf(b.id) === 'suspect') this.loop.after(this.#rtt(), a.proc, () => a.stateOf(b.id) === 'suspect' && a.clear(b.id));
      }
    }
  }

  /** A connection reset between two live members: suspected, and the check (a reconnect) passes. */
  connectionReset(a: SimChannel, b: SimChannel): void {
    if (!a.connectedTo(b.id)) return;
    a.connectionBroke(b.id, 50);
    if (a.stateOf(b.id) !== 'alive') return;
    a.suspect(b.id);
    this.loop.after(50 + this.#rtt(), a.proc, () => {
      if (a.stateOf(b.id) !== 'suspect') return;
      if (this.up.has(b) && !this.net.crossing(a.route, b.route) && b.proc.state === 'running') a.clear(b.id);
    });
  }
}
