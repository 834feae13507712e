/**
 * `createSessionCodec`: session values to bytes and back, for one member.
 *
 * Wire format of `encodeSession` and `encodeEntries` (both the same format):
 *
 * ```
 * byte 0      format version, 1
 * bytes 1-8   writer schema fingerprint: first 8 bytes of SHA-256 of its canonical form
 * bytes 9-    Avro binary body, written with that schema
 * ```
 *
 * The writer schema is `ksc_Session` (top-level keys as entries of `ksc_Value`s) without a
 * `sessionSchema`, or the presence record derived from it (see session-schema.ts). A reader that
 * does not know the fingerprint throws `UnknownSchemaError`; its caller fetches the JSON from the
 * writer (`schemaFor` there), registers it (`addSchema`) and retries. A known foreign writer schema
 * is read through Avro resolution into this member's schema; when Avro cannot resolve the two (one
 * side has no `sessionSchema`, or a class is registered on one side only), the bytes are read with
 * the writer's schema and the values checked against this member's schema, so members on two
 * versions of an app keep reading each other's sessions during a rolling upgrade.
 */
import type { Field, Type } from './avro.js';
import { absoluteGlobalReferences, arrayItems, fieldDefault, FINGERPRINT_BYTES, parseSchema, readAt, recordFields, writeGrowing } from './avro.js';
import { checkEncoding } from './byte-check.js';
import { dynamicSchema, N } from './dynamic-schema.js';
import { FromWire, setOwn } from './from-wire.js';
import { SchemaRegistry, type KnownSchema } from './schema-registry.js';
import { presenceFields, presenceSchema, presentValue, type PresenceField } from './session-schema.js';
import { ToWire } from './to-wire.js';
import { TypeRegistry } from './type-registry.js';
import type { RegisteredType, SessionCodec, SessionData } from './types.js';
import { isWellFormed, Walk } from './value-check.js';
import { ClusterOptionsError, CodecError, SessionTooLargeError, SessionUnserializableError, UnknownSchemaError } from '../errors.js';

/** Version of the header layout; any other first byte is refused. */
export const FORMAT_VERSION = 1;
/** Bytes before the Avro body: version and fingerprint. */
export const HEADER_BYTES = 1 + FINGERPRINT_BYTES;

/** What `createSessionCodec` needs from the cluster options. */
export interface SessionCodecOptions {
  /** Registered classes (option `types`). */
  types: readonly RegisteredType[];
  /** Optional Avro record schema of the whole session (option `sessionSchema`). */
  sessionSchema?: Readonly<Record<string, unknown>> | undefined;
  /** Largest encoded session or entries, in bytes (option `maxSessionBytes`). */
  maxSessionBytes: number;
}

type Kind = 'session' | 'entries';

/** Whether a writer's presence fields include a reader field, by its name or one of its aliases (as Avro resolution matches them). */
function declaresField(written: ReadonlyMap<string, PresenceField>, readerField: Field): boolean {
  return written.has(readerField.name) || (readerField.aliases ?? []).some((a) => written.has(a));
}

