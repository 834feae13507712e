/**
 * How a user's `sessionSchema` (an Avro record) is written. A session rarely holds every field, and
 * a delta holds one key, so each field becomes optional with a presence marker:
 * `user: ["null", { record ksc_present_user { value: <the user's type> } }]`. Absent stays absent
 * (not `null`: JSON would tell them apart, so must we), and the marker costs one byte per field.
 *
 * Reading a whole session, a field the writer's schema did not have takes the reader's default (Avro
 * resolution); reading entries, it stays absent, since entries are merged key by key and a default
 * must never overwrite a value written under the newer schema. A whole session kept as entries
 * (`decodeEntryList`) takes the defaults of the fields that none of its entries' writer schemas had.
 */
import { ClusterOptionsError } from '../errors.js';
import type { Type } from './avro.js';
import { branchesByName, recordFields, unionBranches } from './avro.js';

/** Prefix of the presence wrapper record of a field (in the session record's namespace). */
export const PRESENCE_PREFIX = 'ksc_present_';

function optionError(message: string): ClusterOptionsError {
  return new ClusterOptionsError('sessionSchema', `createSessionCluster: option sessionSchema: ${message}`);
}

interface UserField {
  name: string;
  type: unknown;
  default?: unknown;
  aliases?: unknown;
  doc?: unknown;
}

/**
 * The schema written for a `sessionSchema`. `withDefaults` makes the reader schema for whole
 * sessions: a field with a default reads as present with it when the writer lacked the field.
 * @throws ClusterOptionsError if `sessionSchema` is not an Avro record schema.
 */
export function presenceSchema(user: Readonly<Record<string, unknown>>, withDefaults: boolean): Record<string, unknown> {
  if (user.type !== 'record' || typeof user.name !== 'string') {
    throw optionError('expected an Avro record schema: { type: "record", name, fields: [...] }');
  }
  const fields = user.fields;
  if (!Array.isArray(fields) || fields.some((f) => typeof (f as UserField | null)?.name !== 'string')) {
    throw optionError('expected fields: [{ name, type }, ...]');
  }
  return {
    ...user,
    fields: (fields as UserField[]).map((f) => {
      // A field renamed with `aliases` keeps reading the old name's data: Avro matches the field by
      // alias, and its presence wrapper (a named record in the field's union) must match too.
      const renamedFrom = Array.isArray(f.aliases) ? f.aliases.filter((a): a is string => typeof a === 'string') : [];
      const wrapper = {
        type: 'record',
        name: `${PRESENCE_PREFIX}${f.name}`,
        ...(renamedFrom.length > 0 ? { aliases: renamedFrom.map((a) => `${PRESENCE_PREFIX}${a}`) } : {}),
        fields: [{ name: 'value', type: f.type }],
      };
      const extra = { ...(f.aliases !== undefined ? { aliases: f.aliases } : {}), ...(f.doc !== undefined ? { doc: f.doc } : {}) };
      if (withDefaults && 'default' in f) return { name: f.name, type: [wrapper, 'null'], default: { value: f.default }, ...extra };
      return { name: f.name, type: ['null', wrapper], default: null, ...extra };
    }),
  };
}

/** One field of a presence record: its wrapper branch and the user's type inside. */
export interface PresenceField {
  readonly name: string;
  readonly union: Type;
  /** Branch name of the wrapper in the field's union. */
  readonly branch: string;
  /** The user's type of the field. */
  readonly valueType: Type;
}

const cache = new WeakMap<Type, ReadonlyMap<string, PresenceField>>();

/** The fields of a presence record type (this member's or a peer's), by name. */
export function presenceFields(root: Type): ReadonlyMap<string, PresenceField> {
  let out = cache.get(root);
  if (out === undefined) {
    const map = new Map<string, PresenceField>();
    for (const f of recordFields(root)) {
      const wrapper = unionBranches(f.type).find((b) => b.typeName === 'record')!;
      map.set(f.name, { name: f.name, union: f.type, branch: wrapper.branchName!, valueType: recordFields(wrapper)[0].type });
    }
    out = map;
    cache.set(root, out);
  }
  return out;
}

/** The value inside a presence field's wire value, or `undefined` if absent. */
export function presentValue(field: PresenceField, tree: unknown): { value: unknown } | undefined {
  if (tree === null || tree === undefined) return undefined;
  for (const k in tree) {
    if (branchesByName(field.union).get(k)?.typeName !== 'record') return undefined;
    return (tree as Record<string, { value: unknown }>)[k];
  }
  return undefined;
}
