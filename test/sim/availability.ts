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
import type { Call, History, Op } from './history.js';
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

/** The members probes go to: running and ready. */
function readyMembers(w: ProbeWorld): SimMember[] {
  return w.members.filter((m) => m.phase === 'running' && m.proc.state === 'running' && m.ready);
}

/**
 * The sessions a client created that no member is busy with at `at`, each live, or ended: destroyed,
 * or expiring by the end of the probes (read by `probeEnded`).
 */
function createdSessions(w: ProbeWorld, at: number): { base: string; calls: readonly Call[]; ended: boolean }[] {
  const out: { base: string; calls: readonly Call[]; ended: boolean }[] = [];
  for (const [base, calls] of w.history.byBase) {
    const created = calls.some((c) => c.kind === 'set' && c.read === undefined && c.ok === true && c.op.status === 'acked');
    if (!created || w.members.some((x) => x.alive && x.busy.has(base))) continue;
    const ending = w.expiry !== undefined && expiryBounds(calls.filter((c) => c.kind === 'set'), at, w.expiry).soonest <= at + w.bound + w.expiry.slack;
    out.push({ base, calls, ended: ending || calls.some((c) => c.kind === 'destroy') });
  }
  return out;
}

/** Waits until every probe has its answer, or `w.bound` after `at`. */
async function awaitProbes(w: ProbeWorld, ops: readonly [string, Op][], at: number): Promise<void> {
  const deadline = at + w.bound;
  while (w.loop.now < deadline && ops.some(([, op]) => op.clientEnd === undefined)) await w.sleepUntil(Math.min(deadline, w.loop.now + 50));
}

/** Reads every live session at every running member, one member at a time; returns what failed. */
export async function probeAll(w: ProbeWorld, label: string): Promise<{ violations: Violation[]; probes: number }> {
  const out: Violation[] = [];
  let probes = 0;
  for (const m of readyMembers(w)) {
    const at = w.loop.now;
    const ops: [string, Op][] = createdSessions(w, at)
      .filter((x) => !x.ended)
      .map(({ base }) => {
        const owner = readyMembers(w).map((x) => x.manager.table.get(base)).find((e) => e !== undefined && e.role === 'primary')?.owner ?? m.route;
        return [base, w.prober.probe(m, `${base}.${owner}`, w.bound)];
      });
    probes += ops.length;
    await awaitProbes(w, ops, at);
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
  const out: Violation[] = [];
  let probes = 0;
  for (const m of readyMembers(w)) {
    const at = w.loop.now;
    // Each from an address of its own, as its users': from one, the misses spend the lookup budget
    // of unknown ids (src/adapter/lookup-budget.ts), and 503 is then its answer by design.
    const ops: [string, Op][] = createdSessions(w, at)
      .filter((x) => x.ended)
      .map(({ base, calls }, i) => [base, w.prober.probe(m, `${base}.${lastRoute(calls, m.route)}`, w.bound, `10.1.${(i >> 8) & 255}.${i & 255}`)]);
    probes += ops.length;
    await awaitProbes(w, ops, at);
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
