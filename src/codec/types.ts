/**
 * The codec layer's public contract. Pure: no I/O, no timers. Everything that comes from the
 * wire is decoded here and fails only with typed errors (`CodecError`, `UnknownSchemaError`).
 */

/**
 * A session's user data: koa-session's top-level keys. The keys koa-session adds itself
 * (`_expire`, `_maxAge`) are taken off by the store before the codec sees the data.
 */
export type SessionData = Record<string, unknown>;

/**
 * A class registered for replication (option `types`). Declared here, not in `options.ts`, so the
 * codec imports nothing above it; the options schema produces this shape.
 */
export interface RegisteredType {
  /** Avro record name the class travels under. */
  name: string;
  /** The class itself. */
  type: abstract new (...args: never[]) => object;
  /** Avro record schema of its fields; exactly one of `schema` and `fields`. */
  schema?: Record<string, unknown> | undefined;
  /** Field names, each encoded as any value; exactly one of `schema` and `fields`. */
  fields?: string[] | undefined;
  /** Builds an instance from decoded fields; by default `Object.create(prototype)` plus the fields. */
  revive?: ((fields: Record<string, unknown>) => object) | undefined;
}

/** Encodes and decodes session values for replication. One instance per member. */
export interface SessionCodec {
  /**
   * Checks every value, depth first; throws `SessionUnserializableError` whose message names the
   * first offending path, e.g. `session.user.profile: instance of class Profile is not
   * serializable; register it with types: [...] or store plain data`.
   */
  check(data: SessionData): void;
  /**
   * Encodes a whole session. Throws `SessionUnserializableError` or `SessionTooLargeError`
   * (over `maxSessionBytes`). The bytes carry the writer schema's fingerprint.
   */
  encodeSession(data: SessionData): Buffer;
  /** Decodes a whole session; `CodecError` on bad bytes, `UnknownSchemaError` if the writer schema is unknown. */
  decodeSession(bytes: Buffer): SessionData;
  /** Encodes some top-level entries of a session (the keys a delta sets). Same errors as `encodeSession`. */
  encodeEntries(entries: SessionData): Buffer;
  /** Decodes what `encodeEntries` made; same errors as `decodeSession`. */
  decodeEntries(bytes: Buffer): SessionData;
  /**
   * Decodes a whole session kept as one `encodeEntries` buffer per key (as the replication layer
   * keeps it), merged in order, with Avro resolution's defaults: a field of the reader's
   * `sessionSchema` that no entry carries and that the writer schemas did not have gets its default
   * (a v1 writer's session read by a v2 member). Throws `UnknownSchemaError` for the first unknown
   * writer schema, `CodecError` on bad bytes.
   */
  decodeEntryList(list: readonly Buffer[]): SessionData;
  /** The JSON text of a schema this codec knows, by hex fingerprint (to answer a peer's fetch). */
  schemaFor(fingerprint: string): string | undefined;
  /**
   * The hex fingerprint of the writer schema that `bytes` (made by `encodeSession` or
   * `encodeEntries`) were written with, read from their header without decoding; `undefined` if the
   * header is malformed. Lets a copy holder learn unknown schemas while the writer is alive.
   */
  fingerprintOf(bytes: Buffer): string | undefined;
  /** Registers a writer schema fetched from a peer; returns its fingerprint. Throws `CodecError` if invalid. */
  addSchema(json: string): string;
}

/** Encodes and decodes one cluster message type with its own Avro schema. */
export interface MessageCodec<T> {
  encode(value: T): Buffer;
  /** Throws `CodecError` on truncated, trailing or malformed bytes. */
  decode(bytes: Buffer): T;
}
