/**
 * The promises of DESIGN.md "Promises under faults", checked against a history. Each check only
 * flags what a correct store could not have answered, given what the clients did and when:
 *
 * 1 lost write: a read began after a write of key k was acknowledged, yet shows a value of k that was
 *   written (or removed) only by calls that ended before that write began.
 * 2 resurrection: a read began after a destroy was acknowledged and found the session.
 * 3 false "no session": a read answered "no session" for a session whose creation was acknowledged
 *   before it began and that no request had tried to destroy by the time it ended.
 * 4 phantom: a value that no request ever tried to write.
 * 5 convergence: checked at the checkpoints (convergence.ts), recorded as violations there.
 * 6 two owners: two members accepted writes at the same ownership epoch, or a member accepted a
 *   write begun after another member had accepted one at a higher epoch.
 */
import { ABSENT, effects, endedBefore, same, type Call, type History, type SessionValue } from './history.js';
import { SIM_EPOCH } from './loop.js';

export interface Violation {
  promise: 1 | 2 | 3 | 4 | 5 | 6;
  at: number;
  base: string;
  what: string;
  /** The oracle that found it (features.ts), when not the original history or convergence check. */
  oracle?: string;
}

const short = (b: string) => b.slice(0, 6);
const routeOf = (member: string) => member.split('#')[0];
const secs = (t: number) => `${((t - SIM_EPOCH) / 1000).toFixed(3)}s`;
const show = (v: unknown) => (v === ABSENT ? 'absent' : JSON.stringify(v));

function ackedAt(c: Call): number | undefined {
  return c.ok === true && c.op.status === 'acked' ? c.op.clientEnd : undefined;
}

/**
 * With `ack: 'async'` a write is answered before its backup has it, so a crash may lose the writes
 * acknowledged shortly before it (DESIGN.md allows it): `crashes` (member → time) and `window` (ms)
 * exempt those from promises 1 and 3.
 */
export interface AsyncAllowance {
  crashes: Map<string, number>;
  window: number;
}

/**
 * The expiry profile (features.ts `expiry`): sessions end `maxAge` after their last write (every write
 * sets `_expire`) or `absoluteMaxAge` after their creation. `slack` covers the members' clock offsets
 * and the simulated network's hops.
 */
export interface ExpiryRules {
  absoluteMaxAge: number | undefined;
  slack: number;
}

export interface CheckOptions {
  allowance?: AsyncAllowance;
  /** A failed write's value may be read only by reads begun before its failure was answered. */
  lifetime?: boolean;
  expiry?: ExpiryRules;
}

/** When a session may end at the earliest (`soonest`) and at the latest (`latest`), as of `t`. */
export function expiryBounds(sets: readonly Call[], t: number, rules: ExpiryRules): { soonest: number; latest: number } {
  const creation = sets.find((c) => c.read === undefined);
  const absolute = creation === undefined || rules.absoluteMaxAge === undefined ? Infinity : creation.inv + rules.absoluteMaxAge;
  let soonest = -Infinity;
  let latest = -Infinity;
  for (const c of sets) {
    if (c.expire === undefined || c.inv > t) continue;
    latest = Math.max(latest, c.expire);
    const ack = ackedAt(c);
    if (ack !== undefined && ack <= t) soonest = Math.max(soonest, c.expire);
  }
  return { soonest: Math.min(soonest, absolute), latest: Math.min(latest, absolute) };
}

