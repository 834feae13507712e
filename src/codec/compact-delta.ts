/**
 * The compact write of protocol version 2: a `SessionDelta` body (and a `SessionCopy`'s) rewritten
 * for one connection, and back, byte for byte. Most of a write's bytes were what the holder already knows: the session id
 * (sent once per connection, then a slot number), the owner (the sender, nearly always), createdAt,
 * maxAge and principal (as last time), the absolute expiry (a small step from the last one) and the
 * base version (the version before). What changed (the set and removed keys) travels as Avro, as in
 * version 1.
 *
 *     flags (1): KNOWN (base is in the slot table) | OWNER (owner is the sender) | SAME_META
 *     base:  slot (varint) if KNOWN, else Avro string (and it takes the next slot)
 *     owner: Avro string unless OWNER
 *     epoch, version: Avro longs; version − baseVersion: Avro long (deltas only)
 *     expire: Avro long, minus the slot's last expire if KNOWN
 *     createdAt, maxAge, principal: unless SAME_META
 *     set:   count, then per entry its key (a key slot, or -1 and the name, which takes the next
 *            slot) and its value (1 and the rest when its header, format and writer schema, is the
 *            last whole value's; else 0 and all of it)
 *     removed: count and keys (deltas only)
 *
 * The slot table is state of one direction of one connection (`BodyPacker` in src/cluster): both ends
 * update it in the same order, so it stays the same at both.
 */
import { messages, type EncodedEntry, type SessionCopy, type SessionDeltaMessage } from './messages.js';
import { HEADER_BYTES } from './session-codec.js';
import type { MessageCodec } from './types.js';

/** Slots per connection direction: the sessions written to one member recently. */
const SLOTS = 1024;
const KNOWN = 1;
const OWNER = 2;
const SAME_META = 4;

interface Slot {
  base: string;
  expire: number;
  createdAt: number;
  maxAge: number;
  principal: string;
}

/** One direction's table: base to slot, and the slots in order of assignment. */
export interface CompactDeltaState {
  bySlot: (Slot | undefined)[];
  byBase: Map<string, number>;
  next: number;
  /** Session keys seen, by slot, and their slots. */
  keys: string[];
  keySlots: Map<string, number>;
  /** The header (format and writer schema fingerprint) of the last value sent whole. */
  header: Buffer | undefined;
}

/** Key slots per direction: an app's session keys are few. */
const KEY_SLOTS = 256;

class Writer {
  readonly parts: Buffer[] = [];
  readonly #bytes: number[] = [];

