/**
 * Availability (oracle `availability`): once the cluster is quiet (a checkpoint), every live session is
 * readable at every running member within a bound: a read through the route binder and the store, as
 * a client's, recorded in the history (so promises 1-4 judge it too). "Unavailable", an error or no
 * answer within the bound fails, as does a store call still running long after it began: a call that
 * never finishes is a hung request, not a busy session.
 *
 * Oracle `definite`: once quiet with every seat running, a session that has ended (destroyed, expired,
 * or about to) gets a definite answer at every member, its content or "no session", never 503: with
 * every member answering, nothing is left to wait for, and a 503 there repeats at every request. A
 * member whose surveys of the others timed out while it was probed is excused that checkpoint.
 */
import { expiryBounds, type ExpiryRules, type Violation } from './checker.js';
import type { Client } from './clients.js';
import type { History, Op } from './history.js';
import type { SimLoop } from './loop.js';
import type { SimMember } from './member.js';

export interface ProbeWorld {
  loop: SimLoop;
  history: History;
  prober: Client;
  members: readonly SimMember[];
  /** How long a probe may take. */
  bound: number;
  /** A store call running longer than this at a checkpoint is hung. */
  hung: number;
  expiry: ExpiryRules | undefined;
  sleepUntil(t: number): Promise<void>;
  /** Whether a survey `m` sent (locate, fetch) timed out at `t` or later: it could not ask every member then. */
  timedOutSince(m: SimMember, t: number): boolean;
}

/** Store calls running at `at` on a member that is alive, begun more than `w.hung` ago. */
export function hungCalls(w: Pick<ProbeWorld, 'history' | 'members' | 'hung'>, at: number, label: string): Violation[] {
  const out: Violation[] = [];
  for (const c of w.history.calls) {
    if (c.end !== undefined || c.inv > at - w.hung) continue;
    const m = w.members.find((x) => x.proc.name === c.member);
    if (m === undefined || !m.alive || m.proc.state === 'dead') continue;
    out.push({ promise: 3, oracle: 'availability', at, base: c.base, what: `${label}: store ${c.kind} (request #${c.op.id}) on ${c.member} begun at ${((c.inv - at) / 1000).toFixed(1)} s has not finished` });
  }
  return out;
}

/** Reads every live session at every running member, one member at a time; returns what failed. */
export async function probeAll(w: ProbeWorld, label: string): Promise<{ violations: Violation[]; probes: number }> {
  const { loop, history } = w;
  const out: Violation[] = [];
  let probes = 0;
  const live = () => w.members.filter((m) => m.phase === 'running' && m.proc.state === 'running' && m.ready);
  for (const m of live()) {
    const at = loop.now;
    const bases: string[] = [];
    for (const [base, calls] of history.byBase) {
      const created = calls.some((c) => c.kind === 'set' && c.read === undefined && c.ok === true && c.op.status === 'acked');
      if (!created || calls.some((c) => c.kind === 'destroy')) continue;
      if (w.members.some((x) => x.alive && x.busy.has(base))) continue;
      if (w.expiry !== undefined && expiryBounds(calls.filter((c) => c.kind === 'set'), at, w.expiry).soonest <= at + w.bound + w.expiry.slack) continue;
      bases.push(base);
    }
    const ops: [string, Op][] = bases.map((base) => {
      const owner = live().map((x) => x.manager.table.get(base)).find((e) => e !== undefined && e.role === 'primary')?.owner ?? m.route;
      return [base, w.prober.probe(m, `${base}.${owner}`, w.bound)];
    });
    probes += ops.length;
    const deadline = at + w.bound;
    while (loop.now < deadline && ops.some(([, op]) => op.clientEnd === undefined)) await w.sleepUntil(Math.min(deadline, loop.now + 50));
    for (const [base, op] of ops) {
      const get = op.calls.find((c) => c.kind === 'get');
      const found = op.status === 'acked' && get?.result !== null && get?.result !== undefined;
      if (found) continue;
      const why = op.clientEnd === undefined || op.status === 'abandoned' ? `no answer within ${w.bound} ms` : op.status === 'no-session' || get?.result === null ? '"no session"' : op.status;
      out.push({ promise: 3, oracle: 'availability', at, base, what: `${label}: live session ${base.slice(0, 6)} not readable at ${m.proc.name} once quiet (request #${op.id}): ${why}` });
    }
  }
  return { violations: out, probes };
}

/** The member a client's cookie for `base` names: the one that last answered a call on it. */
function lastRoute(calls: readonly { member: string; inv: number }[], fallback: string): string {
  const last = calls.reduce<{ member: string; inv: number } | undefined>((a, c) => (a === undefined || c.inv >= a.inv ? c : a), undefined);
  return last === undefined ? fallback : last.member.split('#')[0];
}

/**
 * Reads every created session that `probeAll` leaves out (destroyed, expired or about to expire) at
 * every running member: its content or "no session" pass; "unavailable", an error or no answer fails.
 */
export async function probeEnded(w: ProbeWorld, label: string): Promise<{ violations: Violation[]; probes: number }> {
  const { loop, history } = w;
  const out: Violation[] = [];
  let probes = 0;
  for (const m of w.members.filter((x) => x.phase === 'running' && x.proc.state === 'running' && x.ready)) {
    const at = loop.now;
    const ops: [string, Op][] = [];
    for (const [base, calls] of history.byBase) {
      const created = calls.some((c) => c.kind === 'set' && c.read === undefined && c.ok === true && c.op.status === 'acked');
      if (!created || w.members.some((x) => x.alive && x.busy.has(base))) continue;
      const destroyed = calls.some((c) => c.kind === 'destroy');
      const ending = w.expiry !== undefined && expiryBounds(calls.filter((c) => c.kind === 'set'), at, w.expiry).soonest <= at + w.bound + w.expiry.slack;
      if (!destroyed && !ending) continue; // probeAll's
      // Each from an address of its own, as its users': from one, the misses spend the lookup budget
      // of unknown ids (src/adapter/lookup-budget.ts), and 503 is then its answer by design.
      ops.push([base, w.prober.probe(m, `${base}.${lastRoute(calls, m.route)}`, w.bound, `10.1.${(ops.length >> 8) & 255}.${ops.length & 255}`)]);
    }
    probes += ops.length;
    const deadline = at + w.bound;
    while (loop.now < deadline && ops.some(([, op]) => op.clientEnd === undefined)) await w.sleepUntil(Math.min(deadline, loop.now + 50));
    // A survey of that member that timed out meanwhile (behind a state transfer on a slow link, with
    // an `ackTimeout` of 230 ms: delta seeds 7376, 13079) means a member did not answer it: 503 is then
    // the answer by design. A 503 that outlives the fault shows at a later checkpoint.
    const excused = w.timedOutSince(m, at);
    for (const [base, op] of ops) {
      if (op.status === 'acked' || op.status === 'no-session' || excused) continue;
      const why = op.clientEnd === undefined || op.status === 'abandoned' ? `no answer within ${w.bound} ms` : op.status;
      out.push({ promise: 3, oracle: 'definite', at, base, what: `${label}: ended session ${base.slice(0, 6)} got no definite answer at ${m.proc.name} once quiet (request #${op.id}): ${why}` });
    }
  }
  return { violations: out, probes };
}
