/**
 * What the sessions held here amount to: how many as primary, as copies, and how many have only one
 * live copy (what re-protection still owes after a member was lost). Read-only and pure (no I/O,
 * nothing changed), for the status page and metrics.
 */
import { backupList } from './backups.js';
import type { SessionEntry } from './session-table.js';

/** The session counts of one member's status. */
export interface Census {
  primary: number;
  backup: number;
  /** Sessions held here that have one live copy (this member's), counted once across the cluster. */
  unprotected: number;
  /**
   * Sessions held here with fewer than `backups` + 1 copies on live members (re-protection still owes
   * them copies, or fewer members live than the copies asked for). Backup mode; delta: as unprotected.
   */
  underReplicated: number;
}

/**
 * Counts the entries not expired at `now`, in one pass over the table (the status page and the
 * bench poll it while 100k sessions are re-protected: two walks, one through a generator, were a
 * fifth of the primary's CPU then). A session has one live copy when:
 *
 * - `backup` mode: this member is its primary and its acknowledged backup is missing or not a live
 *   member (re-protection copies it to a new backup), or this member holds a copy for an owner that
 *   is not live (the lost primary's sessions, until this member adopts them and gives them a backup).
 *   In backup mode a session has at most two copies, so a lost owner's session has one surviving
 *   copy and is counted by that member only.
 * - `delta` mode: every live member holds every session, so a session has one copy only while this
 *   member sees no other live member; then every session held here counts.
 *
 * `live` is the routes of the live members, self included or not.
 */
export function census(
  mode: 'backup' | 'delta',
  self: string,
  entries: Iterable<Pick<SessionEntry, 'role' | 'owner' | 'backup' | 'expire'>>,
  live: Iterable<string>,
  now: number,
  backups = 1,
): Census {
  const alive = new Set(live);
  alive.add(self);
  const alone = alive.size === 1;
  let primary = 0;
  let backup = 0;
  let unprotected = 0;
  let under = 0;
  for (const e of entries) {
    if (e.expire <= now) continue;
    if (e.role === 'primary') primary++;
    else backup++;
    if (mode === 'delta') {
      if (alone) unprotected++;
    } else if (e.role === 'primary' && e.owner === self) {
      let copies = 0;
      for (const r of backupList(e.backup)) if (r !== self && alive.has(r)) copies++;
      if (copies === 0) unprotected++;
      if (copies < backups) under++;
    } else if (!alive.has(e.owner)) {
      unprotected++;
      under++;
    }
  }
  return { primary, backup, unprotected, underReplicated: mode === 'delta' ? unprotected : under };
}
