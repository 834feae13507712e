import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createSessionCodec, SESSION_VALUE_TYPE, type SessionData } from '../../src/codec/index.js';
import { CodecError, SessionUnserializableError, UnknownSchemaError } from '../../src/errors.js';
import { decodeFrom, Money, Point, registered, sessionValue } from './arbitraries.js';

const MiB = 1024 * 1024;

const user = (extra: object[] = []) => ({
  type: 'record',
  name: 'User',
  fields: [{ name: 'id', type: 'long' }, { name: 'name', type: 'string' }, ...extra],
});

/** Version 1 of an app's session schema. */
const v1 = {
  type: 'record',
  name: 'com.example.Session',
  fields: [
    { name: 'user', type: user() },
    { name: 'legacyTheme', type: 'string' },
    { name: 'views', type: 'long' },
    { name: 'lastSeen', type: ['null', { type: 'long', logicalType: 'timestamp-millis' }], default: null },
  ],
};

/** Version 2: a field added with a default (top level and nested), a field removed. */
const v2 = {
  type: 'record',
  name: 'com.example.Session',
  fields: [
    { name: 'user', type: user([{ name: 'email', type: ['null', 'string'], default: null }]) },
    { name: 'views', type: 'long' },
    { name: 'lastSeen', type: ['null', { type: 'long', logicalType: 'timestamp-millis' }], default: null },
    { name: 'locale', type: 'string', default: 'en' },
    { name: 'prefs', type: SESSION_VALUE_TYPE, default: { v: null } },
  ],
};

const member = (sessionSchema?: Record<string, unknown>, types = registered) => createSessionCodec({ types, sessionSchema, maxSessionBytes: MiB });

test('v1 data is read by a v2 member through Avro resolution, fetching the writer schema once', () => {
  const a = member(v1);
  const b = member(v2);
  const lastSeen = new Date('2024-09-04T08:00:00Z');
  const written = { user: { id: 1, name: 'kim' }, legacyTheme: 'dark', views: 3, lastSeen };
  const bytes = a.encodeSession(written);
  assert.throws(() => b.decodeSession(bytes), (err: unknown) => err instanceof UnknownSchemaError && err.fingerprint === a.fingerprintOf(bytes));

  const first = decodeFrom(b, a, () => b.decodeSession(bytes));
  assert.equal(first.fetched, 1);
  // Removed field dropped; added fields take their defaults, nested ones too.
  assert.deepStrictEqual(first.value, { user: { id: 1, name: 'kim', email: null }, views: 3, lastSeen, locale: 'en', prefs: null });
  // The schema is cached: the next session from a v1 member needs no fetch.
  const again = decodeFrom(b, a, () => b.decodeSession(a.encodeSession({ views: 4 })));
  assert.equal(again.fetched, 0);
  assert.deepStrictEqual(again.value, { views: 4, locale: 'en', prefs: null });
});

test('v2 data is read by a v1 member: fields unknown to v1 are dropped', () => {
  const a = member(v1);
  const b = member(v2);
  const bytes = b.encodeSession({ user: { id: 2, name: 'lee', email: 'lee@example.com' }, views: 9, locale: 'ko', prefs: { dark: true } });
  const { value, fetched } = decodeFrom(a, b, () => a.decodeSession(bytes));
  assert.equal(fetched, 1);
  // lastSeen is absent, not its default: the writer's schema has the field, the session did not hold it.
  assert.deepStrictEqual(value, { user: { id: 2, name: 'lee' }, views: 9 });
});

test('entries are merged key by key, so reading them adds no defaults (a default must not overwrite a newer value)', () => {
  const a = member(v1);
  const b = member(v2);
  const fromV1 = a.encodeEntries({ views: 5 });
  const fromV2 = b.encodeEntries({ locale: 'fr' });
  // As the replication layer rebuilds a session: one decodeEntries per key, merged.
  const merged: SessionData = {};
  for (const bytes of [fromV2, fromV1]) Object.assign(merged, decodeFrom(b, a, () => b.decodeEntries(bytes)).value);
  assert.deepStrictEqual(merged, { locale: 'fr', views: 5 });
  // A key v2 removed is dropped when v2 reads v1's entry for it.
  assert.deepStrictEqual(decodeFrom(b, a, () => b.decodeEntries(a.encodeEntries({ legacyTheme: 'x' }))).value, {});
  // And v1 reads v2's entries.
  assert.deepStrictEqual(decodeFrom(a, b, () => a.decodeEntries(b.encodeEntries({ user: { id: 1, name: 'n', email: null } }))).value, {
    user: { id: 1, name: 'n' },
  });
});

