/**
 * How many sessions held here have only one live copy: what re-protection is still owed after a
 * member was lost. Read-only and pure (no I/O, nothing changed), for the status page and metrics.
 */
import type { SessionEntry } from './session-table.js';

/**
 * The sessions held here that have one live copy (this member's), counted once across the cluster:
 *
 * - `backup` mode: sessions this member is primary of whose acknowledged backup is missing or not a
 *   live member (re-protection copies them to a new backup), plus copies held here for an owner that
 *   is not live (the lost primary's sessions, until this member adopts them and gives them a backup).
 *   In backup mode a session has at most two copies, so a lost owner's session has one surviving
 *   copy and is counted by that member only.
 * - `delta` mode: every live member holds every session, so a session has one copy only while this
 *   member sees no other live member; then every session held here counts.
 *
 * `live` is the routes of the live members, self included.
 */
export function unprotectedCount(
  mode: 'backup' | 'delta',
  self: string,
  entries: Iterable<Pick<SessionEntry, 'role' | 'owner' | 'backup'>>,
  live: Iterable<string>,
): number {
  const alive = new Set(live);
  alive.add(self);
  let n = 0;
  if (mode === 'delta') {
    if (alive.size > 1) return 0;
    for (const _ of entries) n++;
    return n;
  }
  for (const e of entries) {
    if (e.role === 'primary' && e.owner === self) {
      if (e.backup === undefined || e.backup === self || !alive.has(e.backup)) n++;
    } else if (!alive.has(e.owner)) n++;
  }
  return n;
}