/** `Array.isArray` without its narrowing to `any[]`. */
function isList(v: unknown): v is readonly unknown[] {
  return Array.isArray(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

class AvroSessionCodec implements SessionCodec {
  readonly #classes: TypeRegistry;
  readonly #toWire: ToWire;
  readonly #fromWire: FromWire;
  readonly #schemas: SchemaRegistry;
  readonly #own: KnownSchema;
  readonly #ownFingerprint: Buffer;
  /** Reader of whole sessions: the writer type, or with `sessionSchema` the variant with defaults. */
  readonly #sessionReader: Type;
  /** The presence fields, with `sessionSchema`. */
  readonly #fields: ReadonlyMap<string, PresenceField> | undefined;
  readonly #maxBytes: number;
  /** Encoding buffer, reused: one copy per encode (as avsc's own `toBuffer`), no growth per call. */
  #scratch: Buffer;

  constructor(options: SessionCodecOptions) {
    if (!Number.isInteger(options.maxSessionBytes) || options.maxSessionBytes <= HEADER_BYTES) {
      throw new ClusterOptionsError('maxSessionBytes', `createSessionCluster: option maxSessionBytes: expected an integer above ${HEADER_BYTES}`);
    }
    this.#maxBytes = options.maxSessionBytes;
    this.#classes = new TypeRegistry(options.types);
    this.#toWire = new ToWire(this.#classes);
    this.#fromWire = new FromWire(this.#classes);

    const registry: Record<string, Type> = {};
    // Null-namespace names a namespaced class or session schema may refer to by their bare name.
    const globals = new Set<string>([...Object.values(N), ...this.#classes.entries.map((e) => e.name)].filter((n) => !n.includes('.')));
    let dynamic: Type;
    try {
      dynamic = parseSchema(dynamicSchema(this.#classes.recordSchemas().map((r) => absoluteGlobalReferences(r, globals) as Record<string, unknown>)), registry);
    } catch (err) {
      throw new ClusterOptionsError('types', `createSessionCluster: option types: ${(err as Error).message}`);
    }
    this.#classes.bind(registry);
    this.#schemas = new SchemaRegistry(dynamic);

    if (options.sessionSchema === undefined) {
      this.#own = this.#schemas.addOwn(dynamic, 'dynamic');
      this.#sessionReader = dynamic;
    } else {
      try {
        const writer = parseSchema(absoluteGlobalReferences(presenceSchema(options.sessionSchema, false), globals), { ...registry });
        this.#sessionReader = parseSchema(absoluteGlobalReferences(presenceSchema(options.sessionSchema, true), globals), { ...registry });
        this.#own = this.#schemas.addOwn(writer, 'record');
        this.#fields = presenceFields(writer);
      } catch (err) {
        if (err instanceof ClusterOptionsError) throw err;
        throw new ClusterOptionsError('sessionSchema', `createSessionCluster: option sessionSchema: ${(err as Error).message}`);
      }
    }
    this.#ownFingerprint = Buffer.from(this.#own.fingerprint, 'hex');
    this.#scratch = Buffer.allocUnsafe(Math.min(64 * 1024, this.#maxBytes));
  }

  check(data: SessionData): void {
    this.#tree(data);
  }

  encodeSession(data: SessionData): Buffer {
    return this.#encode(this.#tree(data));
  }

  encodeEntries(entries: SessionData): Buffer {
    return this.#encode(this.#tree(entries));
  }

  decodeSession(bytes: Buffer): SessionData {
    return this.#decode(bytes, 'session');
  }

  decodeEntries(bytes: Buffer): SessionData {
    return this.#decode(bytes, 'entries');
  }

  /**
   * Each buffer decoded as `decodeEntries` does, merged in order (a later key wins). Then, with a
   * `sessionSchema`, Avro resolution's defaults for the whole session: a reader field with a default
   * that the merged session lacks and that no writer schema of the list declares (by name or by one
   * of the reader field's aliases) reads as its default. A field a writer declared but the session
   * lacks was really absent (never set, or removed), so it stays absent. A writer without a
   * `sessionSchema` (free-form `ksc_Session`) counts as declaring every field, as in
   * `decodeSession`: its sessions could have held any key, so a missing one is really missing.
   */
  decodeEntryList(list: readonly Buffer[]): SessionData {
    if (!isList(list)) throw new CodecError('expected an array of encoded entries');
    const out: SessionData = {};
    if (list.length === 0) return out; // no session at all: no defaults either
    const writers = new Set<KnownSchema>();
    for (const bytes of list) {
      // In order: the first unknown writer schema (or bad buffer) is the one reported.
      const data = this.#decode(bytes, 'entries');
      writers.add(this.#writerOf(bytes));
      // `__proto__` stays a plain own key (Object.assign would set the prototype instead).
      for (const key of Object.keys(data)) setOwn(out, key, data[key]);
    }
    if (this.#fields !== undefined) {
      const declared = (f: Field) => [...writers].some((w) => w.kind === 'dynamic' || declaresField(presenceFields(w.type), f));
      this.#addDefaults(out, declared);
    }
    return out;
  }

  schemaFor(fingerprint: string): string | undefined {
    return this.#schemas.get(fingerprint)?.json;
  }

  fingerprintOf(bytes: Buffer): string | undefined {
    if (!Buffer.isBuffer(bytes) || bytes.length < HEADER_BYTES || bytes[0] !== FORMAT_VERSION) return undefined;
    return bytes.toString('hex', 1, HEADER_BYTES);
  }

  addSchema(json: string): string {
    return this.#schemas.addJson(json).fingerprint;
  }

  /** The wire tree of a session (or of some of its keys), every value checked on the way. */
  #tree(data: SessionData): unknown {
    const w = new Walk();
    if (!isPlainObject(data)) throw new SessionUnserializableError('session', 'session: expected a plain object of session keys');
    try {
      return this.#fields === undefined ? this.#dynamicTree(w, data) : this.#recordTree(w, data, this.#fields);
    } catch (err) {
      if (err instanceof SessionUnserializableError) throw err;
      // A getter or proxy of the application's threw while being read: still say where.
      const e = w.refuse(`reading it threw: ${(err as Error)?.message ?? String(err)}`);
      throw Object.assign(e, { cause: err });
    }
  }

  #dynamicTree(w: Walk, data: Record<string, unknown>): unknown {
    w.enter(data);
    const entries: { key: string; value: unknown }[] = [];
    for (const key of Object.keys(data)) {
      const v = data[key];
      if (v === undefined) continue; // as JSON, and so koa-session, drops it
      w.segments.push(key);
      if (!isWellFormed(key)) throw w.refuse('key contains a lone surrogate, which cannot be encoded; use a well-formed string');
      entries.push({ key, value: this.#toWire.value(w, v) });
      w.segments.pop();
    }
    w.leave();
    return { entries };
  }

  #recordTree(w: Walk, data: Record<string, unknown>, fields: ReadonlyMap<string, PresenceField>): unknown {
    w.enter(data);
    for (const key of Object.keys(data)) {
      if (data[key] !== undefined && !fields.has(key)) {
        w.segments.push(key);
        throw w.refuse(`not in sessionSchema (fields: ${[...fields.keys()].join(', ')}); add it to the schema, or do not store it`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const f of fields.values()) {
      const v = data[f.name];
      if (v === undefined) {
        out[f.name] = null;
        continue;
      }
      w.segments.push(f.name);
      out[f.name] = { [f.branch]: { value: this.#toWire.typed(w, f.valueType, v) } };
      w.segments.pop();
    }
    w.leave();
    return out;
  }

  #encode(tree: unknown): Buffer {
    const type = this.#own.type;
    const { buf, end } = writeGrowing(type, tree, this.#scratch, HEADER_BYTES, this.#maxBytes);
    if (end < 0) throw new SessionTooLargeError(-end, this.#maxBytes);
    this.#scratch = buf;
    if (end > this.#maxBytes) throw new SessionTooLargeError(end, this.#maxBytes);
    const out = Buffer.allocUnsafe(end);
    out[0] = FORMAT_VERSION;
    this.#ownFingerprint.copy(out, 1);
    this.#scratch.copy(out, HEADER_BYTES, HEADER_BYTES, end);
    return out;
  }

  #decode(bytes: Buffer, kind: Kind): SessionData {
    try {
      if (!Buffer.isBuffer(bytes)) throw new CodecError('expected a Buffer');
      if (bytes.length < HEADER_BYTES) throw new CodecError(`truncated: ${bytes.length} bytes, shorter than the ${HEADER_BYTES}-byte header`);
      if (bytes[0] !== FORMAT_VERSION) throw new CodecError(`unknown format version ${bytes[0]} (this member reads ${FORMAT_VERSION})`);
      const writer = this.#writerOf(bytes);
      const end = checkEncoding(writer.type, bytes, HEADER_BYTES);
      if (end !== bytes.length) throw new CodecError(`${bytes.length - end} trailing bytes after the encoded session`);
      if (writer === this.#own) return this.#root(writer.type, this.#read(writer.type, bytes));
      const reader = kind === 'session' ? this.#sessionReader : this.#own.type;
      const resolver = this.#schemas.resolver(writer, reader, kind);
      if (resolver !== null) return this.#root(reader, this.#read(reader, bytes, resolver));
      return this.#adapt(this.#root(writer.type, this.#read(writer.type, bytes)), writer, kind);
    } catch (err) {
      if (err instanceof CodecError || err instanceof UnknownSchemaError) throw err;
      throw new CodecError(`cannot decode session data: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
  }

  /** The writer schema named in the header of `bytes` (length and version checked by the caller). */
  #writerOf(bytes: Buffer): KnownSchema {
    // Our own schema, nearly always: compared as bytes, without making a hex string.
    if (bytes.compare(this.#ownFingerprint, 0, this.#ownFingerprint.length, 1, HEADER_BYTES) === 0) return this.#own;
    const fp = bytes.toString('hex', 1, HEADER_BYTES);
    const writer = fp === this.#own.fingerprint ? this.#own : this.#schemas.get(fp);
    if (writer === undefined) throw new UnknownSchemaError(fp);
    return writer;
  }

  /**
   * Sets the default of every field of this member's `sessionSchema` that has one, that `out` lacks
   * and that the writer did not declare (`declared`), as the codec decodes it (a fresh copy each time).
   */
  #addDefaults(out: SessionData, declared: (readerField: Field) => boolean): void {
    const readerFields = presenceFields(this.#sessionReader);
    for (const f of recordFields(this.#sessionReader)) {
      if (Object.hasOwn(out, f.name) || declared(f)) continue;
      const d = fieldDefault(f);
      const readerField = readerFields.get(f.name)!;
      const present = d === undefined ? undefined : presentValue(readerField, d);
      if (present !== undefined) setOwn(out, f.name, this.#fromWire.typed(readerField.valueType, present.value));
    }
  }

  #read(type: Type, bytes: Buffer, resolver?: Parameters<typeof readAt>[3]): unknown {
    const { value, offset } = readAt(type, bytes, HEADER_BYTES, resolver);
    if (offset !== bytes.length) throw new CodecError('truncated encoded session');
    return value;
  }

  /** A root tree (`ksc_Session` or a presence record, read with `type`) as session data. */
  #root(type: Type, tree: unknown): SessionData {
    if (type.name === N.session) {
      return this.#fromWire.entries(this.#valueTypeOf(type), (tree as { entries: { key: string; value: unknown }[] }).entries);
    }
    const out: SessionData = {};
    const rec = tree as Record<string, unknown>;
    for (const f of presenceFields(type).values()) {
      const present = presentValue(f, rec[f.name]);
      if (present === undefined) continue;
      const value = this.#fromWire.typed(f.valueType, present.value);
      if (value === undefined) throw new CodecError(`undefined as session.${f.name} in encoded data (never written by this codec)`);
      out[f.name] = value;
    }
    return out;
  }

  /** The `ksc_Value` type inside a `ksc_Session` type (entries: array of { key, value }). */
  #valueTypeOf(sessionType: Type): Type {
    return recordFields(arrayItems(recordFields(sessionType)[0].type))[1].type;
  }

  /**
   * Values read with a writer schema Avro could not resolve into this member's, made to fit it:
   * keys this member's `sessionSchema` lacks are dropped (as Avro drops a writer's extra fields),
   * the rest must match its types; reading a whole session, fields the writer's schema lacked take
   * this member's defaults.
   */
  #adapt(data: SessionData, writer: KnownSchema, kind: Kind): SessionData {
    const fields = this.#fields;
    if (fields === undefined) return data;
    const out: SessionData = {};
    for (const key of Object.keys(data)) {
      const f = fields.get(key);
      if (f === undefined) continue;
      const w = new Walk();
      w.segments.push(key);
      try {
        this.#toWire.typed(w, f.valueType, data[key]);
      } catch (err) {
        if (!(err instanceof SessionUnserializableError)) throw err;
        throw new CodecError(`${err.message} (written with schema ${writer.fingerprint}, which does not fit this member's sessionSchema)`, { cause: err });
      }
      out[key] = data[key];
    }
    if (kind === 'session' && writer.kind === 'record') {
      const written = presenceFields(writer.type);
      this.#addDefaults(out, (f) => written.has(f.name));
    }
    return out;
  }
}

/**
 * The session codec of one member, built from its options. Pure: no I/O, no timers.
 * @throws ClusterOptionsError if `types` or `sessionSchema` cannot be turned into Avro schemas.
 */
export function createSessionCodec(options: SessionCodecOptions): SessionCodec {
  return new AvroSessionCodec(options);
}
