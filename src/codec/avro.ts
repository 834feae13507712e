/**
 * The one place that touches `avsc`. Its typings are loose (`any` everywhere), so this module
 * narrows what the codec takes from it: parsing with the codec's options, typed views of a type's
 * parts, a namespace-safe schema export, and short fingerprints.
 */
import avro from 'avsc';
import type { Schema, Type, types } from 'avsc';

export type { Type };
/** A compiled writer-to-reader resolver (opaque). */
export type Resolver = ReturnType<Type['createResolver']>;
/** A record field as avsc describes it. */
export type Field = types.Field;

/**
 * `timestamp-millis` kept as a plain number inside avsc: the codec's own tree walk turns it into a
 * `Date` and back, so avsc never sees a `Date` and resolution between long and timestamp still works.
 */
class TimestampMillisType extends avro.types.LogicalType {
  protected override _fromValue(value: unknown): unknown {
    return value;
  }
  protected override _toValue(value: unknown): unknown {
    return value;
  }
  protected override _resolve(type: Type): ((value: unknown) => unknown) | undefined {
    return avro.Type.isType(type, 'long', 'int', 'logical:timestamp-millis') ? (value: unknown) => value : undefined;
  }
}

/**
 * Parses a schema the way every codec schema is parsed: unions always wrapped (so the codec picks
 * branches itself: a long and a double, or two records, are never ambiguous), `timestamp-millis`
 * understood, records read as lean objects. `registry` lets a schema refer to named types parsed
 * before (registered classes, `ksc_Value`); it is extended with the new names.
 */
export function parseSchema(schema: unknown, registry?: Record<string, Type>): Type {
  return avro.Type.forSchema(schema as Schema, {
    wrapUnions: 'always',
    logicalTypes: { 'timestamp-millis': TimestampMillisType },
    omitRecordMethods: true,
    ...(registry ? { registry } : {}),
  });
}

/** Parses a schema with avsc's defaults (unwrapped unions where unambiguous): for messages. */
export function parsePlainSchema(schema: unknown): Type {
  return avro.Type.forSchema(schema as Schema, { omitRecordMethods: true });
}

/** Bytes of the schema fingerprint carried in each encoded session (first bytes of SHA-256). */
export const FINGERPRINT_BYTES = 8;

/**
 * The schema's fingerprint: the first 8 bytes of the SHA-256 of its canonical form (names, types,
 * fields; no defaults, docs or logical types: what determines the bytes). 64 bits keep per-entry
 * headers small; a cluster sees a handful of schemas, so an accidental collision is out of reach,
 * and `addSchema` refuses a schema that would collide with a different one it knows.
 */
export function fingerprint(type: Type): Buffer {
  return type.fingerprint('sha256').subarray(0, FINGERPRINT_BYTES);
}

/** The canonical form as text, to tell two schemas with one fingerprint apart. */
export function canonicalForm(type: Type): string {
  return JSON.stringify(type.schema());
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);

/** Values of `type` that are not references to a named type. */
const KEYWORDS = new Set([...PRIMITIVES, 'record', 'error', 'enum', 'fixed', 'array', 'map']);
const NAMED = new Set(['record', 'error', 'enum', 'fixed']);

function namespaceOf(fullName: string): string {
  const i = fullName.lastIndexOf('.');
  return i < 0 ? '' : fullName.slice(0, i);
}

/** What a walk over schema JSON does with each named definition and each reference to a name. */
interface SchemaVisitor {
  /** A named definition (a copy, free to change) in namespace `ns`. */
  definition?(def: Record<string, unknown>, ns: string): void;
  /** The full name of each definition, once `definition` had its say. */
  defined?(full: string): void;
  /** A reference to a named type, as written, in namespace `ns`; returns what to write instead. */
  reference?(name: string, ns: string): string;
}

/** Copies schema JSON, tracking Avro's namespace rules, letting `visitor` see and change names. */
function mapSchema(node: unknown, ns: string, visitor: SchemaVisitor): unknown {
  if (typeof node === 'string') {
    return PRIMITIVES.has(node) || visitor.reference === undefined ? node : visitor.reference(node, ns);
  }
  if (Array.isArray(node)) return node.map((n) => mapSchema(n, ns, visitor));
  if (node === null || typeof node !== 'object') return node;
  const obj = { ...(node as Record<string, unknown>) };
  let inner = ns;
  if (typeof obj.name === 'string' && NAMED.has(obj.type as string)) {
    visitor.definition?.(obj, ns);
    const own = typeof obj.namespace === 'string' ? obj.namespace : ns;
    const full = obj.name.includes('.') || own === '' ? obj.name.replace(/^\./, '') : `${own}.${obj.name}`;
    visitor.defined?.(full);
    inner = namespaceOf(full);
  }
  if (typeof obj.type === 'string' && !KEYWORDS.has(obj.type)) obj.type = mapSchema(obj.type, ns, visitor);
  else if (typeof obj.type === 'object') obj.type = mapSchema(obj.type, ns, visitor);
  if (Array.isArray(obj.fields)) {
    obj.fields = obj.fields.map((f: unknown) => {
      const field = { ...(f as Record<string, unknown>) };
      field.type = mapSchema(field.type, inner, visitor);
      return field;
    });
  }
  if (obj.items !== undefined) obj.items = mapSchema(obj.items, ns, visitor);
  if (obj.values !== undefined) obj.values = mapSchema(obj.values, ns, visitor);
  return obj;
}