test('with a sessionSchema, absent keys stay absent, null stays null, and everything round-trips', () => {
  const b = member(v2);
  for (const data of [{}, { lastSeen: null }, { lastSeen: new Date(0), views: 0 }, { prefs: { any: [1, 'x', new Point(1, 2)] } }]) {
    assert.deepStrictEqual(b.decodeSession(b.encodeSession(data)), data);
    assert.deepStrictEqual(b.decodeEntries(b.encodeEntries(data)), data);
  }
});

test('with a sessionSchema, a key outside it or a value of the wrong type is refused naming its path', () => {
  const b = member(v2);
  const cases: [SessionData, string][] = [
    [{ cart: [] }, 'session.cart: not in sessionSchema (fields: user, views, lastSeen, locale, prefs); add it to the schema, or do not store it'],
    [{ user: { id: '1', name: 'x' } }, 'session.user.id: expected long (as the schema says), got a string'],
    [{ user: { id: 1 } }, 'session.user.name: missing: record com.example.User requires field name (it has no default)'],
    [{ user: { id: 1, name: 'x', age: 3 } }, 'session.user.age: not a field of record com.example.User (fields: id, name, email)'],
    [{ lastSeen: '2024-01-01' }, 'session.lastSeen: expected one of [null, a Date] (as the schema says), got a string'],
    [{ views: 1.5 }, 'session.views: expected long (as the schema says), got the number 1.5'],
    [{ views: new Map() }, 'session.views: Map is not serializable (JSON.stringify hides its content, so koa-session would not notice changes); store an array or plain object'],
    [{ prefs: { f: () => 1 } }, 'session.prefs.f: function f is not serializable; store plain data'],
  ];
  for (const [data, message] of cases) {
    assert.throws(() => b.encodeEntries(data), (err: unknown) => err instanceof SessionUnserializableError && err.message === message, message);
    assert.throws(() => b.check(data), { message });
  }
});

test('members with and without a sessionSchema read each other (the rolling upgrade that introduces one)', () => {
  const plain = member();
  const schema = member(v2);
  const fromPlain = plain.encodeSession({ user: { id: 7, name: 'park' }, views: 2, cart: ['dropped: not in the schema'] });
  assert.deepStrictEqual(decodeFrom(schema, plain, () => schema.decodeSession(fromPlain)).value, { user: { id: 7, name: 'park' }, views: 2 });
  const fromSchema = schema.encodeSession({ user: { id: 8, name: 'choi', email: null }, locale: 'ko' });
  assert.deepStrictEqual(decodeFrom(plain, schema, () => plain.decodeSession(fromSchema)).value, {
    user: { id: 8, name: 'choi', email: null },
    locale: 'ko',
  });
  // Plain data that does not fit the schema is a CodecError naming the key, not a wrong value.
  const misfit = plain.encodeEntries({ views: 'many' });
  assert.throws(() => schema.decodeEntries(misfit), (err: unknown) => err instanceof CodecError && err.message.startsWith('session.views: expected long'));
});

test('a class registered on one member only: other data still reads; its instances are never constructed elsewhere', () => {
  let constructed = 0;
  class Secret {
    constructor(public value: string) {
      constructed++;
    }
  }
  const withSecret = member(undefined, [...registered, { name: 'Secret', type: Secret, fields: ['value'] }]);
  const without = member(undefined, registered);
  const plainBytes = withSecret.encodeSession({ a: 1, p: new Point(1, 2), m: new Money(3, 'EUR') });
  assert.deepStrictEqual(decodeFrom(without, withSecret, () => without.decodeSession(plainBytes)).value, { a: 1, p: new Point(1, 2), m: new Money(3, 'EUR') });
  const secretBytes = withSecret.encodeEntries({ s: { deep: [new Secret('x')] } });
  constructed = 0;
  assert.throws(
    () => without.decodeEntries(secretBytes),
    (err: unknown) => err instanceof CodecError && /class Secret, which is not registered on this member/.test(err.message),
  );
  assert.equal(constructed, 0);
  // The other way round is plain Avro resolution.
  assert.deepStrictEqual(decodeFrom(withSecret, without, () => withSecret.decodeSession(without.encodeSession({ p: new Point(0, 0) }))).value, {
    p: new Point(0, 0),
  });
});

