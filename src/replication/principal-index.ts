/**
 * The principal index as one index holder keeps it: principal → its sessions, soft state. Session
 * owners announce their sessions here (the principal's first two members in ring order hold it);
 * a destroyed or expired session leaves a tombstone, so an older announcement that arrives late never
 * lists it again. Entries end by themselves a while after the expiry they were announced with. Pure:
 * no I/O; the clock is passed in.
 */
import type { IndexItem } from '../codec/messages.js';
import { destroyCovers } from './copies.js';

/**
 * How stale an announced expiry or last access may be: owners re-announce a session when either
 * moved by this much, and holders keep an entry this long past its announced expiry.
 */
export const INDEX_REFRESH_MS = 10_000;

export class PrincipalIndex {
  readonly #byPrincipal = new Map<string, Map<string, IndexItem>>();
  /** Destroyed or expired sessions: base → the epoch it ended at and until when to remember it. */
  readonly #ended = new Map<string, { epoch: number; until: number }>();

  get size(): number {
    let n = 0;
    for (const m of this.#byPrincipal.values()) n += m.size;
    return n;
  }

  /** Applies one announcement; older ones (a lower epoch than what is known) change nothing. */
  apply(item: IndexItem, now: number): void {
    const ended = this.#ended.get(item.base);
    if (ended !== undefined && ended.until > now && ended.epoch >= item.epoch) return;
    const sessions = this.#byPrincipal.get(item.principal);
    const known = sessions?.get(item.base);
    if (known !== undefined && known.epoch > item.epoch) return;
    if (item.kind === 'gone') {
      this.#ended.set(item.base, { epoch: item.epoch, until: Math.max(item.expire, now) + INDEX_REFRESH_MS });
      this.#forget(item.principal, item.base);
      return;
    }
    if (item.kind === 'unlisted') {
      this.#forget(item.principal, item.base);
      return;
    }
    const merged = known === undefined ? item : { ...item, lastAccessAt: Math.max(item.lastAccessAt, known.lastAccessAt) };
    if (sessions === undefined) this.#byPrincipal.set(item.principal, new Map([[item.base, merged]]));
    else sessions.set(item.base, merged);
  }

  /** The sessions listed for `principal` whose announced expiry (give or take a refresh) has not passed. */
  lookup(principal: string, now: number): IndexItem[] {
    const sessions = this.#byPrincipal.get(principal);
    if (sessions === undefined) return [];
    return [...sessions.values()].filter((x) => x.expire + INDEX_REFRESH_MS > now);
  }

  /** Forgets entries and tombstones past their time. */
  prune(now: number): void {
    for (const [principal, sessions] of this.#byPrincipal) {
      for (const [base, x] of sessions) if (x.expire + INDEX_REFRESH_MS <= now) sessions.delete(base);
      if (sessions.size === 0) this.#byPrincipal.delete(principal);
    }
    for (const [base, t] of this.#ended) if (t.until <= now) this.#ended.delete(base);
  }

  #forget(principal: string, base: string): void {
    const sessions = this.#byPrincipal.get(principal);
    if (sessions === undefined) return;
    sessions.delete(base);
    if (sessions.size === 0) this.#byPrincipal.delete(principal);
  }
}

/** Merges the answers of several holders: one item per session, the newest ownership, the latest access. */
export function mergeItems(lists: IndexItem[][]): IndexItem[] {
  const out = new Map<string, IndexItem>();
  for (const list of lists) {
    for (const x of list) {
      if (x.kind !== 'live') continue;
      const known = out.get(x.base);
      if (known === undefined || x.epoch > known.epoch) out.set(x.base, known === undefined ? x : { ...x, lastAccessAt: Math.max(x.lastAccessAt, known.lastAccessAt) });
      else out.set(x.base, { ...known, lastAccessAt: Math.max(x.lastAccessAt, known.lastAccessAt) });
    }
  }
  return [...out.values()];
}

/**
 * `items` without the sessions a destruction known here covers (`destroyedAt(base)`: the epoch of this
 * member's destruction tombstone, if any). Only an ownership of that epoch or older is covered: a logout
 * that failed on one side of a partition leaves a tombstone there while the other side adopts the session
 * under a newer epoch, and that session lives on (a later "log out everywhere" must still end it).
 */
export function notDestroyed(items: readonly IndexItem[], destroyedAt: (base: string) => number | undefined): IndexItem[] {
  return items.filter((x) => {
    const epoch = destroyedAt(x.base);
    return epoch === undefined || !destroyCovers(epoch, x.epoch);
  });
}
