/**
 * The write path's pure part: from what a request read and what it hands to `store.set`, which keys to
 * send, their encodings, the size check, and the entry the write commits. No I/O, no lock: the
 * replicator runs it under the session's lock and sends the message it returns.
 */
import type { SessionCodec, SessionData } from '../codec/types.js';
import type { EncodedEntry, SessionDeltaMessage } from '../codec/messages.js';
import { SessionTooLargeError } from '../errors.js';
import { maxAgeToWire } from './copies.js';
import { mergeEntries, packEntries, unpackEntries } from './packed-entries.js';
import type { SessionEntry } from './session-table.js';
import { cloneValue, diffSession, setOwn } from './session-value.js';

export interface WritePlan {
  /** The delta for the copy holders. */
  message: SessionDeltaMessage;
  /** The entry to commit once the holders acknowledged. */
  next: SessionEntry;
  /** The decoded values of `next` (made on demand: own copies, for the decoded cache). */
  nextValues: () => SessionData;
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
  // Unpacked once per write: the keys held, then the entries the write leaves.
  const entries = unpackEntries(e.packed);
  const held = new Set(entries.map((x) => x.key));
  // A key that has a value but no entry of its own came from a schema default (a session written
  // under an older sessionSchema): the first write stores it, or a later decode would lose it.
  // (Only such keys: one that a concurrent request removed meanwhile is absent from `current` and
  // must stay removed.)
  for (const k of Object.keys(written)) {
    if (written[k] !== undefined && !held.has(k) && Object.hasOwn(current, k) && !Object.hasOwn(delta.set, k)) {
      setOwn(delta.set, k, written[k]);
    }
  }
  // Removing a defaulted key: re-encode one kept key under our schema, which declares the field,
  // so that decoding no longer fills the default in.
  if (delta.removed.some((k) => !held.has(k) && Object.hasOwn(current, k))) {
    const kept = Object.keys(written).find((k) => written[k] !== undefined && !Object.hasOwn(delta.set, k));
    if (kept !== undefined) setOwn(delta.set, kept, written[kept]);
  }
  // Keys removed by this request but already gone need no traffic.
  const removed = delta.removed.filter((k) => held.has(k));
  // Encoding checks every value; nothing is committed or sent if any key fails.
  const set: EncodedEntry[] = Object.keys(delta.set).map((key) => {
    const one: SessionData = {};
    setOwn(one, key, delta.set[key]);
    return { key, value: codec.encodeEntries(one) };
  });
  const after = set.length === 0 && removed.length === 0 ? entries : mergeEntries(entries, set, removed);
  let size = 0;
  for (const x of after) size += x.value.length;
  if (size > maxSessionBytes) throw new SessionTooLargeError(size, maxSessionBytes);
  const packed = after === entries ? e.packed : packEntries(after);
  // The committed entry holds bytes only: an application that changes an object in place after
  // `ctx.session.save()` changes nothing that the next diff compares against.
  const next: SessionEntry = { ...e, packed, version: e.version + 1, expire: meta.expire, maxAge: meta.maxAge, resync: false };
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
  const nextValues = (): SessionData => {
    // Our own copies: an application that changes an object in place after `ctx.session.save()`
    // changes the session object, not what the next diff compares against.
    const values: SessionData = { ...current };
    for (const k of Object.keys(delta.set)) setOwn(values, k, cloneValue(delta.set[k]));
    for (const k of delta.removed) delete values[k];
    return values;
  };
  return { message, next, nextValues };
}
