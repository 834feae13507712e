/**
 * A bounds-checked pass over Avro bytes before avsc reads them. avsc trusts its input: a block
 * count of 2^40 from random bytes makes it loop (and allocate) for hours, a negative length moves
 * its cursor backwards. This walk follows the writer's type with every length, count, index and
 * depth checked against what the bytes can hold, so avsc only ever reads well-formed data.
 *
 * It runs on every decode, so each type is compiled once into a checking function (no type
 * inspection per value).
 */
import type { Type } from './avro.js';
import { arrayItems, enumSymbols, fixedSize, mapValues, recordFields, underlying, unionBranches } from './avro.js';
import { CodecError } from '../errors.js';

/** Nesting of records, arrays, maps and unions; a session value of `MAX_DEPTH` levels takes about 5 per level. */
const MAX_TYPE_DEPTH = 2600;
/** Items of zero encoded size (`null`, empty records) one buffer may declare. */
const ZERO_SIZE_ITEMS = 65_536;

/** Position in the bytes being checked. */
class Cursor {
  pos: number;
  zeroItems = ZERO_SIZE_ITEMS;
  readonly buf: Buffer;

  constructor(buf: Buffer, pos: number) {
    this.buf = buf;
    this.pos = pos;
  }

  fail(what: string): never {
    throw new CodecError(`malformed encoding at byte ${this.pos}: ${what}`);
  }

  /** A zigzag varint of at most `maxBytes` bytes, as a number (approximate beyond 2^53, which only fails checks). */
  varint(maxBytes: number): number {
    const buf = this.buf;
    let n = 0;
    let scale = 1;
    for (let i = 0; i < maxBytes; i++) {
      if (this.pos >= buf.length) this.fail('truncated');
      const b = buf[this.pos++];
      n += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
      scale *= 128;
    }
    return this.fail('varint too long');
  }

  skip(bytes: number): void {
    if (bytes > this.buf.length - this.pos) this.fail('truncated');
    this.pos += bytes;
  }

  /** A length prefix (string, bytes, block size): non-negative and within the remaining bytes. */
  length(): number {
    const n = this.varint(10);
    if (n < 0) this.fail('negative length');
    if (n > this.buf.length - this.pos) this.fail('truncated');
    return n;
  }
}

/** Checks one value at the cursor; `depth` is the nesting so far. */
type Check = (c: Cursor, depth: number) => void;

const checks = new WeakMap<Type, Check>();
const minSizes = new WeakMap<Type, number>();

/** The fewest bytes a value of `type` takes (recursive types count their cycle as 0). */
function minSize(type: Type): number {
  return minSizes.get(type) ?? computeMinSize(type, new Set());
}

function computeMinSize(type: Type, seen: Set<Type>): number {
  const cached = minSizes.get(type);
  if (cached !== undefined) return cached;
  if (seen.has(type)) return 0;
  seen.add(type);
  let n: number;
  switch (type.typeName) {
    case 'null':
      n = 0;
      break;
    case 'float':
      n = 4;
      break;
    case 'double':
      n = 8;
      break;
    case 'fixed':
      n = fixedSize(type);
      break;
    case 'record':
    case 'error':
      n = recordFields(type).reduce((sum, f) => sum + computeMinSize(f.type, seen), 0);
      break;
    default:
      n = type.typeName.startsWith('logical:') ? computeMinSize(underlying(type), seen) : 1;
  }
  seen.delete(type);
  if (seen.size === 0) minSizes.set(type, n);
  return n;
}

const checkNull: Check = () => {};
const checkBoolean: Check = (c) => {
  if (c.pos >= c.buf.length) c.fail('truncated');
  const b = c.buf[c.pos++];
  if (b !== 0 && b !== 1) c.fail('invalid boolean');
};
const checkInt: Check = (c) => void c.varint(5);
const checkLong: Check = (c) => void c.varint(10);
const checkFloat: Check = (c) => c.skip(4);
const checkDouble: Check = (c) => c.skip(8);
const checkBytes: Check = (c) => {
  const n = c.length(); // read first: `c.pos += c.length()` would add to the old position
  c.pos += n;
};

function nested(c: Cursor, depth: number): void {
  if (depth >= MAX_TYPE_DEPTH) c.fail('nested too deeply');
}

/** Array or map blocks: every count bounded by the bytes left, every block size verified. */
function blocks(items: Type, keyed: boolean): Check {
  const item = checkFor(items);
  return (c, depth) => {
    nested(c, depth);
    const itemMin = minSize(items) + (keyed ? 1 : 0);
    while (true) {
      let count = c.varint(10);
      if (count === 0) return;
      let declaredEnd = -1;
      if (count < 0) {
        count = -count;
        const size = c.length();
        declaredEnd = c.pos + size;
      }
      if (itemMin === 0) {
        if (count > c.zeroItems) c.fail('too many items');
        c.zeroItems -= count;
      } else if (count * itemMin > c.buf.length - c.pos) {
        c.fail('item count exceeds the bytes left');
      }
      for (let i = 0; i < count; i++) {
        if (keyed) checkBytes(c, depth);
        item(c, depth + 1);
      }
      // avsc skips a block by its declared size: it must be the true size, or it would read astray.
      if (declaredEnd >= 0 && declaredEnd !== c.pos) c.fail('block size does not match its content');
    }
  };
}

function build(type: Type): Check {
  switch (type.typeName) {
    case 'null':
      return checkNull;
    case 'boolean':
      return checkBoolean;
    case 'int':
      return checkInt;
    case 'long':
      return checkLong;
    case 'float':
      return checkFloat;
    case 'double':
      return checkDouble;
    case 'string':
    case 'bytes':
      return checkBytes;
    case 'fixed': {
      const size = fixedSize(type);
      return (c) => c.skip(size);
    }
    case 'enum': {
      const n = enumSymbols(type).length;
      return (c) => {
        const i = c.varint(10);
        if (i < 0 || i >= n) c.fail('invalid enum index');
      };
    }
    case 'record':
    case 'error': {
      const fields = recordFields(type).map((f) => checkFor(f.type));
      return (c, depth) => {
        nested(c, depth);
        for (const f of fields) f(c, depth + 1);
      };
    }
    case 'union:wrapped':
    case 'union:unwrapped': {
      const branches = unionBranches(type).map((b) => checkFor(b));
      return (c, depth) => {
        nested(c, depth);
        const i = c.varint(10);
        if (!Number.isInteger(i) || i < 0 || i >= branches.length) c.fail('invalid union index');
        branches[i](c, depth + 1);
      };
    }
    case 'array':
      return blocks(arrayItems(type), false);
    case 'map':
      return blocks(mapValues(type), true);
    default:
      if (type.typeName.startsWith('logical:')) return checkFor(underlying(type));
      return (c) => c.fail(`unsupported type ${type.typeName}`);
  }
}

/** The compiled check of `type`; a recursive reference goes through a stub until it is built. */
function checkFor(type: Type): Check {
  const known = checks.get(type);
  if (known !== undefined) return known;
  checks.set(type, (c, depth) => built(c, depth)); // called only once `built` exists
  const built = build(type);
  checks.set(type, built);
  return built;
}

/**
 * Checks that `buf` from `offset` holds one well-formed value of `type`; returns where it ends.
 * @throws CodecError naming the byte where the encoding went wrong.
 */
export function checkEncoding(type: Type, buf: Buffer, offset: number): number {
  const c = new Cursor(buf, offset);
  checkFor(type)(c, 0);
  return c.pos;
}
