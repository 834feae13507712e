/**
 * Conversions between the session table's entries and the messages that carry them, and the rules
 * every copy holder applies to incoming writes (shared by backup and delta modes). Pure: no I/O.
 */
import type { ApplyReply, SessionCopy, SessionDeltaMessage, EncodedEntry, RemoveMessage } from '../codec/messages.js';
import type { Role, SessionEntry, SessionTable } from './session-table.js';

/** koa-session's 'session' maxAge travels as -1. */
export function maxAgeToWire(maxAge: number | 'session'): number {
  return maxAge === 'session' ? -1 : maxAge;
}

export function maxAgeFromWire(maxAge: number): number | 'session' {
  return maxAge < 0 ? 'session' : maxAge;
}

export function entriesToWire(encoded: Map<string, Buffer>): EncodedEntry[] {
  return [...encoded].map(([key, value]) => ({ key, value }));
}

/** The message form of an entry. */
export function toCopy(e: SessionEntry): SessionCopy {
  return {
    base: e.base,
    owner: e.owner,
    epoch: e.epoch,
    version: e.version,
    expire: e.expire,
    maxAge: maxAgeToWire(e.maxAge),
    entries: entriesToWire(e.encoded),
  };
}

/** A table entry made from a copy. */
export function fromCopy(c: SessionCopy, role: Role): SessionEntry {
  return {
    base: c.base,
    owner: c.owner,
    epoch: c.epoch,
    version: c.version,
    expire: c.expire,
    maxAge: maxAgeFromWire(c.maxAge),
    encoded: new Map(c.entries.map((x) => [x.key, x.value])),
    values: undefined,
    role,
    backup: undefined,
  };
}

const OK: ApplyReply = { status: 'OK', epoch: 0, owner: '' };

/**
 * Whether ownership (`epoch`, `owner`) is older than (`knownEpoch`, `knownOwner`). Two members that took
 * a session over concurrently can reach the same epoch; the greater route wins that tie everywhere, so
 * every holder picks the same owner and the loser's copies are refused, never both.
 */
export function olderOwnership(epoch: number, owner: string, knownEpoch: number, knownOwner: string): boolean {
  return epoch < knownEpoch || (epoch === knownEpoch && owner < knownOwner);
}

/** Fencing: a write from `owner` at `epoch` is refused when this member knows a newer owner. */
function fence(table: SessionTable, base: string, epoch: number, owner: string): ApplyReply | undefined {
  const e = table.get(base);
  if (e !== undefined && olderOwnership(epoch, owner, e.epoch, e.owner)) {
    return { status: 'STALE', epoch: e.epoch, owner: e.owner };
  }
  const t = table.tombstone(base);
  if (e === undefined && t !== undefined && olderOwnership(epoch, owner, t.epoch, t.owner)) {
    return { status: 'STALE', epoch: t.epoch, owner: t.owner };
  }
  return undefined;
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
    // A new owner took over: the copy is the same data under a new epoch (and never ours to serve).
    e.epoch = m.epoch;
    e.owner = m.owner;
    e.role = role;
    e.values = undefined;
  }
  if (m.version <= e.version) return OK; // a repeat of what we hold already
  if (m.baseVersion !== e.version) return { status: 'NEED_FULL', epoch: 0, owner: '' };
  for (const { key, value } of m.set) e.encoded.set(key, value);
  for (const key of m.removed) e.encoded.delete(key);
  e.values = undefined;
  e.version = m.version;
  e.expire = m.expire;
  e.maxAge = maxAgeFromWire(m.maxAge);
  return OK;
}

/** Installs a whole copy, unless this member already holds a newer one or knows a newer owner. */
export function applyCopy(table: SessionTable, c: SessionCopy, role: Role = 'backup'): ApplyReply {
  const stale = fence(table, c.base, c.epoch, c.owner);
  if (stale !== undefined) return stale;
  const e = table.get(c.base);
  if (e !== undefined && e.epoch === c.epoch && e.owner === c.owner && e.version > c.version) return OK;
  table.set(fromCopy(c, role));
  return OK;
}

/** Drops a copy: logout from the owner, or clean-up after a takeover moved the session. */
export function applyRemove(table: SessionTable, m: RemoveMessage): ApplyReply {
  const e = table.get(m.base);
  // The loser of a concurrent takeover must not drop the winner's copies (same epoch, lesser route).
  if (e !== undefined && olderOwnership(m.epoch, m.owner, e.epoch, e.owner)) return { status: 'STALE', epoch: e.epoch, owner: e.owner };
  table.delete(m.base, m.epoch, m.owner);
  return OK;
}
