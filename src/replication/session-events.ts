/**
 * The cluster-wide session events and the rule that makes each fire on one member: the member owning
 * the session at that moment. An expiry with no request is noticed by each copy's own sweep; only the
 * owner's fires, unless the owner is gone, and then one copy holder's (backup mode: the backup, the
 * only other holder; delta mode: the first live member in the session's ring order). Pure.
 */
import { owners } from '../ring/index.js';
import type { SessionEntry } from './session-table.js';

/** Why a session was destroyed. */
export type DestroyReason = 'logout' | 'regenerate' | 'limit' | 'revoked' | 'evicted';
/** Why a session expired: unused for its maxAge, or `absoluteMaxAge` after its creation. */
export type ExpiryReason = 'idle' | 'absolute';

/** What a listener of `sessionCreated`, `sessionDestroyed` or `sessionExpired` receives. */
export interface SessionEvent {
  /** The session's stable public name (`sessionsOf` lists it), never its id. */
  handle: string;
  /** Whose session it is (option `principal`), if anyone's. */
  principal: string | undefined;
  /** The member that fired the event: the session's owner at that moment. */
  route: string;
  /** `created`; a `DestroyReason`; or an `ExpiryReason`. */
  reason: 'created' | DestroyReason | ExpiryReason;
}

export interface SessionEvents {
  sessionCreated: [SessionEvent];
  sessionDestroyed: [SessionEvent];
  sessionExpired: [SessionEvent];
}

/** Whether the expiry of `e`, as held on member `self`, is this member's to announce. */
export function firesExpiry(e: SessionEntry, self: string, live: readonly string[], mode: 'backup' | 'delta'): boolean {
  if (e.owner === self) return e.role === 'primary' && e.unverified !== true;
  if (live.includes(e.owner)) return false; // its owner fires it
  return mode === 'backup' || owners(e.base, [...live])[0] === self;
}

/** `absolute` when the session ended at `createdAt + absoluteMaxAge`, else `idle`. */
export function expiryReason(e: SessionEntry, absoluteMaxAge: number | undefined): ExpiryReason {
  return absoluteMaxAge !== undefined && e.createdAt !== undefined && e.expire >= e.createdAt + absoluteMaxAge ? 'absolute' : 'idle';
}
