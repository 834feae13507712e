/**
 * `defineMessage`: one cluster message type and its Avro schema. Decoding checks the bytes before
 * avsc reads them (byte-check.ts), requires the whole buffer to be one message, and turns every
 * failure into a `CodecError`. `bytes` fields are views of the received frame, as avsc reads them:
 * whoever keeps one copies it (the session table packs every entry into a buffer of its own), so a
 * backup does not copy each entry of each write twice.
 */
import type { Type } from './avro.js';
import { parsePlainSchema, readAt, writeAt, writeGrowing } from './avro.js';
import { checkEncoding } from './byte-check.js';
import type { MessageCodec } from './types.js';
import { CodecError } from '../errors.js';

/** Where a value does not fit its message schema, for the encode error. */
function invalidPaths(type: Type, value: unknown): string {
  const paths: string[] = [];
  const show = (v: unknown): string => {
    try {
      return JSON.stringify(v) ?? String(v);
    } catch {
      return typeof v;
    }
  };
  try {
    type.isValid(value, {
      errorHook: (path: string[], any: unknown, t: Type) => {
        if (paths.length < 3) paths.push(`${path.join('.') || '(root)'}: got ${show(any)}, expected ${t.typeName}`);
      },
    });
  } catch {
    // The description is best effort; the encode error is raised either way.
  }
  return paths.join('; ');
}

/** The scratch buffer stops growing here; a longer message is written straight into its own buffer. */
const SCRATCH_LIMIT = 4 * 1024 * 1024;
let scratch: Buffer = Buffer.allocUnsafeSlow(64 * 1024);
let scratchBusy = false;

/**
 * avsc's `toBuffer` writes into a 1 KiB scratch of its own and, for a longer value, writes the whole
 * value again into a buffer of the size found: a state transfer page or a re-protection batch (up to
 * a MiB) was encoded twice. One scratch shared by every message type, grown to the largest message
 * seen, writes each value once and copies its bytes out. The bytes are the same as `toBuffer`'s.
 */
function encodeOnce(type: Type, value: unknown): Buffer {
  if (scratchBusy) return type.toBuffer(value); // a nested encode (no schema here has one): avsc's way
  scratchBusy = true;
  try {
    const written = writeGrowing(type, value, scratch, 0, SCRATCH_LIMIT);
    if (written.end < 0) {
      const own = Buffer.allocUnsafeSlow(-written.end);
      writeAt(type, value, own, 0);
      return own;
    }
    scratch = written.buf;
    const end = written.end;
    // A short message from Node's pool, as most are sent and gone within a turn; a long one in a buffer
    // of its own, so that one kept a while (a page, a batch) never holds a pool slab alive.
    const out = end < 1024 ? Buffer.allocUnsafe(end) : Buffer.allocUnsafeSlow(end);
    scratch.copy(out, 0, 0, end);
    return out;
  } finally {
    scratchBusy = false;
  }
}

/**
 * A codec for one message type. The schema is parsed once, here; unions are unwrapped where avsc
 * can tell their branches apart (`['null', 'string']` is `string | null`), as avsc does by default.
 * @throws Error at definition if the schema is invalid (a programming error).
 */
export function defineMessage<T>(schema: Readonly<Record<string, unknown>>): MessageCodec<T> {
  const type = parsePlainSchema(schema);
  const name = type.name ?? type.typeName;
  return {
    encode(value: T): Buffer {
      try {
        return encodeOnce(type, value);
      } catch (err) {
        throw new CodecError(`cannot encode ${name}: ${invalidPaths(type, value) || (err as Error).message}`, { cause: err });
      }
    },
    decode(bytes: Buffer): T {
      try {
        if (!Buffer.isBuffer(bytes)) throw new CodecError(`cannot decode ${name}: expected a Buffer`);
        const end = checkEncoding(type, bytes, 0);
        if (end !== bytes.length) throw new CodecError(`cannot decode ${name}: ${bytes.length - end} trailing bytes`);
        const { value, offset } = readAt(type, bytes, 0);
        if (offset !== bytes.length) throw new CodecError(`cannot decode ${name}: truncated`);
        return value as T;
      } catch (err) {
        if (err instanceof CodecError) {
          if (err.message.startsWith('cannot decode')) throw err;
          throw new CodecError(`cannot decode ${name}: ${err.message}`, { cause: err });
        }
        throw new CodecError(`cannot decode ${name}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      }
    },
  };
}
