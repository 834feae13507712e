import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createSessionCodec, MAX_DEPTH, type SessionData } from '../../src/codec/index.js';
import { ClusterOptionsError, SessionTooLargeError, SessionUnserializableError } from '../../src/errors.js';
import { Money, Point, registered, session } from './arbitraries.js';

const MiB = 1024 * 1024;
const codec = createSessionCodec({ types: registered, maxSessionBytes: MiB });

/** Asserts that storing `data` is refused with exactly this message (path included). */
function refused(data: SessionData, message: string, c = codec): void {
  assert.throws(
    () => c.encodeSession(data),
    (err: unknown) => {
      assert.ok(err instanceof SessionUnserializableError, `expected SessionUnserializableError, got ${String(err)}`);
      assert.equal(err.code, 'ERR_SESSION_UNSERIALIZABLE');
      assert.equal(err.message, message);
      assert.equal(err.path, message.slice(0, message.indexOf(': ')));
      return true;
    },
  );
  // check() refuses alike, and so does encodeEntries: nothing of the write is encoded.
  assert.throws(() => c.check(data), { message });
  assert.throws(() => c.encodeEntries(data), { message });
}

test('plain data, Dates, Buffers and Uint8Arrays come back exactly as stored', () => {
  const data: SessionData = {
    user: { id: 12345, name: 'alice', roles: ['admin', 'user'], createdAt: new Date('2024-09-04T10:00:00.123Z') },
    cart: [{ sku: 'A-1', qty: 2, price: 9.99 }],
    nothing: null,
    yes: true,
    big: Number.MAX_SAFE_INTEGER,
    tiny: 5e-324,
    negZero: -0,
    huge: 1.7976931348623157e308,
    avatar: Buffer.from([0, 1, 2, 255]),
    raw: new Uint8Array([9, 8, 7]),
    nested: [[[]], {}, [{ a: [null] }]],
    // JSON.parse makes `__proto__` an own key (an object literal would set the prototype instead).
    'odd key': JSON.parse('{ "": 1, "__proto__": { "polluted": true }, "a.b[0]": 2 }') as unknown,
    bare: Object.assign(Object.create(null) as object, { k: 'v' }),
    lone: 'half an emoji: \ud83d',
    emoji: 'full 😀 and 한국어',
  };
  const back = codec.decodeSession(codec.encodeSession(data));
  assert.deepStrictEqual(back, data);
  assert.ok(back.user && (back.user as { createdAt: unknown }).createdAt instanceof Date);
  assert.ok(Buffer.isBuffer(back.avatar));
  assert.equal(Object.getPrototypeOf(back.raw), Uint8Array.prototype, 'a Uint8Array stays a Uint8Array, not a Buffer');
  assert.ok(Object.is(back.negZero, -0));
  const odd = back['odd key'] as Record<string, unknown>;
  assert.ok(Object.prototype.hasOwnProperty.call(odd, '__proto__'), '__proto__ stays a plain own key');
  assert.equal(Object.getPrototypeOf(odd), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepStrictEqual(codec.decodeEntries(codec.encodeEntries(data)), data);
});

test('decoded Buffers are copies, not views of the received bytes', () => {
  const bytes = codec.encodeSession({ b: Buffer.from('abc') });
  const back = codec.decodeSession(bytes);
  bytes.fill(0);
  assert.deepStrictEqual(back.b, Buffer.from('abc'));
});

test('property: any valid session round-trips exactly (encodeSession and encodeEntries)', () => {
  fc.assert(
    fc.property(session, (data) => {
      assert.deepStrictEqual(codec.decodeSession(codec.encodeSession(data)), data);
      assert.deepStrictEqual(codec.decodeEntries(codec.encodeEntries(data)), data);
    }),
    { numRuns: 400 },
  );
});

test('registered classes come back as instances of the same class on another member', () => {
  // Two codecs, each built from its own options: two members.
  const a = createSessionCodec({ types: registered, maxSessionBytes: MiB });
  const b = createSessionCodec({ types: registered, maxSessionBytes: MiB });
  const data = { where: new Point(1, { deep: [new Money(5, 'EUR')] }), price: new Money(999, 'KRW') };
  const back = b.decodeSession(a.encodeSession(data));
  assert.deepStrictEqual(back, data);
  assert.ok(back.where instanceof Point);
  assert.ok(back.price instanceof Money);
  assert.equal(String(back.price), '999 KRW', 'prototype methods work on the revived instance');
  assert.ok(Object.prototype.hasOwnProperty.call(back.where, 'label'), 'an undefined class field stays an own property');
});

test('a registered class with revive() is rebuilt by it', () => {
  let calls = 0;
  class Temperature {
    readonly #celsius: number;
    constructor(celsius: number) {
      this.#celsius = celsius;
    }
    get celsius(): number {
      return this.#celsius;
    }
    toJSON(): unknown {
      return { celsius: this.#celsius };
    }
  }
  const types = [
    {
      name: 'Temperature',
      type: Temperature,
      schema: { type: 'record', fields: [{ name: 'celsius', type: 'double' }] },
      // `unknown`: the option is typed by zod's z.function(), whose parameters are unknown[].
      revive: (f: unknown) => {
        calls++;
        return new Temperature((f as { celsius: number }).celsius);
      },
    },
  ];
  const c = createSessionCodec({ types, maxSessionBytes: MiB });
  const back = c.decodeSession(c.encodeSession({ t: new Temperature(21.5) }));
  assert.ok(back.t instanceof Temperature);
  assert.equal(back.t.celsius, 21.5);
  assert.equal(calls, 1);
});

test("the seed's TestUser: unregistered it fails loudly naming the path; registered it works across two members", () => {
  class TestUser {
    constructor(
      public id: number,
      public name: string,
      public email: string,
    ) {}
  }
  const login = { loginAt: new Date(), user: new TestUser(7, 'kim', 'kim@example.com') };
  const plain = createSessionCodec({ types: [], maxSessionBytes: MiB });
  refused(
    login,
    'session.user: instance of class TestUser is not serializable; register it with types: [{ name, type: TestUser, fields: [...] }] or store plain data',
    plain,
  );

  const options = { types: [{ name: 'TestUser', type: TestUser, fields: ['id', 'name', 'email'] }], maxSessionBytes: MiB };
  const node8081 = createSessionCodec(options);
  const node8082 = createSessionCodec(options);
  const onOther = node8082.decodeEntries(node8081.encodeEntries(login));
  assert.ok(onOther.user instanceof TestUser);
  assert.deepStrictEqual(onOther, login);
});

test('every value that cannot be replicated is refused, naming its path', () => {
  class Profile {
    avatar = 'a.png';
  }
  const a: Record<string, unknown> = { x: 1 };
  a.self = a;
  const list: unknown[] = [1];
  list.push({ back: list });
  const cases: [SessionData, string][] = [
    [
      { user: { profile: new Profile() } },
      'session.user.profile: instance of class Profile is not serializable; register it with types: [{ name, type: Profile, fields: [...] }] or store plain data',
    ],
    [
      { tags: new Map([['a', 1]]) },
      'session.tags: Map is not serializable (JSON.stringify hides its content, so koa-session would not notice changes); store an array or plain object',
    ],
    [
      { seen: { ids: new Set([1]) } },
      'session.seen.ids: Set is not serializable (JSON.stringify hides its content, so koa-session would not notice changes); store an array',
    ],
    [{ n: NaN }, 'session.n: NaN is not serializable; store a finite number or null'],
    [{ a: { b: [0, Infinity] } }, 'session.a.b[1]: Infinity is not serializable; store a finite number or null'],
    [{ a: -Infinity }, 'session.a: -Infinity is not serializable; store a finite number or null'],
    [{ a }, 'session.a.self: cycle (refers back to session.a)'],
    [{ list }, 'session.list[1].back: cycle (refers back to session.list)'],
    [{ f: { g: function getUser() {} } }, 'session.f.g: function getUser is not serializable; store plain data'],
    [{ s: [Symbol('x')] }, 'session.s[0]: symbol Symbol(x) is not serializable; store a string'],
    [{ id: 10n }, 'session.id: bigint is not serializable (JSON.stringify throws on it); store a number or a string'],
    [{ arr: [1, undefined] }, 'session.arr[1]: undefined in an array is not serializable (JSON.stringify turns it into null); store null'],
    // eslint-disable-next-line no-sparse-arrays
    [{ arr: [1, , 3] }, 'session.arr[1]: undefined in an array is not serializable (JSON.stringify turns it into null); store null'],
    [{ when: new Date(NaN) }, 'session.when: invalid Date is not serializable; store a valid Date or null'],
    [{ v: new Int32Array(2) }, 'session.v: Int32Array is not serializable; store a Buffer, a Uint8Array or an array of numbers'],
    [{ p: Promise.resolve(1) }, 'session.p: Promise is not serializable; await it and store the result'],
    [{ s: new String('x') }, 'session.s: String object is not serializable; store the primitive value'],
    [{ 'my key': { 'x y': new WeakMap() } }, 'session["my key"]["x y"]: WeakMap is not serializable (JSON.stringify hides its content, so koa-session would not notice changes); store an array or plain object'],
    [{ o: { [Symbol('hidden')]: 1 } }, 'session.o: property Symbol(hidden) has a symbol key, which is not serializable; use a string key'],
    [{ o: { 'bad\ud800': 1 } }, 'session.o["bad\\ud800"]: key contains a lone surrogate, which cannot be encoded; use a well-formed string'],
    [
      { pt: Object.assign(new Point(1, 2), { extra: true }) },
      'session.pt.extra: property extra of Point is not among its registered fields (x, y, label); add it to the registration, or make it non-enumerable',
    ],
    [
      { m: new Money(1.5, 'EUR') },
      'session.m.amount: expected long (as the schema says), got the number 1.5',
    ],
    [
      { o: Object.create({ inherited: 1 }) as object },
      'session.o: object with a custom prototype is not serializable; store a plain object, or register its class with types: [...]',
    ],
  ];
  for (const [data, message] of cases) refused(data, message);
});

test('undefined object properties are absent after a round trip, as after JSON (and koa-session)', () => {
  const back = codec.decodeSession(codec.encodeSession({ a: { b: undefined, c: 1 }, gone: undefined }));
  assert.deepStrictEqual(back, { a: { c: 1 } });
  assert.deepStrictEqual(back, JSON.parse(JSON.stringify({ a: { b: undefined, c: 1 }, gone: undefined })));
});

test('a getter that throws while the session is stored is reported with its path', () => {
  const data = {
    user: {
      get name(): string {
        throw new Error('boom');
      },
    },
  };
  refused(data, 'session.user.name: reading it threw: boom');
});

test(`values nest up to ${MAX_DEPTH} levels; deeper is refused, not a stack overflow`, () => {
  const nest = (depth: number): unknown => {
    let v: unknown = 'leaf';
    for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { k: v };
    return v;
  };
  const ok = { deep: nest(MAX_DEPTH - 1) };
  assert.deepStrictEqual(codec.decodeSession(codec.encodeSession(ok)), ok);
  assert.throws(() => codec.encodeSession({ deep: nest(MAX_DEPTH) }), (err: unknown) => {
    assert.ok(err instanceof SessionUnserializableError);
    assert.match(err.message, /: nested more than 500 levels deep; store a flatter structure$/);
    return true;
  });
});

test('a session over maxSessionBytes is refused with SessionTooLargeError', () => {
  const small = createSessionCodec({ types: [], maxSessionBytes: 1000 });
  small.encodeSession({ s: 'x'.repeat(900) });
  for (const big of [{ s: 'x'.repeat(1000) }, { s: 'x'.repeat(200_000) }]) {
    assert.throws(
      () => small.encodeSession(big),
      (err: unknown) => {
        assert.ok(err instanceof SessionTooLargeError);
        assert.equal(err.code, 'ERR_SESSION_TOO_LARGE');
        assert.equal(err.limit, 1000);
        assert.ok(err.size > 1000);
        assert.match(err.message, /over the limit of 1000 bytes \(option maxSessionBytes\)/);
        return true;
      },
    );
    assert.throws(() => small.encodeEntries(big), SessionTooLargeError);
  }
  // The default limit of 1 MiB, and the codec keeps working after a refusal.
  assert.throws(() => codec.encodeSession({ s: Buffer.alloc(MiB) }), SessionTooLargeError);
  assert.deepStrictEqual(codec.decodeSession(codec.encodeSession({ s: 'ok' })), { s: 'ok' });
});

test('sessions larger than the first encoding buffer (64 KiB) but under the limit encode fine', () => {
  const big = { text: 'é'.repeat(150_000), blob: Buffer.alloc(100_000, 7), list: Array.from({ length: 5000 }, (_, i) => ({ i, s: `item ${i}` })) };
  const bytes = codec.encodeSession(big);
  assert.ok(bytes.length > 400_000 && bytes.length < MiB);
  assert.deepStrictEqual(codec.decodeSession(bytes), big);
  assert.deepStrictEqual(codec.decodeSession(codec.encodeSession({ small: 1 })), { small: 1 });
});

test('a refused write leaves the session object untouched', () => {
  const data = { user: { name: 'a' }, bad: new Map() };
  const before = JSON.stringify(data);
  assert.throws(() => codec.encodeSession(data), SessionUnserializableError);
  assert.equal(JSON.stringify(data), before);
});

test('bad registrations are refused when the codec is built, naming the option', () => {
  class A {}
  const bad: [unknown[], string][] = [
    [[{ name: 'ksc_A', type: A, fields: ['x'] }], 'types[0].name'],
    [[{ name: 'A', type: A, fields: ['x'] }, { name: 'A', type: class B {}, fields: ['y'] }], 'types[1].name'],
    [[{ name: 'A', type: A, fields: ['x'] }, { name: 'A2', type: A, fields: ['y'] }], 'types[1].type'],
    [[{ name: 'A', type: A, schema: { type: 'enum', symbols: ['x'] } }], 'types[0].schema'],
    [[{ name: 'A', type: A, schema: { type: 'record', name: 'Other', fields: [] } }], 'types[0].schema'],
    [[{ name: 'A', type: A, fields: ['not-a-name'] }], 'types'],
  ];
  for (const [types, option] of bad) {
    assert.throws(
      () => createSessionCodec({ types: types as never, maxSessionBytes: MiB }),
      (err: unknown) => err instanceof ClusterOptionsError && err.option === option,
      option,
    );
  }
  assert.throws(
    () => createSessionCodec({ types: [], sessionSchema: { type: 'map', values: 'string' }, maxSessionBytes: MiB }),
    (err: unknown) => err instanceof ClusterOptionsError && err.option === 'sessionSchema',
  );
  assert.throws(
    () => createSessionCodec({ types: [], sessionSchema: { type: 'record', name: 'S', fields: [{ name: 'a', type: 'Nope' }] }, maxSessionBytes: MiB }),
    (err: unknown) => err instanceof ClusterOptionsError && err.option === 'sessionSchema' && /Nope/.test(err.message),
  );
});
