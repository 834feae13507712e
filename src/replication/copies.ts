/**
 * Conversions between the session table's entries and the messages that carry them, the rules every
 * copy holder applies to incoming writes (shared by backup and delta modes), and the ownership
 * transitions, each a named function. Pure: no I/O.
 */
import type { ApplyReply, PackedCopy, SessionCopy, SessionDeltaMessage, RemoveMessage, LocateReply } from '../codec/messages.js';
import { packEntries, packedBytes, packedFrom, patchEntries, unpackEntries, type Packed } from './packed-entries.js';
import type { Role, SessionEntry, SessionTable } from './session-table.js';

/** koa-session's 'session' maxAge travels as -1. */
export function maxAgeToWire(maxAge: number | 'session'): number {
  return maxAge === 'session' ? -1 : maxAge;
}

export function maxAgeFromWire(maxAge: number): number | 'session' {
  return maxAge < 0 ? 'session' : maxAge;
}

/**
 * Routes come off the wire as a new string in every message, while a member holds copies for a few
 * owners only: each copy keeping its own "node1" cost 24 bytes. Bounded, in case of a bug upstream.
 */
const knownRoutes = new Map<string, string>();
function route(r: string): string {
  const known = knownRoutes.get(r);
  if (known !== undefined) return known;
  if (knownRoutes.size < 1024) knownRoutes.set(r, r);
  return r;
}

/** What a copy carries besides its entries. */
type CopyMeta = Omit<SessionCopy, 'entries'>;

function metaOf(e: SessionEntry): CopyMeta {
  return {
    base: e.base,
    owner: e.owner,
    epoch: e.epoch,
    version: e.version,
    expire: e.expire,
    maxAge: maxAgeToWire(e.maxAge),
    createdAt: e.createdAt ?? 0,
    principal: e.principal ?? '',
  };
}

/** The message form of an entry. */
export function toCopy(e: SessionEntry): SessionCopy {
  return { ...metaOf(e), entries: unpackEntries(e.packed) };
}

/** The packed state transfer page's form of an entry: its entries as they are kept. */
export function toPackedCopy(e: SessionEntry): PackedCopy {
  return { ...metaOf(e), packed: packedBytes(e.packed) };
}

function entryOf(c: CopyMeta, packed: Packed, role: Role): SessionEntry {
  return {
    base: c.base,
    owner: route(c.owner),
    epoch: c.epoch,
    version: c.version,
    expire: c.expire,
    maxAge: maxAgeFromWire(c.maxAge),
    packed,
    role,
    backup: undefined,
    // Every field from the start: entries then share one shape, with no property store added later.
    unverified: false,
    resync: false,
    touchedAt: 0,
    createdAt: c.createdAt === undefined || c.createdAt === 0 ? undefined : c.createdAt,
    principal: c.principal === undefined || c.principal === '' ? undefined : c.principal,
  };
}

/** A table entry made from a copy. */
export function fromCopy(c: SessionCopy, role: Role): SessionEntry {
  return entryOf(c, packEntries(c.entries), role);
}

const OK: ApplyReply = { status: 'OK', epoch: 0, owner: '' };

/**
 * Whether ownership (`epoch`, `owner`) is older than (`knownEpoch`, `knownOwner`). Takeovers are granted
 * by the member holding the session, one at a time, so two owners rarely share an epoch; when they do
 * (two holders granted at once, each cut off from the other), the greater route wins everywhere.
 */
export function olderOwnership(epoch: number, owner: string, knownEpoch: number, knownOwner: string): boolean {
  return epoch < knownEpoch || (epoch === knownEpoch && owner < knownOwner);
}

/**
 * Whether a destruction at `epoch` covers an ownership at `heldEpoch`: every ownership of that epoch or
 * older, whichever route holds it. (Two owners can share an epoch only when they took the session over
 * on two sides of a partition; a logout on either side then wins over both.)
 */
export function destroyCovers(epoch: number, heldEpoch: number): boolean {
  return heldEpoch <= epoch;
}

/** Orders what members hold of a session: by ownership, then by version. Positive when `a` is newer. */
export function compareHeld(a: { epoch: number; owner: string; version: number }, b: { epoch: number; owner: string; version: number }): number {
  if (olderOwnership(a.epoch, a.owner, b.epoch, b.owner)) return -1;
  if (olderOwnership(b.epoch, b.owner, a.epoch, a.owner)) return 1;
  return a.version - b.version;
}

/**
 * Fencing: a write or copy from `owner` at `epoch` is refused when this member knows a newer owner, or
 * knows the session was destroyed at that epoch or a later one. (A destroy its owner could not get
 * acknowledged may be superseded by a newer epoch that never saw it: that owner's copies win.)
 */
export function fence(table: SessionTable, base: string, epoch: number, owner: string): ApplyReply | undefined {
  const e = table.get(base);
  if (e !== undefined && olderOwnership(epoch, owner, e.epoch, e.owner)) {
    return { status: 'STALE', epoch: e.epoch, owner: e.owner };
  }
  const t = table.tombstone(base);
  if (t === undefined) return undefined;
  // A destruction fences its own ownership and every older one; a moved session, the older ones.
  const fenced = t.kind === 'removed' ? destroyCovers(t.epoch, epoch) : olderOwnership(epoch, owner, t.epoch, t.owner);
  return fenced ? { status: 'STALE', epoch: t.epoch, owner: t.owner } : undefined;
}