/**
 * avsc exports full names but no `namespace` attributes, so a name in the null namespace written
 * inside a namespaced record (`ksc_Value` inside `com.acme.Session`) would be read back as
 * `com.acme.ksc_Value`. This marks such definitions `namespace: ""` and such references with a
 * leading dot (avsc's absolute reference), so the text parses back to the very same names.
 */
function fixNamespaces(schema: unknown): unknown {
  return mapSchema(schema, '', {
    // avsc exports full names: a name without a dot is in the null namespace.
    definition: (def, ns) => {
      if (!(def.name as string).includes('.') && ns !== '') def.namespace = '';
    },
    reference: (name, ns) => (ns !== '' && !name.includes('.') ? `.${name}` : name),
  });
}

/**
 * Makes a user's references to `globals` (names in the null namespace: `ksc_Value`, registered
 * classes) absolute inside a namespaced schema, where Avro would otherwise read `Money` in
 * `com.example.Session` as `com.example.Money`. A name the schema defines itself keeps its meaning.
 */
export function absoluteGlobalReferences(schema: unknown, globals: ReadonlySet<string>): unknown {
  const defined = new Set<string>();
  mapSchema(schema, '', { defined: (full) => void defined.add(full) });
  return mapSchema(schema, '', {
    reference: (name, ns) =>
      ns !== '' && !name.includes('.') && globals.has(name) && !defined.has(`${ns}.${name}`) ? `.${name}` : name,
  });
}

/** The schema as JSON text, every attribute kept, that parses back (`parseSchema`) to the same names. */
export function exportSchema(type: Type): string {
  return JSON.stringify(fixNamespaces(type.schema({ exportAttrs: true })));
}

// Typed views of a type's parts (avsc's typings leave them `any` or on subclasses).

/** A record's fields. */
export function recordFields(type: Type): readonly Field[] {
  return (type as types.RecordType).fields;
}

/** A union's branch types, in order. */
export function unionBranches(type: Type): readonly Type[] {
  return (type as types.WrappedUnionType).types;
}

/** An array's item type. */
export function arrayItems(type: Type): Type {
  return (type as types.ArrayType).itemsType;
}

/** A map's value type. */
export function mapValues(type: Type): Type {
  return (type as types.MapType).valuesType as Type;
}

/** An enum's symbols. */
export function enumSymbols(type: Type): readonly string[] {
  return (type as types.EnumType).symbols;
}

/** A fixed type's size in bytes. */
export function fixedSize(type: Type): number {
  return (type as types.FixedType).size;
}

/** A logical type's underlying type. */
export function underlying(type: Type): Type {
  return (type as types.LogicalType).underlyingType;
}

/** A field's default as avsc holds it (already in wire-tree form), or `undefined` if it has none. */
export function fieldDefault(field: Field): unknown {
  return field.defaultValue() as unknown;
}

const branchMaps = new WeakMap<Type, Map<string, Type>>();

/** A wrapped union's branches by branch name (the key avsc uses in a wrapped value). */
export function branchesByName(union: Type): Map<string, Type> {
  let map = branchMaps.get(union);
  if (map === undefined) {
    map = new Map(unionBranches(union).map((t) => [t.branchName ?? 'null', t]));
    branchMaps.set(union, map);
  }
  return map;
}

/** Reads `bytes` from `offset` with `type`, through `resolver` when given; `undefined` value if truncated. */
export function readAt(type: Type, bytes: Buffer, offset: number, resolver?: Resolver): { value: unknown; offset: number } {
  const out = type.decode(bytes, offset, resolver);
  return { value: out.value as unknown, offset: out.offset };
}

/** Writes `value` (a wire tree) into `buf` at `offset`; returns the end, or minus the bytes missing. */
export function writeAt(type: Type, value: unknown, buf: Buffer, offset: number): number {
  return type.encode(value, buf, offset);
}

/**
 * Writes `value` at `offset` of a reused `scratch`; when it is too short, into a new one (twice as long,
 * or as long as needed, at most `cap` bytes), written again. Returns the buffer written into and the end,
 * or with `end` below 0 (minus the bytes needed) when `cap` bytes would not hold it.
 */
export function writeGrowing(type: Type, value: unknown, scratch: Buffer, offset: number, cap: number): { buf: Buffer; end: number } {
  const end = writeAt(type, value, scratch, offset);
  if (end >= 0) return { buf: scratch, end };
  const needed = scratch.length - end;
  if (needed > cap) return { buf: scratch, end: -needed };
  const buf = Buffer.allocUnsafeSlow(Math.min(cap, Math.max(needed, scratch.length * 2)));
  return { buf, end: writeAt(type, value, buf, offset) };
}
