/**
 * Session values to avsc's in-memory form (the "wire tree"), checking every value on the way, depth
 * first. With no `sessionSchema` every value is a `ksc_Value` (its kind picked here, since unions are
 * wrapped); with one, each field's type directs the walk. Any value that cannot be replicated
 * exactly is refused with a `SessionUnserializableError` naming its path.
 */
import type { Type } from './avro.js';
import { arrayItems, enumSymbols, fieldDefault, fixedSize, mapValues, recordFields, underlying, unionBranches } from './avro.js';
import { N } from './dynamic-schema.js';
import type { ClassEntry, TypeRegistry } from './type-registry.js';
import type { Walk } from './value-check.js';
import { describeValue, isWellFormed, refusalOf } from './value-check.js';
import { SessionUnserializableError } from '../errors.js';

const NULL_VALUE = { v: null };
const UNDEFINED_VALUE = { v: { [N.undefined]: {} } };
const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;
/**
 * The longs avsc writes exactly: it refuses magnitudes above 2^53 - 2, and writes a negative long
 * through `-2n - 1` in floating point, which is inexact below -2^52 (the value would come back changed).
 */
const LONG_MIN = -(2 ** 52);
const LONG_MAX = 2 ** 53 - 2;

function isLong(v: number): boolean {
  return Number.isInteger(v) && v >= LONG_MIN && v <= LONG_MAX;
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isUint8Array(value: object): value is Uint8Array {
  return Object.getPrototypeOf(value) === Uint8Array.prototype;
}

function isDate(value: object): value is Date {
  return Object.getPrototypeOf(value) === Date.prototype;
}

/**
 * A fraction whose shortest decimal form has few digits (9.99, 0.5) as `unscaled / 10^scale`. Exact:
 * both are exact doubles and IEEE division rounds correctly, so the quotient is the double nearest to
 * the decimal, which is `v` itself (checked anyway).
 */
function decimalOf(v: number): { v: { [N.decimal]: { unscaled: number; scale: number } } } | undefined {
  const s = String(v);
  const dot = s.indexOf('.');
  if (dot < 0 || s.length > 17 || s.includes('e')) return undefined;
  const scale = s.length - dot - 1;
  const unscaled = Number(s.slice(0, dot) + s.slice(dot + 1));
  if (!isLong(unscaled) || unscaled / 10 ** scale !== v) return undefined;
  return { v: { [N.decimal]: { unscaled, scale } } };
}

/** A Buffer over the same memory (avsc writes `bytes` from Buffers only). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Symbol-keyed properties are invisible to JSON and to Avro: refused rather than dropped. */
function checkSymbolKeys(w: Walk, obj: object): void {
  for (const s of Object.getOwnPropertySymbols(obj)) {
    if (Object.prototype.propertyIsEnumerable.call(obj, s)) {
      throw w.refuse(`property ${String(s)} has a symbol key, which is not serializable; use a string key`);
    }
  }
}

const fieldNameSets = new WeakMap<Type, ReadonlySet<string>>();

/** A record type's field names, as a set (cached: records are checked on every write). */
function fieldNames(type: Type): ReadonlySet<string> {
  let names = fieldNameSets.get(type);
  if (names === undefined) {
    names = new Set(recordFields(type).map((f) => f.name));
    fieldNameSets.set(type, names);
  }
  return names;
}

function describeType(type: Type): string {
  const t = type.typeName;
  if (t === 'record' || t === 'error') return type.name === N.value ? 'any session value' : `record ${type.name}`;
  if (t === 'enum') return `one of ${enumSymbols(type).map((s) => JSON.stringify(s)).join(', ')}`;
  if (t === 'fixed') return `a Buffer of ${fixedSize(type)} bytes`;
  if (t.startsWith('union')) return `one of [${unionBranches(type).map(describeType).join(', ')}]`;
  if (t === 'logical:timestamp-millis') return 'a Date';
  if (t === 'bytes') return 'a Buffer';
  return t;
}

/** Converts values to wire trees for one codec (its registered classes). */
export class ToWire {
  readonly #classes: TypeRegistry;

  constructor(classes: TypeRegistry) {
    this.#classes = classes;
  }

  /** A value of any kind, as a `ksc_Value` tree. `undefined` is the caller's business (context decides). */
  value(w: Walk, v: unknown): unknown {
    switch (typeof v) {
      case 'string':
        return isWellFormed(v) ? { v: { string: v } } : { v: { [N.rawString]: { utf16le: Buffer.from(v, 'utf16le') } } };
      case 'number':
        // Safe integers as zigzag varints (1 to 8 bytes); -0 and fractions as doubles, so both come back exactly.
        if (isLong(v) && !(v === 0 && 1 / v < 0)) return { v: { long: v } };
        if (Number.isFinite(v)) return decimalOf(v) ?? { v: { double: v } };
        throw w.refuse(refusalOf(v));
      case 'boolean':
        return { v: { boolean: v } };
      case 'object':
        return v === null ? NULL_VALUE : this.#objectValue(w, v);
      case 'undefined':
        // Only arrays get here: undefined object properties are skipped (as JSON drops them).
        throw w.refuse('undefined in an array is not serializable (JSON.stringify turns it into null); store null');
      default:
        throw w.refuse(refusalOf(v));
    }
  }

  #objectValue(w: Walk, v: object): unknown {
    if (Array.isArray(v)) {
      if (Object.getPrototypeOf(v) !== Array.prototype) throw w.refuse(refusalOf(v));
      w.enter(v);
      const n = v.length;
      const items = new Array<unknown>(n);
      for (let i = 0; i < n; i++) {
        w.segments.push(i);
        items[i] = this.value(w, v[i]);
        w.segments.pop();
      }
      w.leave();
      return { v: { array: items } };
    }
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) {
      const entries = this.#entries(w, v as Record<string, unknown>);
      return proto === null ? { v: { [N.nullProtoObject]: { entries } } } : { v: { [N.object]: { entries } } };
    }
    if (Buffer.isBuffer(v)) return { v: { [N.buffer]: { bytes: v } } };
    if (proto === Uint8Array.prototype) return { v: { [N.uint8Array]: { bytes: asBuffer(v as Uint8Array) } } };
    if (proto === Date.prototype) {
      const ms = (v as Date).getTime();
      if (Number.isNaN(ms)) throw w.refuse(refusalOf(v));
      return ms >= LONG_MIN ? { v: { [N.date]: { ms } } } : { v: { [N.farDate]: { ms } } };
    }
    const entry = this.#classes.byPrototype(proto);
    if (entry === undefined) throw w.refuse(refusalOf(v));
    return { v: { [entry.name]: this.#classRecord(w, entry, this.#classes.typeOf(entry), v) } };
  }

  /** A plain object's own enumerable string keys as entries; `undefined` values are absent, as in JSON. */
  #entries(w: Walk, obj: Record<string, unknown>): { key: string; value: unknown }[] {
    w.enter(obj);
    checkSymbolKeys(w, obj);
    const entries: { key: string; value: unknown }[] = [];
    for (const key of Object.keys(obj)) {
      w.segments.push(key);
      const x = obj[key];
      if (x !== undefined) {
        if (!isWellFormed(key)) throw w.refuse('key contains a lone surrogate, which cannot be encoded; use a well-formed string');
        entries.push({ key, value: this.value(w, x) });
      }
      w.segments.pop();
    }
    w.leave();
    return entries;
  }

  /**
   * A registered class instance as its record: exactly its registered fields. An own enumerable
   * property outside them is refused: dropping it would lose data on the other members.
   */
  #classRecord(w: Walk, entry: ClassEntry, type: Type, v: object): Record<string, unknown> {
    w.enter(v);
    checkSymbolKeys(w, v);
    const obj = v as Record<string, unknown>;
    for (const k of Object.keys(obj)) {
      if (entry.fieldSet.has(k)) continue;
      w.segments.push(k);
      if (obj[k] !== undefined) {
        throw w.refuse(
          `property ${k} of ${entry.cls.name} is not among its registered fields (${entry.fieldNames.join(', ')}); ` +
            'add it to the registration, or make it non-enumerable',
        );
      }
      w.segments.pop();
    }
    const out: Record<string, unknown> = {};
    for (const f of recordFields(type)) {
      w.segments.push(f.name);
      const x = obj[f.name];
      if (x === undefined) {
        if (f.type.name === N.value) out[f.name] = UNDEFINED_VALUE;
        else if (fieldDefault(f) !== undefined) out[f.name] = undefined; // avsc writes the default
        else throw w.refuse(`missing: the schema of ${entry.name} requires field ${f.name} (it has no default)`);
      } else {
        out[f.name] = this.typed(w, f.type, x);
      }
      w.segments.pop();
    }
    w.leave();
    return out;
  }

  /** A value as a tree of `type` (a `sessionSchema` field's or a registered class schema's). */
  typed(w: Walk, type: Type, v: unknown): unknown {
    const kind = type.typeName;
    if (kind === 'record' && type.name === N.value) {
      if (v === undefined) throw w.refuse('undefined is not serializable here; store null');
      return this.value(w, v);
    }
    this.#refuseExotic(w, v);
    switch (kind) {
      case 'null':
        if (v === null) return null;
        break;
      case 'boolean':
        if (typeof v === 'boolean') return v;
        break;
      case 'int':
        if (Number.isInteger(v) && (v as number) >= INT_MIN && (v as number) <= INT_MAX) return v;
        break;
      case 'long':
        if (Number.isInteger(v)) {
          if (!isLong(v as number)) throw w.refuse('integers beyond -2^52 .. 2^53-2 cannot be written exactly as an Avro long (avsc\'s limits); use a double');
          return v;
        }
        break;
      case 'float':
      case 'double':
        if (typeof v === 'number') return v; // non-finite numbers were refused above
        break;
      case 'string':
        if (typeof v === 'string') {
          if (!isWellFormed(v)) throw w.refuse('string contains a lone surrogate, which a schema string (UTF-8) cannot carry');
          return v;
        }
        break;
      case 'enum':
        if (typeof v === 'string' && enumSymbols(type).includes(v)) return v;
        break;
      case 'bytes':
        if (Buffer.isBuffer(v)) return v;
        break;
      case 'fixed':
        if (Buffer.isBuffer(v) && v.length === fixedSize(type)) return v;
        break;
      case 'logical:timestamp-millis':
        if (typeof v === 'object' && v !== null && isDate(v)) {
          if (v.getTime() < LONG_MIN) throw w.refuse('a Date before year -140000 cannot be written as timestamp-millis (avsc\'s long limit)');
          return v.getTime();
        }
        break;
      case 'array':
        if (Array.isArray(v)) return this.#typedArray(w, type, v);
        break;
      case 'map':
        if (typeof v === 'object' && v !== null && !Array.isArray(v) && isPlainObject(v)) return this.#typedMap(w, type, v);
        break;
      case 'record':
      case 'error':
        if (typeof v === 'object' && v !== null) {
          const entry = this.#classes.byName(type.name);
          if (entry !== undefined) {
            if (Object.getPrototypeOf(v) === entry.prototype) return this.#classRecord(w, entry, type, v);
          } else if (!Array.isArray(v) && isPlainObject(v)) {
            return this.#typedRecord(w, type, v as Record<string, unknown>);
          }
        }
        break;
      case 'union:wrapped':
        return this.#typedUnion(w, type, v);
      default:
        if (kind.startsWith('logical:')) return this.typed(w, underlying(type), v);
    }
    throw w.refuse(`expected ${describeType(type)} (as the schema says), got ${describeValue(v)}`);
  }

  /** Refuses what no schema type can hold, with the same words as without a schema. */
  #refuseExotic(w: Walk, v: unknown): void {
    switch (typeof v) {
      case 'function':
      case 'symbol':
      case 'bigint':
        throw w.refuse(refusalOf(v));
      case 'number':
        if (!Number.isFinite(v)) throw w.refuse(refusalOf(v));
        return;
      case 'object': {
        if (v === null || Array.isArray(v) || isPlainObject(v) || Buffer.isBuffer(v)) return;
        if (isDate(v)) {
          if (Number.isNaN(v.getTime())) throw w.refuse(refusalOf(v));
          return;
        }
        if (isUint8Array(v)) {
          throw w.refuse('a Uint8Array cannot be stored in a schema field (Avro bytes come back as a Buffer); store a Buffer');
        }
        if (this.#classes.byPrototype(Object.getPrototypeOf(v)) === undefined) throw w.refuse(refusalOf(v));
        return;
      }
      default:
    }
  }

  #typedArray(w: Walk, type: Type, v: unknown[]): unknown[] {
    if (Object.getPrototypeOf(v) !== Array.prototype) throw w.refuse(refusalOf(v));
    const items = arrayItems(type);
    w.enter(v);
    const out = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) {
      w.segments.push(i);
      const x = v[i];
      if (x === undefined) throw w.refuse('undefined in an array is not serializable (JSON.stringify turns it into null); store null');
      out[i] = this.typed(w, items, x);
      w.segments.pop();
    }
    w.leave();
    return out;
  }

  #typedMap(w: Walk, type: Type, v: object): Record<string, unknown> {
    const values = mapValues(type);
    const obj = v as Record<string, unknown>;
    w.enter(v);
    checkSymbolKeys(w, v);
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(obj)) {
      w.segments.push(key);
      const x = obj[key];
      if (x === undefined) {
        w.segments.pop();
        continue;
      }
      // avsc reads a map by assignment: this one key would become the object's prototype instead.
      if (key === '__proto__') throw w.refuse('the key __proto__ cannot be stored in an Avro map; rename it, or use ksc_Value');
      if (!isWellFormed(key)) throw w.refuse('key contains a lone surrogate, which cannot be encoded; use a well-formed string');
      out[key] = this.typed(w, values, x);
      w.segments.pop();
    }
    w.leave();
    return out;
  }

  #typedRecord(w: Walk, type: Type, obj: Record<string, unknown>): Record<string, unknown> {
    const fields = recordFields(type);
    w.enter(obj);
    checkSymbolKeys(w, obj);
    const names = fieldNames(type);
    for (const k of Object.keys(obj)) {
      if (names.has(k)) continue;
      w.segments.push(k);
      if (obj[k] !== undefined) throw w.refuse(`not a field of record ${type.name} (fields: ${fields.map((f) => f.name).join(', ')})`);
      w.segments.pop();
    }
    const out: Record<string, unknown> = {};
    for (const f of fields) {
      w.segments.push(f.name);
      const x = obj[f.name];
      if (x === undefined) {
        if (fieldDefault(f) === undefined) throw w.refuse(`missing: record ${type.name} requires field ${f.name} (it has no default)`);
        out[f.name] = undefined; // avsc writes the default
      } else {
        out[f.name] = this.typed(w, f.type, x);
      }
      w.segments.pop();
    }
    w.leave();
    return out;
  }

  /** The first branch that takes the value, as `{ [branch]: tree }` (`null` for the null branch). */
  #typedUnion(w: Walk, type: Type, v: unknown): unknown {
    let first: SessionUnserializableError | undefined;
    for (const b of unionBranches(type)) {
      if (b.typeName === 'null') {
        if (v === null) return null;
        continue;
      }
      if (!this.#mayFit(b, v)) continue;
      const mark = w.mark();
      try {
        return { [b.branchName!]: this.typed(w, b, v) };
      } catch (err) {
        if (!(err instanceof SessionUnserializableError)) throw err;
        first ??= err;
        w.reset(mark);
      }
    }
    throw first ?? w.refuse(`expected ${describeType(type)} (as the schema says), got ${describeValue(v)}`);
  }

  /** Cheap pre-test of a union branch, so a union is mostly decided without trying. */
  #mayFit(type: Type, v: unknown): boolean {
    switch (type.typeName) {
      case 'boolean':
        return typeof v === 'boolean';
      case 'int':
      case 'long':
      case 'float':
      case 'double':
        return typeof v === 'number';
      case 'string':
      case 'enum':
        return typeof v === 'string';
      case 'bytes':
      case 'fixed':
        return Buffer.isBuffer(v);
      case 'array':
        return Array.isArray(v);
      case 'logical:timestamp-millis':
        return v instanceof Date;
      case 'map':
        return typeof v === 'object' && v !== null && !Array.isArray(v) && isPlainObject(v);
      case 'record':
      case 'error': {
        if (type.name === N.value) return true;
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
        const entry = this.#classes.byName(type.name);
        return entry !== undefined ? Object.getPrototypeOf(v) === entry.prototype : isPlainObject(v);
      }
      default:
        return type.typeName.startsWith('logical:') ? this.#mayFit(underlying(type), v) : false;
    }
  }
}
