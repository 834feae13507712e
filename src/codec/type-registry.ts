/**
 * Registered classes (option `types`): name to class and back. Only classes registered here are
 * ever constructed from the wire, and only by `Object.create(prototype)` plus own data properties
 * (or the class's own `revive`): no constructor runs on received data, no gadget chains.
 */
import { ClusterOptionsError, CodecError } from '../errors.js';
import type { Type } from './avro.js';
import { recordFields } from './avro.js';
import { N, RESERVED_PREFIX } from './dynamic-schema.js';
import type { RegisteredType } from './types.js';

/** A registered class, as the codec uses it. */
export interface ClassEntry {
  /** Full Avro name of its record: the union branch name in `ksc_Value`. */
  readonly name: string;
  /** The class itself. */
  readonly cls: abstract new (...args: never[]) => object;
  readonly prototype: object;
  /** Its fields, in order. */
  readonly fieldNames: readonly string[];
  readonly fieldSet: ReadonlySet<string>;
  /** Registered with a field list (each field a free-form `ksc_Value`) rather than a schema. */
  readonly listed: boolean;
  readonly revive: ((fields: Record<string, unknown>) => unknown) | undefined;
  /** The record schema embedded in the codec's schemas. */
  readonly schema: Record<string, unknown>;
}

function optionError(option: string, message: string): ClusterOptionsError {
  return new ClusterOptionsError(option, `createSessionCluster: option ${option}: ${message}`);
}

/** Sets an own data property without running setters (and without `__proto__` magic). */
export function defineOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/** The registered classes of one codec. */
export class TypeRegistry {
  readonly entries: readonly ClassEntry[];
  readonly #byPrototype = new Map<object, ClassEntry>();
  readonly #byName = new Map<string, ClassEntry>();
  readonly #types = new Map<ClassEntry, Type>();

  /** @throws ClusterOptionsError naming the offending `types[i]` option. */
  constructor(types: readonly RegisteredType[]) {
    this.entries = types.map((t, i) => this.#entry(t, i));
    for (const [i, e] of this.entries.entries()) {
      if (this.#byName.has(e.name)) throw optionError(`types[${i}].name`, `the name ${e.name} is registered twice`);
      if (this.#byPrototype.has(e.prototype)) {
        throw optionError(`types[${i}].type`, `class ${e.cls.name} is registered twice`);
      }
      this.#byName.set(e.name, e);
      this.#byPrototype.set(e.prototype, e);
    }
  }

  #entry(t: RegisteredType, i: number): ClassEntry {
    if (t.name.startsWith(RESERVED_PREFIX)) {
      throw optionError(`types[${i}].name`, `names starting with ${RESERVED_PREFIX} are reserved by koa-session-cluster`);
    }
    const prototype = t.type.prototype as unknown;
    if (typeof prototype !== 'object' || prototype === null) throw optionError(`types[${i}].type`, 'expected a class');
    const revive = t.revive as ((fields: Record<string, unknown>) => unknown) | undefined;
    if (t.fields !== undefined) {
      const fieldNames = [...t.fields];
      return {
        name: t.name,
        cls: t.type,
        prototype,
        fieldNames,
        fieldSet: new Set(fieldNames),
        listed: true,
        revive,
        schema: {
          type: 'record',
          name: t.name,
          // No Avro default: avsc checks defaults while parsing, before the recursive ksc_Value is complete.
          // A field one member's class lacks is filled in by FromWire instead (undefined).
          fields: fieldNames.map((name) => ({ name, type: N.value })),
        },
      };
    }
    const schema = { ...(t.schema ?? {}) };
    if (schema.type !== 'record') throw optionError(`types[${i}].schema`, 'expected an Avro record schema ({ type: "record", fields: [...] })');
    if (schema.name === undefined) schema.name = t.name;
    if (typeof schema.name !== 'string' || schema.name.split('.').pop() !== t.name) {
      throw optionError(`types[${i}].schema`, `expected the record to be named ${t.name}, as registered`);
    }
    // Registered classes live in the null namespace unless their schema says otherwise.
    if (schema.namespace === undefined && !schema.name.includes('.')) schema.namespace = '';
    const fields = schema.fields;
    if (!Array.isArray(fields) || fields.some((f) => typeof (f as { name?: unknown })?.name !== 'string')) {
      throw optionError(`types[${i}].schema`, 'expected fields: [{ name, type }, ...]');
    }
    const fieldNames = fields.map((f) => (f as { name: string }).name);
    const ns = typeof schema.namespace === 'string' ? schema.namespace : '';
    const name = schema.name.includes('.') || ns === '' ? schema.name : `${ns}.${schema.name}`;
    return { name, cls: t.type, prototype, fieldNames, fieldSet: new Set(fieldNames), listed: false, revive, schema };
  }

  /**
   * The record schemas to add to the `ksc_Value` union, sorted by name: members that register the
   * same classes in another order write with the same schema (same fingerprint, no fetch).
   */
  recordSchemas(): Record<string, unknown>[] {
    return [...this.entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((e) => e.schema);
  }

  /** Binds each class to its record type once the codec's schemas are parsed. */
  bind(registry: Readonly<Record<string, Type>>): void {
    for (const e of this.entries) {
      const type = registry[e.name];
      if (type === undefined) throw new Error(`internal: no record type for class ${e.name}`);
      this.#types.set(e, type);
    }
  }

  byPrototype(prototype: unknown): ClassEntry | undefined {
    return this.#byPrototype.get(prototype as object);
  }

  byName(name: string | undefined): ClassEntry | undefined {
    return name === undefined ? undefined : this.#byName.get(name);
  }

  /** This member's record type of a class. */
  typeOf(entry: ClassEntry): Type {
    return this.#types.get(entry)!;
  }

  /** This member's record fields of a class, by name. */
  fieldsOf(entry: ClassEntry): ReturnType<typeof recordFields> {
    return recordFields(this.typeOf(entry));
  }

  /**
   * An instance of a registered class from its decoded fields: the user's `revive(fields)` if given
   * (its result must be an instance of the class), else `Object.create(prototype)` with the fields as
   * own properties. Never a constructor call, never a class that was not registered.
   */
  construct(entry: ClassEntry, fields: Record<string, unknown>): object {
    if (entry.revive !== undefined) {
      let out: unknown;
      try {
        out = entry.revive(fields);
      } catch (err) {
        throw new CodecError(`revive() of registered class ${entry.name} threw: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      }
      if (typeof out !== 'object' || out === null || !(out instanceof entry.cls)) {
        throw new CodecError(`revive() of registered class ${entry.name} did not return an instance of ${entry.cls.name}`);
      }
      return out;
    }
    const obj = Object.create(entry.prototype) as object;
    for (const k of entry.fieldNames) defineOwn(obj, k, fields[k]);
    return obj;
  }
}
