/**
 * Writer schemas by fingerprint: this member's own, and those fetched from peers (a member running
 * another version of the app, or with other registered classes). Resolvers from each writer schema
 * to this member's reader types are compiled once and cached.
 */
import type { Resolver, Type } from './avro.js';
import {
  arrayItems,
  canonicalForm,
  exportSchema,
  fingerprint,
  mapValues,
  parseSchema,
  recordFields,
  underlying,
  unionBranches,
} from './avro.js';
import { N, RESERVED_PREFIX } from './dynamic-schema.js';
import { CodecError } from '../errors.js';

/** A writer schema this member can read. */
export interface KnownSchema {
  /** Hex fingerprint, as carried in the header of encoded data. */
  readonly fingerprint: string;
  readonly type: Type;
  /** Its JSON text, as served to peers (`schemaFor`). */
  readonly json: string;
  /** `dynamic`: a `ksc_Session` (no `sessionSchema`); `record`: derived from a `sessionSchema`. */
  readonly kind: 'dynamic' | 'record';
}

/** Peers are authenticated, but a bound keeps a misbehaving one from growing this map forever. */
const MAX_SCHEMAS = 256;
const MAX_SCHEMA_JSON = 1024 * 1024;

/** Named types reachable from `type`, by full name. */
function namedTypes(type: Type, out = new Map<string, Type>()): Map<string, Type> {
  if (type.name !== undefined) {
    if (out.has(type.name)) return out;
    out.set(type.name, type);
  }
  const t = type.typeName;
  if (t === 'record' || t === 'error') for (const f of recordFields(type)) namedTypes(f.type, out);
  else if (t.startsWith('union')) for (const b of unionBranches(type)) namedTypes(b, out);
  else if (t === 'array') namedTypes(arrayItems(type), out);
  else if (t === 'map') namedTypes(mapValues(type), out);
  else if (t.startsWith('logical:')) namedTypes(underlying(type), out);
  return out;
}

/** A type described one level deep (named types by name only), to compare shapes without inlining. */
function shallow(type: Type): unknown {
  if (type.name !== undefined) return type.name;
  const t = type.typeName;
  if (t.startsWith('union')) return unionBranches(type).map(shallow);
  if (t === 'array') return { array: shallow(arrayItems(type)) };
  if (t === 'map') return { map: shallow(mapValues(type)) };
  if (t.startsWith('logical:')) return shallow(underlying(type));
  return t;
}

function shape(type: Type): string {
  return JSON.stringify([type.typeName, recordFields(type).map((f) => [f.name, shallow(f.type)])]);
}

/** The writer schemas one codec knows. */
export class SchemaRegistry {
  readonly #byFingerprint = new Map<string, KnownSchema>();
  readonly #resolvers = new Map<string, Resolver | null>();
  /** Shapes of this codec's own `ksc_` types, which a peer's schema must match exactly. */
  readonly #internalShapes = new Map<string, string>();

  /** `dynamic` is this codec's `ksc_Session` type: the shapes of the `ksc_` types are learnt from it. */
  constructor(dynamic: Type) {
    for (const [name, t] of namedTypes(dynamic)) {
      if (name.startsWith(RESERVED_PREFIX) && name !== N.value) this.#internalShapes.set(name, shape(t));
    }
  }

  /**
   * Registers this member's own writer schema. Its JSON is checked to parse back to the very same
   * fingerprint, so what peers fetch is exactly what this member writes.
   */
  addOwn(type: Type, kind: KnownSchema['kind']): KnownSchema {
    const json = exportSchema(type);
    const fp = fingerprint(type).toString('hex');
    const again = parseSchema(JSON.parse(json));
    if (fingerprint(again).toString('hex') !== fp) throw new Error(`internal: schema ${fp} does not survive its own export`);
    const known: KnownSchema = { fingerprint: fp, type, json, kind };
    this.#byFingerprint.set(fp, known);
    return known;
  }

