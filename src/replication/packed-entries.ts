/**
 * A session's encoded top-level entries kept as one value: for each entry, in order, the key's UTF-8
 * length (varint), the key, the value's length (varint) and the value (the codec's bytes for that key).
 *
 * The bytes are kept as a latin1 string (`Packed`), one byte per character: V8 keeps such a string in
 * its own heap with a 16-byte header, and its garbage collector compacts it. A Buffer cost a ~100-byte
 * object besides its bytes, and its bytes sat in Node's shared 8 KiB pool slabs, which any temporary
 * buffer allocated in between (a frame, an acknowledgement) kept alive: about 400 bytes per copy of a
 * 230-byte session against about 250 now (`bench/copy-anatomy.ts`). The price is one copy of the
 * bytes into a Buffer where they are read (`unpackEntries`). Never a view into a received frame. Pure.
 */
import type { EncodedEntry } from '../codec/messages.js';

/** Packed entries: their bytes as a latin1 string. Compare with `===` (same bytes, same values). */
export type Packed = string;

/** A session with no entries. */
export const NO_ENTRIES: Packed = '';

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[pos++] = n;
  return pos;
}

/** Reads a varint at `pos` into `out[0]`; returns the position after it. */
function readVarint(buf: Buffer, pos: number, out: number[]): number {
  let n = 0;
  let scale = 1;
  for (;;) {
    if (pos >= buf.length) throw new RangeError('packed session entries are truncated');
    const b = buf[pos++];
    n += (b & 0x7f) * scale;
    if (b < 0x80) break;
    scale *= 0x80;
  }
  out[0] = n;
  return pos;
}

/** Whether a key appears twice (entries are few: a pairwise check allocates nothing). */
function hasDuplicateKeys(entries: readonly EncodedEntry[]): boolean {
  if (entries.length > 16) return new Set(entries.map((x) => x.key)).size !== entries.length;
  for (let i = 1; i < entries.length; i++) for (let j = 0; j < i; j++) if (entries[i].key === entries[j].key) return true;
  return false;
}

/**
 * Packs entries in the order given (a key given twice keeps its last value, at its first place).
 * Keys are written straight into the one buffer: every copy a backup receives and every write it
 * applies passes here.
 */
export function packEntries(entries: readonly EncodedEntry[]): Packed {
  if (entries.length === 0) return NO_ENTRIES;
  const list = hasDuplicateKeys(entries) ? [...new Map(entries.map((x) => [x.key, x.value]))].map(([key, value]) => ({ key, value })) : entries;
  let size = 0;
  for (const { key, value } of list) {
    const k = Buffer.byteLength(key, 'utf8');
    size += varintBytes(k) + k + varintBytes(value.length) + value.length;
  }
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const { key, value } of list) {
    pos = writeVarint(out, pos, Buffer.byteLength(key, 'utf8'));
    pos += out.write(key, pos, 'utf8');
    pos = writeVarint(out, pos, value.length);
    pos += value.copy(out, pos);
  }
  return out.toString('latin1', 0, pos);
}

/**
 * Walks packed bytes: `entry(keyStart, keyEnd, valueStart, valueEnd)` for each entry, in order.
 * @throws RangeError when the bytes are truncated or a length runs past them.
 */
function walk(bytes: Buffer, entry: (keyStart: number, keyEnd: number, valueStart: number, valueEnd: number) => void): void {
  const n = [0];
  let pos = 0;
  while (pos < bytes.length) {
    pos = readVarint(bytes, pos, n);
    const keyStart = pos;
    const keyEnd = pos + n[0];
    if (keyEnd > bytes.length) throw new RangeError('packed session entries are truncated');
    pos = readVarint(bytes, keyEnd, n);
    if (pos + n[0] > bytes.length) throw new RangeError('packed session entries are truncated');
    entry(keyStart, keyEnd, pos, pos + n[0]);
    pos += n[0];
  }
}

/** The entries of packed bytes, in order; each value is a view into one new buffer of those bytes. */
export function unpackEntries(packed: Packed): EncodedEntry[] {
  const out: EncodedEntry[] = [];
  if (packed.length === 0) return out;
  const bytes = packedBytes(packed);
  walk(bytes, (k0, k1, v0, v1) => out.push({ key: bytes.toString('utf8', k0, k1), value: bytes.subarray(v0, v1) }));
  return out;
}

/**
 * The values of packed bytes as they arrived in a message (views into `bytes`), after checking that
 * the bytes are well formed: a packed state transfer page is checked so before anything is installed.
 * @throws RangeError when they are not.
 */
export function packedValues(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  walk(bytes, (_k0, _k1, v0, v1) => out.push(bytes.subarray(v0, v1)));
  return out;
}

/** Packed entries from bytes that `packedValues` checked. */
export function packedFrom(bytes: Buffer): Packed {
  return bytes.toString('latin1');
}

/** The bytes of packed entries, to send them as they are kept. */
export function packedBytes(packed: Packed): Buffer {
  return Buffer.from(packed, 'latin1');
}

/** The encoded values, in order (what the codec's `decodeEntryList` takes); keys are not decoded. */
export function entryValues(packed: Packed): Buffer[] {
  return packedValues(packedBytes(packed));
}

/** `entries` with `set` applied (replaced in place, new keys appended) and `removed` taken out. */
export function mergeEntries(entries: readonly EncodedEntry[], set: readonly EncodedEntry[], removed: readonly string[]): EncodedEntry[] {
  const gone = new Set(removed);
  const values = new Map<string, Buffer>();
  for (const x of entries) if (!gone.has(x.key)) values.set(x.key, x.value);
  for (const x of set) if (!gone.has(x.key)) values.set(x.key, x.value);
  return [...values].map(([key, value]) => ({ key, value }));
}

/** `packed` with `set` applied (replaced in place, new keys appended) and `removed` taken out. */
export function patchEntries(packed: Packed, set: readonly EncodedEntry[], removed: readonly string[]): Packed {
  if (set.length === 0 && removed.length === 0) return packed;
  return packEntries(mergeEntries(unpackEntries(packed), set, removed));
}
