/**
 * The Avro schema of arbitrary session values, used when no `sessionSchema` is given (and available
 * to a `sessionSchema` as the named type `ksc_Value`, for a free-form field).
 *
 * A value is a record `ksc_Value` holding one union: one branch per kind of value, so the kind travels
 * with the value (a `Date` comes back a `Date`, a `Uint8Array` a `Uint8Array`, not a `Buffer`). The
 * single-field records cost no bytes on the wire: only the union index (one byte) and the content.
 * Plain objects are arrays of key/value entries rather than Avro maps, so any key round-trips,
 * `__proto__` included (avsc reads a map into `{}` by assignment). Names carry the reserved prefix
 * `ksc_`; registered classes are further branches, named as registered.
 */

/** Prefix of every type name the codec defines; refused for registered classes. */
export const RESERVED_PREFIX = 'ksc_';

/** Names of the codec's own types, i.e. the branches a value can take. */
export const N = {
  session: 'ksc_Session',
  entry: 'ksc_Entry',
  value: 'ksc_Value',
  undefined: 'ksc_Undefined',
  buffer: 'ksc_Buffer',
  decimal: 'ksc_Decimal',
  date: 'ksc_Date',
  farDate: 'ksc_FarDate',
  uint8Array: 'ksc_Uint8Array',
  rawString: 'ksc_RawString',
  object: 'ksc_Object',
  nullProtoObject: 'ksc_NullProtoObject',
} as const;

/** Name of the free-form value type, for use in a `sessionSchema` field: `{ name: 'prefs', type: 'ksc_Value' }`. */
export const SESSION_VALUE_TYPE = N.value;

/**
 * The schema of a whole session without `sessionSchema`: its top-level keys as entries.
 * `classRecords` are the registered classes' record schemas, appended to the union in order.
 */
export function dynamicSchema(classRecords: readonly Record<string, unknown>[]): Record<string, unknown> {
  const entries = { type: 'array', items: N.entry };
  const value = {
    type: 'record',
    name: N.value,
    fields: [
      {
        name: 'v',
        type: [
          'null', // first: the only default a `ksc_Value` field of a sessionSchema can have is null
          // A registered class's field left undefined (own property kept: TypeScript class fields are own).
          { type: 'record', name: N.undefined, fields: [] },
          'boolean',
          'long', // safe integers from -2^52: a zigzag varint, 1 to 8 bytes
          'double', // every other finite number (and -0)
          // A fraction with a short decimal form (a price: 9.99) as unscaled / 10^scale: 3 to 4 bytes, not 8.
          { type: 'record', name: N.decimal, fields: [{ name: 'unscaled', type: 'long' }, { name: 'scale', type: 'int' }] },
          'string',
          // A Buffer. Named, not plain `bytes`: avsc resolves a union branch to the first reader branch it
          // can be promoted to, and Avro promotes bytes to string, so a Buffer would come back a string.
          { type: 'record', name: N.buffer, fields: [{ name: 'bytes', type: 'bytes' }] },
          { type: 'record', name: N.date, fields: [{ name: 'ms', type: 'long' }] },
          // A Date before -2^52 ms (year -140000), which avsc cannot write as a long: exact as a double.
          { type: 'record', name: N.farDate, fields: [{ name: 'ms', type: 'double' }] },
          { type: 'record', name: N.uint8Array, fields: [{ name: 'bytes', type: 'bytes' }] },
          // A string with a lone surrogate, which UTF-8 cannot carry: kept exactly as UTF-16.
          { type: 'record', name: N.rawString, fields: [{ name: 'utf16le', type: 'bytes' }] },
          { type: 'array', items: N.value },
          { type: 'record', name: N.object, fields: [{ name: 'entries', type: entries }] },
          { type: 'record', name: N.nullProtoObject, fields: [{ name: 'entries', type: entries }] },
          ...classRecords,
        ],
      },
    ],
  };
  return {
    type: 'record',
    name: N.session,
    fields: [
      {
        name: 'entries',
        type: {
          type: 'array',
          items: {
            type: 'record',
            name: N.entry,
            fields: [
              { name: 'key', type: 'string' },
              { name: 'value', type: value },
            ],
          },
        },
      },
    ],
  };
}
