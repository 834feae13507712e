/**
 * Promise 5 per session, at quiet points: every member's copies (`GET /chaos/copies`) compared session
 * by session, not as summed counts. Pure: the nemesis polls, this judges.
 *
 * Backup mode: each live session has `backups` + 1 copies (fewer only while fewer members live), one
 * of them the primary, on the member every copy names as owner; the primary names exactly the other
 * holders as its backups; every copy has the same epoch, owner, version and bytes; none is unverified.
 * Delta mode: every live member holds every session, with the same values (versions may differ: a
 * failed write burns its version on the owner alone, and the next write resyncs), and a copy held as
 * primary is on the member it names as owner (delta takes over lazily: the owner may be gone).
 * (What issue 24 asks of the simulator's quiet checkpoints.)
 * And every session the clients know to be live (acknowledged, untouched since) is held somewhere.
 */
import type { ChaosCopy } from './member-cluster.js';
import type { MemberCopies } from './members.js';

export interface CopyCheck {
  /** Sessions whose copies disagree, each with why (empty: every copy agrees). */
  problems: string[];
  /** Sessions compared. */
  sessions: number;
}

const brief = (route: string, c: ChaosCopy) =>
  `${route}:${c.role === 'primary' ? 'P' : 'B'} e${c.epoch} ${c.owner} v${c.version} ${c.content.slice(0, 4)}${c.role === 'primary' ? ` [${c.backup}]` : ''}${c.unverified ? ' unverified' : ''}`;

/** Compares the copies of every session across `members` (one answer per live member). */
export function checkCopies(
  mode: 'backup' | 'delta',
  backups: number,
  members: readonly MemberCopies[],
  mustExist: Iterable<string> = [],
  /** Whether the live members make a majority: without one nothing is re-protected or verified, by design. */
  majority = true,
): CopyCheck {
  const byBase = new Map<string, { route: string; copy: ChaosCopy }[]>();
  for (const m of members) for (const copy of m.copies) byBase.set(copy.base, [...(byBase.get(copy.base) ?? []), { route: m.route, copy }]);
  const live = members.map((m) => m.route);
  const want = mode === 'delta' ? live.length : Math.min(backups + 1, live.length);
  const problems: string[] = [];
  for (const [base, held] of byBase) {
    const why: string[] = [];
    const first = held[0].copy;
    if (majority && held.length !== want) why.push(`${held.length} copies, want ${want}`);
    // Delta mode burns a failed write's version on the owner alone (the next write resyncs): only values must agree.
    const same = (c: ChaosCopy) =>
      c.content === first.content && (mode === 'delta' || (c.epoch === first.epoch && c.owner === first.owner && c.version === first.version));
    if (!held.every(({ copy }) => same(copy))) why.push(mode === 'delta' ? 'values differ' : 'copies differ');
    const primaries = held.filter(({ copy }) => copy.role === 'primary');
    if (primaries.some(({ route, copy }) => route !== copy.owner)) why.push('a primary not on the owner');
    if (mode === 'backup' && majority) {
      if (primaries.length !== 1) why.push(`${primaries.length} primaries`);
      else {
        const named = primaries[0].copy.backup.split(',').filter((r) => r !== '').sort().join(',');
        const others = held.filter(({ copy }) => copy.role !== 'primary').map(({ route }) => route).sort().join(',');
        if (named !== others) why.push(`the primary names backups [${named}], held by [${others}]`);
      }
    }
    if (majority && held.some(({ copy }) => copy.unverified)) why.push('unverified copy');
    if (why.length > 0) problems.push(`${base.slice(0, 6)}: ${why.join(', ')} (${held.map(({ route, copy }) => brief(route, copy)).join('; ')})`);
  }
  for (const base of mustExist) if (!byBase.has(base)) problems.push(`${base.slice(0, 6)}: live (acknowledged, untouched since) but held by no member`);
  return { problems, sessions: byBase.size };
}

/** Where each session's copies are (base to the routes holding one), from every member's answer. */
export function placement(members: readonly MemberCopies[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of members) for (const c of m.copies) out.set(c.base, [...(out.get(c.base) ?? []), m.route]);
  return out;
}
