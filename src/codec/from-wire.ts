/**
 * Wire trees (what avsc read) back to session values, directed by the type they were read with.
 * Bytes are copied out (never views of a received frame); registered classes are revived through
 * the registry; anything this codec would never have written (a non-finite number, an invalid date,
 * an undefined array item, an unregistered class) is a `CodecError`.
 */
import type { Type } from './avro.js';
import { arrayItems, branchesByName, fieldDefault, mapValues, recordFields, underlying } from './avro.js';
import { N } from './dynamic-schema.js';
import { defineOwn, type ClassEntry, type TypeRegistry } from './type-registry.js';
import { CodecError } from '../errors.js';

const MAX_DATE_MS = 8.64e15;

/** Sets a property as data, `__proto__` included. */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') defineOwn(target, key, value);
  else target[key] = value;
}

/** The one key of a wrapped union value (avsc's `Branch$` objects). */
function branchKey(branch: object): string {
  const k = Object.keys(branch)[0];
  if (k === undefined) throw new CodecError('malformed union value');
  return k;
}

function finite(n: unknown): number {
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new CodecError(`non-finite number ${String(n)} in encoded data`);
  return n;
}

function dateOf(ms: unknown): Date {
  if (typeof ms !== 'number' || !Number.isInteger(ms) || Math.abs(ms) > MAX_DATE_MS) {
    throw new CodecError(`invalid date (${String(ms)} ms) in encoded data`);
  }
  return new Date(ms);
}

/** Converts wire trees to values for one codec (its registered classes). */
export class FromWire {
  readonly #classes: TypeRegistry;

  constructor(classes: TypeRegistry) {
    this.#classes = classes;
  }

  /**
   * A `ksc_Value` tree (`valueType` is the `ksc_Value` record it was read with). Returns `undefined`
   * for the `ksc_Undefined` branch: only a class field may hold it, callers check.
   */
  value(valueType: Type, tree: unknown): unknown {
    const branch = (tree as { v: Record<string, unknown> | null }).v;
    if (branch === null) return null;
    const key = branchKey(branch);
    const x = branch[key];
    switch (key) {
      case 'string':
      case 'boolean':
        return x;
      case 'long':
        if (!Number.isSafeInteger(x)) throw new CodecError('integer out of the safe range in encoded data');
        return x;
      case 'double':
        return finite(x);
      case N.buffer:
        return Buffer.from((x as { bytes: Buffer }).bytes);
      case 'array':
        return (x as unknown[]).map((item) => this.#defined(this.value(valueType, item), 'an array item'));
      case N.object:
        return this.#object(valueType, x as { entries: { key: string; value: unknown }[] }, {});
      case N.nullProtoObject:
        return this.#object(valueType, x as { entries: { key: string; value: unknown }[] }, Object.create(null) as Record<string, unknown>);
      case N.decimal: {
        const { unscaled, scale } = x as { unscaled: number; scale: number };
        if (!Number.isSafeInteger(unscaled) || scale < 1 || scale > 16) throw new CodecError('malformed decimal in encoded data');
        return unscaled / 10 ** scale;
      }
      case N.date:
      case N.farDate:
        return dateOf((x as { ms: unknown }).ms);
      case N.uint8Array:
        return new Uint8Array((x as { bytes: Buffer }).bytes);
      case N.rawString: {
        const b = (x as { utf16le: Buffer }).utf16le;
        if (b.length % 2 !== 0) throw new CodecError('malformed UTF-16 string in encoded data');
        return b.toString('utf16le');
      }
      case N.undefined:
        return undefined;
      default: {
        const union = recordFields(valueType)[0].type;
        const branchType = branchesByName(union).get(key);
        if (branchType?.typeName !== 'record') throw new CodecError(`unknown value kind ${key}`);
        return this.#classInstance(branchType, x as Record<string, unknown>);
      }
    }
  }

  #defined(x: unknown, what: string): unknown {
    if (x === undefined) throw new CodecError(`undefined as ${what} in encoded data (never written by this codec)`);
    return x;
  }

  #object(valueType: Type, x: { entries: { key: string; value: unknown }[] }, out: Record<string, unknown>): Record<string, unknown> {
    for (const e of x.entries) setOwn(out, e.key, this.#defined(this.value(valueType, e.value), 'an object property'));
    return out;
  }

  /** Entries of a `ksc_Session` root as a session object. */
  entries(valueType: Type, entries: readonly { key: string; value: unknown }[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const e of entries) setOwn(out, e.key, this.#defined(this.value(valueType, e.value), 'a session key'));
    return out;
  }

  /**
   * A registered class instance from a record read with `recordType` (this member's, through Avro
   * resolution, or the writer's). Takes this member's fields of the class: a field the writer did not
   * have gets this member's default (or stays undefined); a writer's field unknown here is dropped.
   */
  #classInstance(recordType: Type, record: Record<string, unknown>): object {
    const entry = this.#classes.byName(recordType.name);
    if (entry === undefined) {
      throw new CodecError(
        `the data holds an instance of class ${recordType.name}, which is not registered on this member ` +
          '(only registered classes are constructed); register it with types: [...] on every member',
      );
    }
    return this.#classes.construct(entry, this.#classFields(entry, recordType, record));
  }

  #classFields(entry: ClassEntry, recordType: Type, record: Record<string, unknown>): Record<string, unknown> {
    const fields: Record<string, unknown> = {};
    const written = recordFields(recordType);
    for (const own of this.#classes.fieldsOf(entry)) {
      const w = written.find((f) => f.name === own.name);
      let value: unknown;
      if (w !== undefined) value = this.typed(w.type, record[own.name]);
      else {
        const d = fieldDefault(own);
        value = d === undefined ? undefined : this.typed(own.type, d);
      }
      setOwn(fields, own.name, value);
    }
    return fields;
  }

  /** A tree read with `type` (a schema field's, or a class schema's). */
  typed(type: Type, tree: unknown): unknown {
    const kind = type.typeName;
    switch (kind) {
      case 'null':
      case 'boolean':
      case 'int':
      case 'long':
      case 'string':
      case 'enum':
        return tree;
      case 'float':
      case 'double':
        return finite(tree);
      case 'bytes':
      case 'fixed':
        return Buffer.from(tree as Buffer);
      case 'logical:timestamp-millis':
        return dateOf(tree);
      case 'array': {
        const items = arrayItems(type);
        return (tree as unknown[]).map((x) => this.typed(items, x));
      }
      case 'map': {
        const values = mapValues(type);
        const out: Record<string, unknown> = {};
        const m = tree as Record<string, unknown>;
        for (const k of Object.keys(m)) setOwn(out, k, this.typed(values, m[k]));
        return out;
      }
      case 'record':
      case 'error': {
        if (type.name === N.value) return this.value(type, tree);
        if (this.#classes.byName(type.name) !== undefined) return this.#classInstance(type, tree as Record<string, unknown>);
        const out: Record<string, unknown> = {};
        const rec = tree as Record<string, unknown>;
        for (const f of recordFields(type)) setOwn(out, f.name, this.typed(f.type, rec[f.name]));
        return out;
      }
      case 'union:wrapped': {
        if (tree === null) return null;
        const b = tree as Record<string, unknown>;
        const key = branchKey(b);
        const branchType = branchesByName(type).get(key);
        if (branchType === undefined) throw new CodecError(`unknown union branch ${key}`);
        return this.typed(branchType, b[key]);
      }
      default:
        if (kind.startsWith('logical:')) return this.typed(underlying(type), tree);
        throw new CodecError(`unsupported Avro type ${kind}`);
    }
  }
}
