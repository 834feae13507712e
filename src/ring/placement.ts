/**
 * Where a session's copies go: `k` backups besides its primary, chosen in the ring's order for the
 * session's base, spread over as many distinct zones as there are before two copies share one (the
 * primary's zone counts as taken). Any member computes the same answer from the same view, so no
 * location is ever sent. A member that names no zone is a zone of its own.
 *
 *   ring order for base:  d(z2) b(z1) e(z3) c(z2) f(z1)      primary a(z1), k = 2
 *   first pass, new zones: d(z2), e(z3)                      → backups d, e
 *   (k = 3: the second pass takes the ring's next, b)         → backups d, e, b
 *
 * Pure: no I/O.
 */
import { owners } from './rendezvous.js';

/** A member as placement sees it. */
export interface Placed {
  route: string;
  /** Its failure domain, if it names one. */
  zone?: string;
}

/**
 * The routes that hold `base`'s `k` backups, best first: never `primary`, never more than the members
 * there are; distinct zones first, then the ring's order. `members` may include the primary.
 */
export function backupsFor(base: string, primary: Placed, members: readonly Placed[], k: number): string[] {
  const byRoute = new Map(members.filter((m) => m.route !== primary.route).map((m) => [m.route, m]));
  const order = owners(base, [...byRoute.keys()]);
  if (k <= 0) return [];
  // One zone per member that names none: it shares a failure domain with nobody.
  const zoneOf = (m: Placed) => m.zone ?? `\0${m.route}`;
  const used = new Set([zoneOf(primary)]);
  const chosen: string[] = [];
  for (const route of order) {
    if (chosen.length >= k) break;
    const zone = zoneOf(byRoute.get(route)!);
    if (used.has(zone)) continue;
    used.add(zone);
    chosen.push(route);
  }
  for (const route of order) {
    if (chosen.length >= k) break;
    if (!chosen.includes(route)) chosen.push(route);
  }
  return chosen;
}