/**
 * Applies a write on a copy holder. Idempotent (a repeated version is acknowledged again) and ordered
 * (a gap answers NEED_FULL, and the writer sends the whole session).
 */
export function applyDelta(table: SessionTable, m: SessionDeltaMessage, role: Role = 'backup'): ApplyReply {
  const stale = fence(table, m.base, m.epoch, m.owner);
  if (stale !== undefined) return stale;
  let e = table.get(m.base);
  if (e === undefined) {
    if (m.baseVersion !== 0) return { status: 'NEED_FULL', epoch: 0, owner: '' };
    e = fromCopy({ ...m, version: 0, entries: [] }, role);
    table.set(e);
  } else if (m.epoch > e.epoch || m.owner !== e.owner) {
    // A new owner took over and this copy missed its whole copy. The new ownership is recorded (it
    // fences the old owner here), but the same version number here may hold other content (a write
    // the old owner failed, its version burnt; the new owner numbered its own writes from the copy it
    // took over): no version, so only a whole copy makes them equal again.
    e.epoch = m.epoch;
    e.owner = route(m.owner);
    e.role = role;
    e.version = -1;
    return { status: 'NEED_FULL', epoch: 0, owner: '' };
  }
  if (m.version <= e.version) return OK; // a repeat of what we hold already
  if (m.baseVersion !== e.version) return { status: 'NEED_FULL', epoch: 0, owner: '' };
  e.packed = patchEntries(e.packed, m.set, m.removed);
  e.version = m.version;
  e.expire = m.expire;
  e.maxAge = maxAgeFromWire(m.maxAge);
  e.principal = m.principal === undefined || m.principal === '' ? undefined : m.principal;
  if (m.createdAt !== undefined && m.createdAt !== 0) e.createdAt = m.createdAt;
  return OK;
}

/** Installs a whole copy, unless this member already holds a newer one or knows a newer owner. */
export function applyCopy(table: SessionTable, c: SessionCopy, role: Role = 'backup'): ApplyReply {
  return install(table, c, role, () => packEntries(c.entries));
}

/** `applyCopy` of a packed state transfer page's session (its bytes checked by `packedValues`). */
export function applyPackedCopy(table: SessionTable, c: PackedCopy, role: Role = 'backup'): ApplyReply {
  return install(table, c, role, () => packedFrom(c.packed));
}

function install(table: SessionTable, c: CopyMeta, role: Role, packed: () => Packed): ApplyReply {
  const stale = fence(table, c.base, c.epoch, c.owner);
  if (stale !== undefined) return stale;
  // Older than a copy that expired here: a stray of the session's past (an owner back from a cut
  // resending what it held), which lacks the writes made after it. Installed, its sender read every
  // "OK" as no newer owner anywhere and served it again (delta seed 57635): refused as fencing refuses.
  const ended = table.expiredTrace(c.base);
  if (ended !== undefined && compareHeld(c, ended) < 0) return { status: 'STALE', epoch: ended.epoch, owner: ended.owner };
  const e = table.get(c.base);
  // The same ownership at an older or equal version: ours is as new (and keeps its role: a primary
  // that gets its own session back in a state transfer stays primary).
  if (e !== undefined && e.epoch === c.epoch && e.owner === c.owner && e.version >= c.version) return OK;
  table.set(entryOf(c, packed(), role));
  return OK;
}

/**
 * Drops a copy (`destroy: false`: clean-up after a takeover moved the session) or destroys the session
 * (`destroy: true`: logout, regenerate), leaving a tombstone either way.
 */
export function applyRemove(table: SessionTable, m: RemoveMessage): ApplyReply {
  const e = table.get(m.base);
  // The loser of a concurrent takeover, or an owner that was taken over meanwhile, cannot drop the
  // newer owner's copies, nor destroy a session a later epoch owns.
  const newer = e !== undefined && (m.destroy ? !destroyCovers(m.epoch, e.epoch) : olderOwnership(m.epoch, m.owner, e.epoch, e.owner));
  if (e !== undefined && newer) return { status: 'STALE', epoch: e.epoch, owner: e.owner };
  const t = table.tombstone(m.base);
  if (t?.kind === 'moved' && olderOwnership(m.epoch, m.owner, t.epoch, t.owner)) return { status: 'STALE', epoch: t.epoch, owner: t.owner };
  if (m.destroy) table.destroy(m.base, m.epoch, m.owner, m.until);
  else table.moved(m.base, m.epoch, m.owner);
  return OK;
}

