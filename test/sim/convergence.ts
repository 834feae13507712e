/**
 * Promise 5, at a checkpoint (dropTime + 2 s after a fault ended, clients quiet): every session that
 * surely lives has exactly one primary and one backup on the live members (one backup only if there
 * is another member; delta mode: a copy on every member, at most one of them primary); one surely destroyed
 * has no copy; one in doubt (its creation or destroy was not acknowledged) has one of the two.
 * Sessions with a store call still running somewhere are left out (counted).
 */
import { expiryBounds, type ExpiryRules, type Violation } from './checker.js';
import type { History } from './history.js';
import type { SimMember } from './member.js';

export interface ConvergenceResult {
  violations: Violation[];
  checked: number;
  skippedBusy: number;
}

export function checkConvergence(h: History, members: SimMember[], mode: 'backup' | 'delta', at: number, label: string, backups = 1, expiry?: ExpiryRules): ConvergenceResult {
  const live = members.filter((m) => m.phase === 'running' && m.proc.state === 'running');
  const out: ConvergenceResult = { violations: [], checked: 0, skippedBusy: 0 };
  for (const [base, calls] of h.byBase) {
    if (members.some((m) => m.alive && m.busy.has(base))) {
      out.skippedBusy++;
      continue;
    }
    const creationAcked = calls.some((c) => c.kind === 'set' && c.read === undefined && c.ok === true && c.op.status === 'acked');
    const destroyTried = calls.some((c) => c.kind === 'destroy');
    const destroyAcked = calls.some((c) => c.kind === 'destroy' && c.ok === true && c.op.status === 'acked');
    const copies = live.map((m) => ({ m, e: m.manager.table.get(base) })).filter((x) => x.e !== undefined);
    const primaries = copies.filter((x) => x.e!.role === 'primary').length;
    const wantBackups = mode === 'backup' ? Math.min(backups, live.length - 1) : live.length - 1;
    // Delta mode promises a copy on every member; a session whose owner is gone may have no primary
    // until a request takes it over (any member can), but never two.
    const whole = mode === 'backup' ? primaries === 1 && copies.length === 1 + wantBackups : primaries <= 1 && copies.length === live.length;
    const none = copies.length === 0;
    // The expiry profile: a session surely expired counts as destroyed, one that may have as in doubt.
    const ends = expiry === undefined ? undefined : expiryBounds(calls.filter((c) => c.kind === 'set'), at, expiry);
    const expired = ends !== undefined && ends.latest + expiry!.slack < at;
    const mayHaveExpired = ends !== undefined && ends.soonest <= at + expiry!.slack;
    const state = destroyAcked || expired ? 'destroyed' : creationAcked && !destroyTried && !mayHaveExpired ? 'live' : 'in doubt';
    // Copies expire by their member's clock: while a session may have expired, some may be gone already.
    const partial = mayHaveExpired && primaries <= 1 && copies.length <= (mode === 'backup' ? 1 + wantBackups : live.length);
    const ok = state === 'destroyed' ? none : state === 'live' ? whole : none || whole || partial;
    out.checked++;
    if (!ok) {
      const where = copies.map((x) => `${x.m.proc.name}:${x.e!.role}@${x.e!.epoch}v${x.e!.version}${x.e!.unverified === true ? '?' : ''}`).join(' ') || 'nowhere';
      out.violations.push({
        promise: 5,
        at,
        base,
        what: `${label}: ${state} session ${base.slice(0, 6)} has ${primaries} primary, ${copies.length - primaries} backup on ${live.length} live members (${where})`,
      });
    }
  }
  return out;
}