test('a registered class whose fields changed: a new field reads as undefined, a removed one is dropped', () => {
  class Cart {
    items: unknown;
    coupon: unknown;
  }
  const old = member(undefined, [{ name: 'Cart', type: Cart, fields: ['items'] }]);
  const next = member(undefined, [{ name: 'Cart', type: Cart, fields: ['items', 'coupon'] }]);
  const cart = Object.assign(new Cart(), { items: ['a'], coupon: undefined });
  const read = decodeFrom(next, old, () => next.decodeSession(old.encodeSession({ cart: Object.assign(new Cart(), { items: ['a'] }) }))).value;
  assert.ok(read.cart instanceof Cart);
  assert.deepStrictEqual(read, { cart });
  const back = decodeFrom(old, next, () => old.decodeSession(next.encodeSession({ cart: Object.assign(new Cart(), { items: ['b'], coupon: 'X' }) }))).value;
  assert.ok(back.cart instanceof Cart);
  // Revived without running the constructor: only the fields this member registered are set.
  assert.deepStrictEqual({ ...back.cart }, { items: ['b'] });
});

test('property: sessions of plain data and shared classes read alike on members with different registrations', () => {
  const a = member(undefined, registered);
  const b = member(undefined, [registered[0], { name: 'Other', type: class Other {}, fields: ['o'] }, registered[1]]);
  decodeFrom(b, a, () => b.decodeSession(a.encodeSession({})));
  decodeFrom(a, b, () => a.decodeSession(b.encodeSession({})));
  fc.assert(
    fc.property(fc.dictionary(fc.string(), sessionValue, { maxKeys: 4, noNullPrototype: true }), (data) => {
      assert.deepStrictEqual(b.decodeSession(a.encodeSession(data)), data);
      assert.deepStrictEqual(a.decodeEntries(b.encodeEntries(data)), data);
    }),
    { numRuns: 300 },
  );
});

test('schemas with namespaces, registered classes and ksc_Value survive the fetch (export and re-parse)', () => {
  const schema = {
    type: 'record',
    name: 'Cart',
    namespace: 'com.example.shop',
    fields: [
      { name: 'owner', type: { type: 'record', name: 'Owner', fields: [{ name: 'id', type: 'long' }] } },
      { name: 'total', type: 'Money' }, // a registered class, in the null namespace
      { name: 'at', type: 'Point' },
      { name: 'extra', type: ['null', SESSION_VALUE_TYPE] },
      { name: 'kind', type: { type: 'enum', name: 'Kind', symbols: ['NEW', 'PAID'] } },
      { name: 'again', type: 'Owner' },
    ],
  };
  const a = member(schema);
  const b = member({ ...schema, fields: schema.fields.filter((f) => f.name !== 'kind') }, [...registered].reverse());
  const data = { owner: { id: 1 }, total: new Money(10, 'EUR'), at: new Point('x', [1]), extra: { n: 1 }, kind: 'PAID', again: { id: 2 } };
  assert.deepStrictEqual(a.decodeSession(a.encodeSession(data)), data);
  const { value, fetched } = decodeFrom(b, a, () => b.decodeSession(a.encodeSession(data)));
  assert.equal(fetched, 1);
  const { kind: _kind, ...rest } = data;
  assert.deepStrictEqual(value, rest);
  assert.ok(value.total instanceof Money);
});

test('schemaFor serves this member\'s schema and fetched ones; fingerprints are 16 hex digits', () => {
  const a = member(v1);
  const b = member(v2);
  const fp = a.fingerprintOf(a.encodeSession({}))!;
  assert.match(fp, /^[0-9a-f]{16}$/);
  assert.equal(b.schemaFor(fp), undefined);
  assert.equal(b.addSchema(a.schemaFor(fp)!), fp);
  assert.equal(typeof b.schemaFor(fp), 'string');
  assert.equal(b.addSchema(a.schemaFor(fp)!), fp, 'adding twice is harmless');
  assert.equal(a.fingerprintOf(a.encodeEntries({ views: 1 })), fp, 'sessions and entries share the writer schema');
});