  get(fp: string): KnownSchema | undefined {
    return this.#byFingerprint.get(fp);
  }

  /**
   * Registers a writer schema fetched from a peer; returns it (or the one already known).
   * @throws CodecError if the text is not a session schema this codec can read.
   */
  addJson(json: string): KnownSchema {
    if (typeof json !== 'string' || json.length > MAX_SCHEMA_JSON) throw new CodecError('schema text missing or too long');
    let type: Type;
    try {
      type = parseSchema(JSON.parse(json) as unknown);
    } catch (err) {
      throw new CodecError(`invalid schema from a peer: ${(err as Error).message}`, { cause: err });
    }
    const fp = fingerprint(type).toString('hex');
    const known = this.#byFingerprint.get(fp);
    if (known !== undefined) {
      if (canonicalForm(known.type) !== canonicalForm(type)) throw new CodecError(`schema fingerprint collision on ${fp}; refusing the schema`);
      return known;
    }
    const kind = this.#validate(type);
    if (this.#byFingerprint.size >= MAX_SCHEMAS) throw new CodecError(`more than ${MAX_SCHEMAS} schemas registered; refusing more`);
    const added: KnownSchema = { fingerprint: fp, type, json: exportSchema(type), kind };
    this.#byFingerprint.set(fp, added);
    return added;
  }

  /**
   * A peer's schema must be a session root (dynamic or derived from a `sessionSchema`) whose `ksc_`
   * types are exactly this codec's: the decoder trusts their shapes.
   */
  #validate(type: Type): KnownSchema['kind'] {
    if (type.typeName !== 'record') throw new CodecError('a session schema must be a record');
    for (const [name, t] of namedTypes(type)) {
      if (!name.split('.').pop()!.startsWith(RESERVED_PREFIX)) continue;
      if (name === N.value) {
        const fields = recordFields(t);
        if (fields.length !== 1 || fields[0].name !== 'v' || fields[0].type.typeName !== 'union:wrapped') {
          throw new CodecError('peer schema: malformed ksc_Value');
        }
        continue;
      }
      const expected = this.#internalShapes.get(name);
      if (expected !== undefined) {
        if (shape(t) !== expected) throw new CodecError(`peer schema: ${name} differs from this member's`);
        continue;
      }
      // Presence wrappers of a sessionSchema field: one field, `value`.
      if (/(^|\.)ksc_present_[A-Za-z0-9_]+$/.test(name)) {
        const fields = recordFields(t);
        if (t.typeName !== 'record' || fields.length !== 1 || fields[0].name !== 'value') throw new CodecError(`peer schema: malformed ${name}`);
        continue;
      }
      throw new CodecError(`peer schema: unknown internal type ${name} (written by another version of koa-session-cluster?)`);
    }
    if (type.name === N.session) {
      if (shape(type) !== this.#internalShapes.get(N.session)) throw new CodecError('peer schema: malformed ksc_Session');
      return 'dynamic';
    }
    for (const f of recordFields(type)) {
      const branches = f.type.typeName === 'union:wrapped' ? unionBranches(f.type) : [];
      const ok =
        branches.length === 2 &&
        branches.some((b) => b.typeName === 'null') &&
        branches.some((b) => b.typeName === 'record' && /(^|\.)ksc_present_/.test(b.name ?? ''));
      if (!ok) throw new CodecError(`peer schema: field ${f.name} is not a session field`);
    }
    return 'record';
  }

  /**
   * The resolver from `writer` to `reader`, compiled once; `null` if Avro cannot resolve them (the
   * caller then reads with the writer's schema and adapts, see `SessionCodec`).
   */
  resolver(writer: KnownSchema, reader: Type, key: string): Resolver | null {
    const cacheKey = `${writer.fingerprint}:${key}`;
    let r = this.#resolvers.get(cacheKey);
    if (r === undefined) {
      try {
        r = reader.createResolver(writer.type);
      } catch {
        r = null;
      }
      this.#resolvers.set(cacheKey, r);
    }
    return r;
  }
}
