/**
 * The routes of a session's backups, as its entry keeps them: one string, the routes joined by commas
 * (routes never contain one), interned. With one backup (the default) that is the route itself, as
 * before; with `backups: k`, one string per combination in use (few), and no array per session.
 */
const lists = new Map<string, readonly string[]>();
const joined = new Map<string, string>();
const NONE: readonly string[] = Object.freeze([]);

/** The routes in `backup` (an entry's `backup` field). */
export function backupList(backup: string | undefined): readonly string[] {
  if (backup === undefined || backup === '') return NONE;
  let list = lists.get(backup);
  if (list === undefined) {
    list = Object.freeze(backup.split(','));
    // Combinations of a few dozen routes at most; bounded in case of a bug upstream.
    if (lists.size < 4096) lists.set(backup, list);
  }
  return list;
}

/** The `backup` field for `routes` (undefined for none). */
export function joinBackups(routes: readonly string[]): string | undefined {
  if (routes.length === 0) return undefined;
  const key = routes.join(',');
  const known = joined.get(key);
  if (known !== undefined) return known;
  if (joined.size < 4096) joined.set(key, key);
  return key;
}

/** Whether `backup` names `route`. */
export function holdsBackup(backup: string | undefined, route: string): boolean {
  return backup !== undefined && (backup === route || backupList(backup).includes(route));
}

/** Whether two backup fields name the same routes, in any order. */
export function sameBackups(a: string | undefined, b: readonly string[]): boolean {
  const list = backupList(a);
  return list.length === b.length && b.every((r) => list.includes(r));
}