test('when Avro cannot resolve two session schemas (a class known to the writer only), defaults still apply', () => {
  class Badge {
    constructor(public label: string) {}
  }
  const v1WithAny = { ...v1, fields: [...v1.fields, { name: 'prefs', type: SESSION_VALUE_TYPE, default: { v: null } }] };
  const a = member(v1WithAny, [...registered, { name: 'Badge', type: Badge, fields: ['label'] }]);
  const b = member(v2);
  const bytes = a.encodeSession({ views: 1, legacyTheme: 'x', prefs: { compact: true } });
  assert.deepStrictEqual(decodeFrom(b, a, () => b.decodeSession(bytes)).value, { views: 1, prefs: { compact: true }, locale: 'en' });
  assert.deepStrictEqual(b.decodeEntries(a.encodeEntries({ views: 2 })), { views: 2 });
  assert.throws(() => b.decodeEntries(a.encodeEntries({ prefs: new Badge('gold') })), (err: unknown) => err instanceof CodecError && /class Badge/.test(err.message));
});

/** Sessions that fit v1: any subset of its fields. */
const v1Session = fc.record(
  {
    // Schema records read back as ordinary objects (only ksc_Value keeps a null prototype).
    user: fc.record({ id: fc.integer(), name: fc.string() }, { noNullPrototype: true }),
    legacyTheme: fc.string(),
    views: fc.maxSafeInteger().filter((n) => n >= -(2 ** 52) && n <= 2 ** 53 - 2),
    lastSeen: fc.option(fc.date({ noInvalidDate: true, min: new Date(-(2 ** 52)) }), { nil: null }),
  },
  { requiredKeys: [], noNullPrototype: true },
);

test('property: v1 sessions round-trip on v1 and read on v2 exactly as Avro resolution says', () => {
  const a = member(v1);
  const b = member(v2);
  decodeFrom(b, a, () => b.decodeSession(a.encodeSession({})));
  fc.assert(
    fc.property(v1Session, (data) => {
      assert.deepStrictEqual(a.decodeSession(a.encodeSession(data)), data);
      const { legacyTheme: _dropped, user, ...kept } = data;
      const expected: SessionData = { ...kept, locale: 'en', prefs: null };
      if (user !== undefined) expected.user = { ...user, email: null };
      assert.deepStrictEqual(b.decodeSession(a.encodeSession(data)), expected);
      // Entries add no defaults.
      const entries: SessionData = { ...kept };
      if (user !== undefined) entries.user = { ...user, email: null };
      assert.deepStrictEqual(b.decodeEntries(a.encodeEntries(data)), entries);
    }),
    { numRuns: 300 },
  );
});

// decodeEntryList: a whole session kept as one encodeEntries buffer per key, as the replication layer keeps it.

/** A session as the replication layer keeps it: one `encodeEntries` buffer per top-level key. */
const entryList = (codec: ReturnType<typeof member>, data: SessionData): Buffer[] => Object.keys(data).map((k) => codec.encodeEntries({ [k]: data[k] }));

test('decodeEntryList: a v1 writer\'s session read by a v2 member takes v2\'s defaults (fetching the writer schema once)', () => {
  const a = member(v1);
  const b = member(v2);
  const lastSeen = new Date('2024-09-04T08:00:00Z');
  const list = entryList(a, { user: { id: 1, name: 'kim' }, legacyTheme: 'dark', views: 3, lastSeen });
  assert.throws(() => b.decodeEntryList(list), (err: unknown) => err instanceof UnknownSchemaError && err.fingerprint === a.fingerprintOf(list[0]));
  const first = decodeFrom(b, a, () => b.decodeEntryList(list));
  assert.equal(first.fetched, 1);
  // As decodeSession of the same session: removed field dropped, added fields take their defaults.
  const expected = { user: { id: 1, name: 'kim', email: null }, views: 3, lastSeen, locale: 'en', prefs: null };
  assert.deepStrictEqual(first.value, expected);
  assert.deepStrictEqual(first.value, decodeFrom(b, a, () => b.decodeSession(a.encodeSession({ user: { id: 1, name: 'kim' }, legacyTheme: 'dark', views: 3, lastSeen }))).value);
  // v1 declared lastSeen (default null): absent in the session, it stays absent.
  const again = decodeFrom(b, a, () => b.decodeEntryList(entryList(a, { views: 4 })));
  assert.equal(again.fetched, 0);
  assert.deepStrictEqual(again.value, { views: 4, locale: 'en', prefs: null });
  // An entry that carries the field keeps its value; the default never overwrites it.
  assert.deepStrictEqual(b.decodeEntryList([...entryList(a, { views: 5 }), b.encodeEntries({ locale: 'fr' })]), { views: 5, locale: 'fr' });
});