export function check(h: History, options: CheckOptions = {}): Violation[] {
  const allowance = options.allowance;
  const rules = options.expiry;
  const out: Violation[] = [];
  const mayBeLost = (c: Call): boolean => {
    if (allowance === undefined) return false;
    const crash = allowance.crashes.get(c.member);
    const ack = ackedAt(c);
    return crash !== undefined && ack !== undefined && crash >= ack && crash - ack <= allowance.window;
  };
  for (const [base, calls] of h.byBase) {
    const sets = calls.filter((c) => c.kind === 'set');
    const destroys = calls.filter((c) => c.kind === 'destroy');
    const gets = calls.filter((c) => c.kind === 'get' && c.ok === true);
    const creations = sets.filter((c) => c.read === undefined);
    const created = creations.filter((c) => !mayBeLost(c)).map(ackedAt).filter((t): t is number => t !== undefined);
    const createdAt = created.length === 0 ? undefined : Math.min(...created);
    const destroyedAt = destroys.map(ackedAt).filter((t): t is number => t !== undefined);
    const firstDestroyAck = destroyedAt.length === 0 ? undefined : Math.min(...destroyedAt);
    const effs = new Map(sets.map((s) => [s, effects(s)]));
    /** The sets that could have produced `k` = `observed` in a read. */
    const writersOf = (k: string, observed: unknown): Call[] =>
      sets.filter((x) => {
        const e = effs.get(x)!;
        if (e.has(k)) return e.get(k) === ABSENT ? observed === ABSENT : observed !== ABSENT && same(e.get(k), observed);
        return x.read === undefined && observed === ABSENT; // a new session without k
      });
    const valueIn = (r: SessionValue, k: string): unknown => (Object.hasOwn(r, k) ? r[k] : ABSENT);
    /**
     * A write that failed with an answer may take effect only within its lifetime: `x` (failed) is no
     * source of what `g` read if a read `h`, begun after `x` failed and ended before `g` began, saw an
     * older value of `k` (written only by calls that ended before `x` began): `x` had not taken effect
     * by then, so it never may.
     */
    const cameBack = (x: Call, g: Call, k: string): Call | undefined => {
      if (x.ok !== false || !endedBefore(x, g)) return undefined;
      return gets.find((h) => {
        if (h.result === null || h.result === undefined || !endedBefore(x, h) || !endedBefore(h, g)) return false;
        const seen = valueIn(h.result, k);
        const ws = writersOf(k, seen);
        return ws.length > 0 && !ws.includes(x) && ws.every((w) => endedBefore(w, x));
      });
    };

    for (const g of gets) {
      const endG = g.end ?? Infinity;
      if (g.result === null) {
        // 3: "no session" while it surely existed.
        // Calls of one simulated instant are ordered by their sequence (a paused member runs a queued
        // regenerate's destroy and then a queued read, both at the instant it resumes).
        const tried = destroys.some((d) => d.inv < endG || (d.inv === endG && d.invSeq < (g.endSeq ?? Infinity)));
        // Expired (or may have, given the clocks) by the time the read ended: "no session" is right.
        const expired = rules !== undefined && expiryBounds(sets, g.inv, rules).soonest <= endG + rules.slack;
        if (createdAt !== undefined && createdAt < g.inv && !tried && !expired) {
          out.push({ promise: 3, at: g.inv, base, what: `get (request #${g.op.id}) on ${g.member} answered "no session" for ${short(base)}, created and acknowledged at ${secs(createdAt)}, never destroyed` });
        }
        continue;
      }
      const s = g.result!;
      // 2: found after an acknowledged destroy.
      if (firstDestroyAck !== undefined && firstDestroyAck < g.inv) {
        out.push({ promise: 2, at: g.inv, base, what: `get (request #${g.op.id}) on ${g.member} found ${short(base)} (n=${show(s.n)}) after its destroy was acknowledged at ${secs(firstDestroyAck)}` });
      }
      // 2: found after it surely expired (every write that may have applied had set an earlier end).
      if (rules !== undefined) {
        const { latest } = expiryBounds(sets, endG, rules);
        if (latest + rules.slack < g.inv) {
          out.push({ promise: 2, oracle: 'expiry', at: g.inv, base, what: `get (request #${g.op.id}) on ${g.member} found ${short(base)} (n=${show(s.n)}) after it expired at ${secs(latest)} at the latest` });
        }
      }
      for (const k of new Set([...Object.keys(s), 'n', 't', 'x'])) {
        const observed = Object.hasOwn(s, k) ? s[k] : ABSENT;
        // Calls that could have produced what we see.
        let back: [Call, Call] | undefined;
        const cands = writersOf(k, observed).filter((x) => {
          const h = options.lifetime === true ? cameBack(x, g, k) : undefined;
          if (h !== undefined) back = [x, h];
          return h === undefined;
        });
        if (cands.length === 0) {
          if (observed !== ABSENT || sets.some((x) => effs.get(x)!.has(k))) {
            out.push(
              back === undefined
                ? { promise: 4, at: g.inv, base, what: `get (request #${g.op.id}) on ${g.member} read ${k}=${show(observed)} in ${short(base)}, which no request wrote` }
                : { promise: 4, oracle: 'lifetime', at: g.inv, base, what: `get (request #${g.op.id}) on ${g.member} read ${k}=${show(observed)} in ${short(base)}, written only by set (request #${back[0].op.id}) on ${back[0].member}, which failed (${back[0].code ?? '?'}) at ${secs(back[0].end!)}; get (request #${back[1].op.id}) on ${back[1].member}, begun after, read the older ${k}=${show(valueIn(back[1].result!, k))}` },
            );
          }
          continue;
        }
        // 1: an acknowledged write of k, finished before this read began, that every candidate precedes.
        for (const y of sets) {
          const ack = ackedAt(y);
          if (ack === undefined || ack >= g.inv || !effs.get(y)!.has(k) || mayBeLost(y)) continue;
          const ey = effs.get(y)!.get(k);
          if (ey === ABSENT ? observed === ABSENT : observed !== ABSENT && same(ey, observed)) continue;
          const newer = cands.some((x) => x === y || !endedBefore(x, y));
          if (!newer) {
            out.push({
              promise: 1,
              at: g.inv,
              base,
              what: `get (request #${g.op.id}) on ${g.member} read ${k}=${show(observed)} in ${short(base)}, but set (request #${y.op.id}) (${k}=${show(ey)}) on ${y.member} was acknowledged at ${secs(ack)}; every write of the value read ended before it began`,
            });
            break;
          }
        }
      }
    }

    // 6: one owner per epoch, and no accepted write at a lower epoch after a higher one.
    const accepted = sets.filter((c) => c.ok === true && c.epoch !== undefined);
    for (const a of accepted) {
      for (const b of accepted) {
        // Incarnations of one route (a restart) never run at once, and epochs are per route: only
        // different routes can be two owners.
        if (a === b || routeOf(a.member) === routeOf(b.member)) continue;
        if (a.epoch === b.epoch && a.id < b.id) {
          out.push({ promise: 6, at: Math.max(a.end!, b.end!), base, what: `${a.member} (request #${a.op.id}) and ${b.member} (request #${b.op.id}) both accepted writes to ${short(base)} at epoch ${a.epoch}` });
        } else if (endedBefore(a, b) && b.epoch! < a.epoch!) {
          // A write begun after another member's write at a higher epoch completed, yet accepted at a
          // lower one: the stale owner was not fenced. (One begun earlier may have been applied before
          // the takeover and only answered late: not flagged.)
          out.push({ promise: 6, at: b.end!, base, what: `${b.member} accepted a write (request #${b.op.id}) to ${short(base)} at epoch ${b.epoch}, begun after ${a.member} had accepted request #${a.op.id} at epoch ${a.epoch}` });
        }
      }
    }
  }
  return out.sort((x, y) => x.at - y.at);
}
