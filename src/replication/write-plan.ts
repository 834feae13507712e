/**
 * The write path's pure part: from what a request read and what it hands to `store.set`, which keys to
 * send, their encodings, the size check, and the entry the write commits. No I/O, no lock: the
 * replicator runs it under the session's lock and sends the message it returns.
 */
import type { SessionCodec, SessionData } from '../codec/types.js';
import type { EncodedEntry, SessionDeltaMessage } from '../codec/messages.js';
import { SessionTooLargeError } from '../errors.js';
import { maxAgeToWire } from './copies.js';
import type { SessionEntry } from './session-table.js';
import { cloneValue, diffSession, setOwn } from './session-value.js';

export interface WritePlan {
  /** The delta for the copy holders. */
  message: SessionDeltaMessage;
  /** The entry to commit once the holders acknowledged. */
  next: SessionEntry;
}

/**
 * Plans a write onto `e` (whose decoded values are `current`). `read` is what the request read (`{}` for
 * a new session): only keys that differ from it are sent, and they are applied onto the current values,
 * so concurrent requests changing different keys both survive. Throws `SessionUnserializableError`
 * (from the codec) or `SessionTooLargeError`; then nothing is sent or committed.
 */
export function planWrite(
  codec: SessionCodec,
  maxSessionBytes: number,
  e: SessionEntry,
  current: SessionData,
  written: SessionData,
  read: SessionData,
  meta: { expire: number; maxAge: number | 'session' },
): WritePlan {
  const delta = diffSession(read, written);
  // A key that has a value but no entry of its own came from a schema default (a session written
  // under an older sessionSchema): the first write stores it, or a later decode would lose it.
  // (Only such keys: one that a concurrent request removed meanwhile is absent from `current` and
  // must stay removed.)
  for (const k of Object.keys(written)) {
    if (written[k] !== undefined && !e.encoded.has(k) && Object.hasOwn(current, k) && !Object.hasOwn(delta.set, k)) {
      setOwn(delta.set, k, written[k]);
    }
  }
  // Removing a defaulted key: re-encode one kept key under our schema, which declares the field,
  // so that decoding no longer fills the default in.
  if (delta.removed.some((k) => !e.encoded.has(k) && Object.hasOwn(current, k))) {
    const kept = Object.keys(written).find((k) => written[k] !== undefined && !Object.hasOwn(delta.set, k));
    if (kept !== undefined) setOwn(delta.set, kept, written[kept]);
  }
  // Keys removed by this request but already gone need no traffic.
  const removed = delta.removed.filter((k) => e.encoded.has(k));
  // Encoding checks every value; nothing is committed or sent if any key fails.
  const set: EncodedEntry[] = Object.keys(delta.set).map((key) => {
    const one: SessionData = {};
    setOwn(one, key, delta.set[key]);
    return { key, value: codec.encodeEntries(one) };
  });
  const encoded = new Map(e.encoded);
  for (const { key, value } of set) encoded.set(key, value);
  for (const k of removed) encoded.delete(k);
  let size = 0;
  for (const v of encoded.values()) size += v.length;
  if (size > maxSessionBytes) throw new SessionTooLargeError(size, maxSessionBytes);
  // The committed values are our own copies: an application that changes an object in place after
  // `ctx.session.save()` must change the session object, not what the next diff compares against.
  const values: SessionData = { ...current };
  for (const { key } of set) setOwn(values, key, cloneValue(delta.set[key]));
  for (const k of removed) delete values[k];
  const next: SessionEntry = { ...e, encoded, values, version: e.version + 1, expire: meta.expire, maxAge: meta.maxAge, resync: false };
  const message: SessionDeltaMessage = {
    base: e.base,
    owner: e.owner,
    epoch: e.epoch,
    version: next.version,
    baseVersion: e.version,
    expire: meta.expire,
    maxAge: maxAgeToWire(meta.maxAge),
    set,
    removed,
  };
  return { message, next };
}