test('decodeEntryList: a field the writer schema declared but the session lacks stays absent', () => {
  const a = member(v1);
  const b = member(v2);
  decodeFrom(b, a, () => b.decodeEntries(a.encodeEntries({})));
  // Written by v2 itself: locale and prefs were really absent (never set, or removed).
  assert.deepStrictEqual(b.decodeEntryList(entryList(b, { views: 1 })), { views: 1 });
  assert.deepStrictEqual(b.decodeEntryList(entryList(b, { user: { id: 1, name: 'n', email: 'e' } })), { user: { id: 1, name: 'n', email: 'e' } });
  // A session some of whose keys v1 wrote and some v2: v2 knew the fields, so no defaults.
  assert.deepStrictEqual(b.decodeEntryList([...entryList(a, { user: { id: 2, name: 'm' } }), ...entryList(b, { views: 2 })]), {
    user: { id: 2, name: 'm', email: null },
    views: 2,
  });
  // On v1, v1's own lastSeen (default null) stays absent too.
  assert.deepStrictEqual(a.decodeEntryList(entryList(a, { views: 1 })), { views: 1 });
});

test('decodeEntryList: v2 writes read by a v1 member drop the v2-only fields', () => {
  const a = member(v1);
  const b = member(v2);
  const list = entryList(b, { user: { id: 3, name: 'lee', email: 'lee@example.com' }, views: 9, locale: 'ko', prefs: { dark: true } });
  const { value, fetched } = decodeFrom(a, b, () => a.decodeEntryList(list));
  assert.equal(fetched, 1);
  // v2 declared lastSeen, so v1's default does not apply; locale and prefs are unknown to v1.
  assert.deepStrictEqual(value, { user: { id: 3, name: 'lee' }, views: 9 });
  // A rolling upgrade's session: keys written by both versions, merged.
  assert.deepStrictEqual(a.decodeEntryList([...entryList(a, { legacyTheme: 'dark', views: 1 }), ...entryList(b, { views: 2, locale: 'de' })]), {
    legacyTheme: 'dark',
    views: 2,
  });
});

test('decodeEntryList: the first unknown writer schema is reported; once added, decoding works', () => {
  const a = member(v1);
  const plain = member();
  const b = member(v2);
  const list = [b.encodeEntries({ views: 1 }), plain.encodeEntries({ locale: 'it' }), a.encodeEntries({ user: { id: 1, name: 'x' } })];
  const fpPlain = plain.fingerprintOf(list[1])!;
  const fpA = a.fingerprintOf(list[2])!;
  assert.throws(() => b.decodeEntryList(list), (err: unknown) => err instanceof UnknownSchemaError && err.fingerprint === fpPlain);
  assert.equal(b.addSchema(plain.schemaFor(fpPlain)!), fpPlain);
  assert.throws(() => b.decodeEntryList(list), (err: unknown) => err instanceof UnknownSchemaError && err.fingerprint === fpA);
  assert.equal(b.addSchema(a.schemaFor(fpA)!), fpA);
  // v2 wrote one of the keys: it declared locale and prefs, so no defaults.
  assert.deepStrictEqual(b.decodeEntryList(list), { views: 1, locale: 'it', user: { id: 1, name: 'x', email: null } });
  // Bad bytes are a CodecError, wherever they are in the list.
  const truncated = list[0].subarray(0, list[0].length - 1);
  assert.throws(() => b.decodeEntryList([list[2], truncated]), CodecError);
  assert.throws(() => b.decodeEntryList([Buffer.from([9, 1, 2, 3, 4, 5, 6, 7, 8, 0])]), CodecError);
  assert.throws(() => b.decodeEntryList(['not a buffer'] as unknown as Buffer[]), CodecError);
  assert.throws(() => b.decodeEntryList({ length: 1 } as unknown as Buffer[]), CodecError);
});

test('decodeEntryList: an empty list is no session (no defaults); later entries win; odd keys stay own keys', () => {
  const b = member(v2);
  assert.deepStrictEqual(b.decodeEntryList([]), {});
  assert.deepStrictEqual(b.decodeEntryList([b.encodeEntries({ views: 1 }), b.encodeEntries({ views: 2, locale: 'x' }), b.encodeEntries({ locale: 'y' })]), {
    views: 2,
    locale: 'y',
  });
  const plain = member();
  const proto = JSON.parse('{ "__proto__": { "polluted": true } }') as SessionData;
  const merged = plain.decodeEntryList([plain.encodeEntries({ a: 1 }), plain.encodeEntries(proto)]);
  assert.ok(Object.hasOwn(merged, '__proto__'));
  assert.equal(Object.getPrototypeOf(merged), Object.prototype);
  assert.deepStrictEqual(merged, { a: 1, ...proto });
  // Without a sessionSchema there are no defaults to add: plain merge.
  assert.deepStrictEqual(plain.decodeEntryList(entryList(plain, { x: [1], y: new Date(0) })), { x: [1], y: new Date(0) });
});

