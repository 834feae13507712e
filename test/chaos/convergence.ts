/**
 * Promise 5, as `/cluster/status` shows it: after a fault ends, every live member sees exactly the
 * live members (with their current ids), and the session counts match the live sessions: backup
 * mode, the primaries sum to the live count and the backups to `backups` times that (fewer while
 * fewer members live); delta mode, every member holds
 * every live session once. The live count is a range (see History.liveRange): the check asks for
 * one value inside it, which is all that indeterminate requests let anyone assert.
 */
import type { MemberStatus } from './members.js';

/** Undefined when converged, else why not (for the report). */
export function notConverged(
  mode: 'backup' | 'delta',
  live: readonly { route: string; id: string }[],
  statuses: readonly (MemberStatus | undefined)[],
  range: { min: number; max: number },
  backups = 1,
): string | undefined {
  const want = live
    .map((m) => `${m.route}:${m.id}`)
    .sort()
    .join(',');
  const problems: string[] = [];
  statuses.forEach((s, i) => {
    if (s === undefined) {
      problems.push(`${live[i].route} did not answer /cluster/status`);
      return;
    }
    const sees = s.members
      .map((m) => `${m.route}:${m.id}`)
      .sort()
      .join(',');
    if (sees !== want) problems.push(`${s.route} sees [${s.members.map((m) => m.route).join(',')}]`);
  });
  if (problems.length > 0) return problems.join('; ');
  const all = statuses as MemberStatus[];
  const inRange = (n: number) => n >= range.min && n <= range.max;
  const counts = all.map((s) => `${s.route} ${s.sessions.primary}/${s.sessions.backup}`).join(', ');
  const live_ = range.min === range.max ? `${range.min}` : `${range.min}..${range.max}`;
  if (mode === 'backup') {
    const primary = all.reduce((n, s) => n + s.sessions.primary, 0);
    const backup = all.reduce((n, s) => n + s.sessions.backup, 0);
    const k = Math.min(backups, live.length - 1);
    if (backup !== k * primary || !inRange(primary)) {
      return `${primary} primaries and ${backup} backups (want ${k} per primary) for ${live_} live sessions (primary/backup: ${counts})`;
    }
    return undefined;
  }
  const held = all.map((s) => s.sessions.primary + s.sessions.backup);
  if (!held.every((n) => n === held[0]) || !inRange(held[0])) return `members hold ${held.join(', ')} sessions for ${live_} live sessions (primary/backup: ${counts})`;
  return undefined;
}