/** What this member holds of `base`, as a locate or audit answers. */
export function describeHeld(table: SessionTable, base: string): LocateReply {
  const e = table.get(base);
  const t = table.tombstone(base);
  if (t?.kind === 'removed' && (e === undefined || destroyCovers(t.epoch, e.epoch))) {
    return { found: false, primary: false, owner: t.owner, epoch: t.epoch, version: 0, removed: true, backup: '' };
  }
  if (e === undefined) {
    // Expired here (by this member's clock): said with the ownership and version it had, which no
    // moved-session answer carries (their version is 0), so a taker holding an older copy leaves it.
    const x = table.expiredTrace(base);
    if (x !== undefined && x.version !== 0 && (t === undefined || !olderOwnership(x.epoch, x.owner, t.epoch, t.owner))) {
      return { found: false, primary: false, owner: x.owner, epoch: x.epoch, version: x.version, removed: false, backup: '' };
    }
    // Let go to a newer owner: said so (owner and epoch, `found: false`), since an asker whose answers
    // straddle the move may otherwise find the session nowhere.
    return { found: false, primary: false, owner: t?.owner ?? '', epoch: t?.epoch ?? 0, version: 0, removed: false, backup: '' };
  }
  const primary = e.role === 'primary';
  return { found: true, primary, owner: e.owner, epoch: e.epoch, version: e.version, removed: false, backup: primary ? (e.backup ?? '') : '' };
}

/** Whether a survey's answer says that member let the session go to a newer owner (`describeHeld`). */
export function isMoveTrace(r: LocateReply): boolean {
  return !r.found && !r.removed && r.owner !== '' && !isExpiryTrace(r);
}

/** Whether a survey's answer is the trace of a copy that expired on that member (`describeHeld`). */
export function isExpiryTrace(r: LocateReply): boolean {
  return !r.found && !r.removed && r.owner !== '' && r.version !== 0;
}

/**
 * A takeover's check that the session has not ended: the newest copy of `base` known to have expired
 * (here, or on a member that answered), when it is newer than `top`, the best copy found (if any).
 * Undefined when there is none, or when an answer (or this member) names a newer owner it let the
 * session go to (that owner holds it: no end is known).
 */
export function expiredPast(
  table: SessionTable,
  base: string,
  replies: readonly LocateReply[],
  top: { epoch: number; owner: string; version: number } | undefined,
): { epoch: number; owner: string; version: number } | undefined {
  const x = newestExpiry(table, base, replies);
  return x !== undefined && (top === undefined || compareHeld(x, top) >= 0) ? x : undefined;
}

/**
 * A background check's answer to a copy held here that is older than one known to have expired (here,
 * or on a member that answered): the session has ended, and this copy is a stray of its past that
 * lacks the writes after it. It is dropped, keeping the trace; returns that trace (undefined: kept).
 */
export function dropIfOutlived(
  table: SessionTable,
  base: string,
  replies: readonly LocateReply[],
  held: { epoch: number; owner: string; version: number },
): { epoch: number; owner: string; version: number } | undefined {
  const x = expiredPast(table, base, replies, held);
  if (x !== undefined) table.outlived(base, x);
  return x;
}

function newestExpiry(table: SessionTable, base: string, replies: readonly LocateReply[]): { epoch: number; owner: string; version: number } | undefined {
  const mine = table.expiredTrace(base);
  const traces = [...replies.filter(isExpiryTrace), ...(mine === undefined ? [] : [mine])];
  const newest = traces.sort((a, b) => compareHeld(b, a))[0];
  if (newest === undefined) return undefined;
  const t = table.tombstone(base);
  const moves = [...replies.filter(isMoveTrace), ...(t?.kind === 'moved' ? [t] : [])];
  return moves.some((m) => olderOwnership(newest.epoch, newest.owner, m.epoch, m.owner)) ? undefined : { epoch: newest.epoch, owner: newest.owner, version: newest.version };
}

// Ownership transitions. Each is the one place its change of fields is written.

/**
 * A holder grants the session to `taker`: the taker owns it from the next epoch on (`bump` further
 * when the owner is gone), and this member keeps its data as a copy of the taker's (if the taker never
 * installs it, the copy is still found). Returns the granted copy.
 */
export function grantTo(e: SessionEntry, taker: string, bump = 1): SessionCopy {
  e.epoch += bump;
  e.owner = taker;
  e.role = 'backup';
  e.unverified = false;
  return toCopy(e);
}

/** Installs a copy granted to this member (`copy.owner` is us, `copy.epoch` the granted epoch) as its primary. */
export function installGranted(table: SessionTable, copy: SessionCopy): SessionEntry {
  const e = fromCopy(copy, 'primary');
  table.set(e);
  return e;
}

/**
 * How far the epoch moves when a session is taken from the copy of an owner that is gone: two. An
 * owner that went silent may have granted the next epoch on its side of a partition in the instant
 * before the partition showed; that grant must lose to ours when the partition heals.
 */
export const PAST_A_SILENT_OWNER = 2;

/** A holder of a copy whose owner is gone becomes its owner, past any epoch the owner may have granted. */
export function adopt(e: SessionEntry, route: string): void {
  e.role = 'primary';
  e.owner = route;
  e.epoch += PAST_A_SILENT_OWNER;
  e.backup = undefined;
  e.unverified = false;
}