test('decodeEntryList: a writer without a sessionSchema could hold any key, so no defaults (as decodeSession)', () => {
  const plain = member();
  const b = member(v2);
  const list = entryList(plain, { views: 2, cart: ['dropped: not in the schema'] });
  assert.deepStrictEqual(decodeFrom(b, plain, () => b.decodeEntryList(list)).value, { views: 2 });
  assert.deepStrictEqual(b.decodeEntryList(list), b.decodeSession(plain.encodeSession({ views: 2, cart: [] })));
});

test('decodeEntryList: defaults are decoded values (Dates, Buffers, ksc_Value), a fresh copy each time', () => {
  const v3 = {
    type: 'record',
    name: 'com.example.Session',
    fields: [
      ...v2.fields,
      { name: 'tags', type: { type: 'array', items: 'string' }, default: ['new'] },
      { name: 'since', type: { type: 'long', logicalType: 'timestamp-millis' }, default: 86_400_000 },
      { name: 'salt', type: 'bytes', default: '\u0001\u00ff' },
      { name: 'box', type: { type: 'record', name: 'Box', fields: [{ name: 'n', type: 'long' }] }, default: { n: 1 } },
      { name: 'noDefault', type: 'string' },
    ],
  };
  const a = member(v1);
  const c = member(v3);
  const list = entryList(a, { views: 1 });
  const first = decodeFrom(c, a, () => c.decodeEntryList(list)).value;
  assert.deepStrictEqual(first, {
    views: 1,
    locale: 'en',
    prefs: null,
    tags: ['new'],
    since: new Date(86_400_000),
    salt: Buffer.from([1, 255]),
    box: { n: 1 },
  });
  assert.ok(first.since instanceof Date && Buffer.isBuffer(first.salt));
  first.tags.push('mutated');
  first.box.n = 99;
  (first.salt as Buffer)[0] = 0;
  const second = c.decodeEntryList(list);
  assert.deepStrictEqual([second.tags, second.box, second.salt], [['new'], { n: 1 }, Buffer.from([1, 255])]);
});

test('a field renamed with aliases reads the old name\'s data, and counts as declared by the old writer', () => {
  const old = { type: 'record', name: 'S', fields: [{ name: 'views', type: 'long' }, { name: 'a', type: 'string' }] };
  const renamed = { type: 'record', name: 'S', fields: [{ name: 'visits', type: 'long', default: 0, aliases: ['views'] }, { name: 'a', type: 'string' }] };
  const a = member(old);
  const b = member(renamed);
  assert.deepStrictEqual(decodeFrom(b, a, () => b.decodeSession(a.encodeSession({ views: 5, a: 'x' }))).value, { visits: 5, a: 'x' });
  assert.deepStrictEqual(b.decodeEntries(a.encodeEntries({ views: 7 })), { visits: 7 });
  assert.deepStrictEqual(b.decodeEntryList([a.encodeEntries({ views: 7 }), a.encodeEntries({ a: 'y' })]), { visits: 7, a: 'y' });
  // The old writer knew the field (as views) and the session lacked it: no default.
  assert.deepStrictEqual(b.decodeEntryList([a.encodeEntries({ a: 'y' })]), { a: 'y' });
  assert.deepStrictEqual(b.decodeSession(a.encodeSession({ a: 'y' })), { a: 'y' });
});

test('property: decodeEntryList of a v1 session on v2 equals decodeSession of it', () => {
  const a = member(v1);
  const b = member(v2);
  decodeFrom(b, a, () => b.decodeSession(a.encodeSession({})));
  fc.assert(
    fc.property(v1Session, (data) => {
      const list = entryList(a, data);
      assert.deepStrictEqual(a.decodeEntryList(list), data);
      if (list.length === 0) assert.deepStrictEqual(b.decodeEntryList(list), {});
      else assert.deepStrictEqual(b.decodeEntryList(list), b.decodeSession(a.encodeSession(data)));
    }),
    { numRuns: 300 },
  );
});
