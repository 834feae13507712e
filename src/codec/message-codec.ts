/**
 * `defineMessage`: one cluster message type and its Avro schema. Decoding checks the bytes before
 * avsc reads them (byte-check.ts), requires the whole buffer to be one message, copies `bytes`
 * fields out of the received frame, and turns every failure into a `CodecError`.
 */
import type { Type } from './avro.js';
import { arrayItems, mapValues, parsePlainSchema, readAt, recordFields, underlying, unionBranches } from './avro.js';
import { checkEncoding } from './byte-check.js';
import type { MessageCodec } from './types.js';
import { CodecError } from '../errors.js';

/** Whether values of `type` can hold `bytes` or `fixed` (and so views into the received frame). */
function holdsBytes(type: Type, seen = new Set<Type>()): boolean {
  if (seen.has(type)) return false;
  seen.add(type);
  const t = type.typeName;
  if (t === 'bytes' || t === 'fixed') return true;
  if (t === 'record' || t === 'error') return recordFields(type).some((f) => holdsBytes(f.type, seen));
  if (t.startsWith('union')) return unionBranches(type).some((b) => holdsBytes(b, seen));
  if (t === 'array') return holdsBytes(arrayItems(type), seen);
  if (t === 'map') return holdsBytes(mapValues(type), seen);
  if (t.startsWith('logical:')) return holdsBytes(underlying(type), seen);
  return false;
}

/**
 * Replaces every Buffer in a decoded value by a copy. avsc reads `bytes` as views of the input: a
 * stored session entry must not keep a whole received frame alive, nor change if the frame's
 * memory is reused.
 */
function copyBuffers(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Buffer.isBuffer(value)) return Buffer.from(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = copyBuffers(value[i]);
    return value;
  }
  const obj = value as Record<string, unknown>;
  for (const k of Object.keys(obj)) obj[k] = copyBuffers(obj[k]);
  return obj;
}

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

/**
 * A codec for one message type. The schema is parsed once, here; unions are unwrapped where avsc
 * can tell their branches apart (`['null', 'string']` is `string | null`), as avsc does by default.
 * @throws Error at definition if the schema is invalid (a programming error).
 */
export function defineMessage<T>(schema: Readonly<Record<string, unknown>>): MessageCodec<T> {
  const type = parsePlainSchema(schema);
  const name = type.name ?? type.typeName;
  const copy = holdsBytes(type);
  return {
    encode(value: T): Buffer {
      try {
        return type.toBuffer(value);
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
        return (copy ? copyBuffers(value) : value) as T;
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