  long(n: number): void {
    let z = n >= 0 ? n * 2 : -n * 2 - 1;
    while (z >= 0x80) {
      this.#bytes.push((z % 0x80) | 0x80);
      z = Math.floor(z / 0x80);
    }
    this.#bytes.push(z);
  }

  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.long(b.length);
    this.raw(b);
  }

  bytes(b: Buffer): void {
    this.long(b.length);
    this.raw(b);
  }

  raw(b: Buffer): void {
    this.parts.push(Buffer.from(this.#bytes.splice(0)), b);
  }

  done(): Buffer {
    return Buffer.concat([...this.parts, Buffer.from(this.#bytes)]);
  }
}

class Reader {
  pos = 0;
  constructor(readonly bytes: Buffer) {}

  long(): number {
    let z = 0;
    for (let scale = 1; ; scale *= 0x80) {
      if (this.pos >= this.bytes.length || scale > 2 ** 49) throw new Error('compact delta: a number runs past the end');
      const b = this.bytes[this.pos++];
      z += (b & 0x7f) * scale;
      if (b < 0x80) break;
    }
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  blob(): Buffer {
    const n = this.long();
    if (n < 0 || this.pos + n > this.bytes.length) throw new Error('compact delta: bytes run past the end');
    this.pos += n;
    return this.bytes.subarray(this.pos - n, this.pos);
  }

  string(): string {
    const n = this.long();
    if (n < 0 || this.pos + n > this.bytes.length) throw new Error('compact delta: a string runs past the end');
    const s = this.bytes.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

/** A key by slot, or (first time on this connection) by name, taking the next slot. */
function writeKey(w: Writer, state: CompactDeltaState, key: string): void {
  const slot = state.keySlots.get(key);
  if (slot !== undefined) return w.long(slot);
  w.long(-1);
  w.string(key);
  rememberKey(state, key);
}

function readKey(r: Reader, state: CompactDeltaState): string {
  const slot = r.long();
  if (slot >= 0) {
    const key = state.keys[slot];
    if (key === undefined) throw new Error('compact delta: an empty key slot');
    return key;
  }
  const key = r.string();
  rememberKey(state, key);
  return key;
}

function rememberKey(state: CompactDeltaState, key: string): void {
  const slot = state.keySlots.size < KEY_SLOTS ? state.keySlots.size : -1;
  if (slot < 0) return; // the table is full: further keys travel by name
  state.keys[slot] = key;
  state.keySlots.set(key, slot);
}

/** A value: 1 and the rest when its header is the last whole value's (the same writer schema), else 0 and all of it. */
function writeValue(w: Writer, state: CompactDeltaState, value: Buffer): void {
  const h = state.header;
  if (h !== undefined && value.length >= HEADER_BYTES && value.subarray(0, HEADER_BYTES).equals(h)) {
    w.long(1);
    return w.bytes(value.subarray(HEADER_BYTES));
  }
  w.long(0);
  w.bytes(value);
  if (value.length >= HEADER_BYTES) state.header = Buffer.from(value.subarray(0, HEADER_BYTES));
}

function readValue(r: Reader, state: CompactDeltaState): Buffer {
  const kind = r.long();
  const bytes = r.blob();
  if (kind === 1) {
    if (state.header === undefined) throw new Error('compact delta: a value without the header it refers to');
    return Buffer.concat([state.header, bytes]);
  }
  if (kind !== 0) throw new Error(`compact delta: bad value kind ${kind}`);
  if (bytes.length >= HEADER_BYTES) state.header = Buffer.from(bytes.subarray(0, HEADER_BYTES));
  return bytes;
}

function count(r: Reader): number {
  const n = r.long();
  if (n < 0 || n > r.bytes.length) throw new Error('compact delta: a bad count');
  return n;
}

function remember(state: CompactDeltaState, d: Common): void {
  let slot = state.byBase.get(d.base);
  if (slot === undefined) {
    slot = state.next;
    state.next = (state.next + 1) % SLOTS;
    const evicted = state.bySlot[slot];
    if (evicted !== undefined) state.byBase.delete(evicted.base);
    state.byBase.set(d.base, slot);
  }
  state.bySlot[slot] = { base: d.base, expire: d.expire, createdAt: d.createdAt ?? 0, maxAge: d.maxAge, principal: d.principal ?? '' };
}

/** The fields a delta and a whole copy share, and what each adds. */
type Common = Pick<SessionDeltaMessage, 'base' | 'owner' | 'epoch' | 'version' | 'expire' | 'maxAge' | 'createdAt' | 'principal'>;

interface Shape<T extends Common> {
  codec: MessageCodec<T>;
  /** The entries set (a copy: all of them) and, for a delta, the keys removed. */
  changes(m: T): { set: readonly EncodedEntry[]; removed?: readonly string[] };
  /** A delta's baseVersion travels as `version - baseVersion`; a copy has none. */
  baseVersion?: { get(m: T): number };
  make(common: Common, baseVersion: number, set: EncodedEntry[], removed: string[]): T;
}

/**
 * A `BodyPacker` (src/cluster/envelope-codec.ts) of one message shape. Deltas and copies to one
 * member share a slot table (`stateKey`): the copy that gives a member a new session's backup puts
 * the session in the table, so its first write already travels by slot.
 */
function packerOf<T extends Common>(shape: Shape<T>) {
  return {
    stateKey: 'session-slots',
    state(): CompactDeltaState {
      return { bySlot: [], byBase: new Map(), next: 0, keys: [], keySlots: new Map(), header: undefined };
    },

    /**
     * The compact form, or undefined (the table unchanged) when the body would not come back byte for
     * byte or would not be shorter: then it travels as is.
     */
    pack(body: Buffer, state: CompactDeltaState, sender: string): Buffer | undefined {
      let d: T;
      try {
        d = shape.codec.decode(body);
      } catch {
        return undefined;
      }
      // Only what unpacks to the same bytes: the body must be the canonical encoding of its fields.
      if (!shape.codec.encode(d).equals(body)) return undefined;
      // Writing changes the table (keys, the header); kept only if the compact form is used, since
      // the other end changes its table only for what it unpacks.
      const keysBefore = state.keySlots.size;
      const headerBefore = state.header;
      const slot = state.byBase.get(d.base);
      const known = slot !== undefined ? state.bySlot[slot] : undefined;
      const sameMeta = known !== undefined && known.createdAt === (d.createdAt ?? 0) && known.maxAge === d.maxAge && known.principal === (d.principal ?? '');
      const w = new Writer();
      w.long((known !== undefined ? KNOWN : 0) | (d.owner === sender ? OWNER : 0) | (sameMeta ? SAME_META : 0));
      if (known !== undefined) w.long(slot!);
      else w.string(d.base);
      if (d.owner !== sender) w.string(d.owner);
      w.long(d.epoch);
      w.long(d.version);
      if (shape.baseVersion !== undefined) w.long(d.version - shape.baseVersion.get(d));
      w.long(known !== undefined ? d.expire - known.expire : d.expire);
      if (!sameMeta) {
        w.long(d.createdAt ?? 0);
        w.long(d.maxAge);
        w.string(d.principal ?? '');
      }
      const { set, removed } = shape.changes(d);
      w.long(set.length);
      for (const e of set) {
        writeKey(w, state, e.key);
        writeValue(w, state, e.value);
      }
      if (removed !== undefined) {
        w.long(removed.length);
        for (const k of removed) writeKey(w, state, k);
      }
      const packed = w.done();
      if (packed.length > body.length) {
        for (const key of state.keys.splice(keysBefore)) state.keySlots.delete(key);
        state.header = headerBefore;
        return undefined;
      }
      remember(state, d);
      return packed;
    },

    /** The body `pack` was given. @throws Error on bytes that are not a compact body. */
    unpack(bytes: Buffer, state: CompactDeltaState, sender: string): Buffer {
      const r = new Reader(bytes);
      const flags = r.long();
      if (flags < 0 || flags > 7) throw new Error(`compact delta: bad flags ${flags}`);
      let known: Slot | undefined;
      let base: string;
      if ((flags & KNOWN) !== 0) {
        known = state.bySlot[r.long()];
        if (known === undefined) throw new Error('compact delta: an empty slot');
        base = known.base;
      } else {
        base = r.string();
      }
      const owner = (flags & OWNER) !== 0 ? sender : r.string();
      const epoch = r.long();
      const version = r.long();
      const baseVersion = shape.baseVersion !== undefined ? version - r.long() : 0;
      const expire = r.long() + (known?.expire ?? 0);
      let meta: Pick<Common, 'createdAt' | 'maxAge' | 'principal'>;
      if ((flags & SAME_META) !== 0) {
        if (known === undefined) throw new Error('compact delta: same metadata as an unknown session');
        meta = { createdAt: known.createdAt, maxAge: known.maxAge, principal: known.principal };
      } else {
        meta = { createdAt: r.long(), maxAge: r.long(), principal: r.string() };
      }
      const set: EncodedEntry[] = [];
      for (let n = count(r); n > 0; n--) set.push({ key: readKey(r, state), value: readValue(r, state) });
      const removed: string[] = [];
      if (shape.baseVersion !== undefined) for (let n = count(r); n > 0; n--) removed.push(readKey(r, state));
      if (r.pos !== bytes.length) throw new Error(`compact delta: ${bytes.length - r.pos} trailing bytes`);
      const d = shape.make({ base, owner, epoch, version, expire, ...meta }, baseVersion, set, removed);
      remember(state, d);
      return shape.codec.encode(d);
    },
  };
}

/** The packer of `session.delta` bodies: a write. */
export const compactDelta = packerOf<SessionDeltaMessage>({
  codec: messages.delta,
  changes: (d) => ({ set: d.set, removed: d.removed }),
  baseVersion: { get: (d) => d.baseVersion },
  make: (c, baseVersion, set, removed) => ({ ...c, baseVersion, set, removed }),
});

/** The packer of `session.copy` bodies: a whole session, e.g. a new session's first backup. */
export const compactCopy = packerOf<SessionCopy>({
  codec: messages.copy,
  changes: (c) => ({ set: c.entries }),
  make: (c, _baseVersion, set) => ({ ...c, entries: set }),
});
