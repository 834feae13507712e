import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { defineMessage } from '../../src/codec/index.js';
import { parsePlainSchema } from '../../src/codec/avro.js';
import { messages, type SessionCopy } from '../../src/codec/messages.js';
import { CodecError } from '../../src/errors.js';

interface Ping {
  id: number;
  from: string;
  note: string | null;
  body: Buffer;
  tags: string[];
}

const pingSchema = {
  type: 'record',
  name: 'Ping',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'from', type: 'string' },
    { name: 'note', type: ['null', 'string'] },
    { name: 'body', type: 'bytes' },
    { name: 'tags', type: { type: 'array', items: 'string' } },
  ],
};
const ping = defineMessage<Ping>(pingSchema);

const pingValue: fc.Arbitrary<Ping> = fc.record({
  id: fc.integer(),
  from: fc.string(),
  note: fc.option(fc.string(), { nil: null }),
  body: fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
  tags: fc.array(fc.string(), { maxLength: 5 }),
});

/** Plain copy of a decoded message (avsc reads records as instances of generated classes). */
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

test('property: a message round-trips', () => {
  fc.assert(
    fc.property(pingValue, (v) => {
      const back = ping.decode(ping.encode(v));
      assert.deepStrictEqual(plain(back), plain(v));
      assert.ok(Buffer.isBuffer(back.body));
    }),
    { numRuns: 300 },
  );
});

test("messages of every size are written once, byte for byte as avsc's toBuffer writes them", () => {
  const reference = parsePlainSchema(pingSchema);
  // Past avsc's 1 KiB scratch, past ours as it starts (64 KiB), and past its limit (4 MiB).
  for (const size of [0, 1000, 1100, 70_000, 300_000, 5 * 1024 * 1024, 10, 2_000_000]) {
    const value: Ping = { id: size, from: 'n'.repeat(size % 300), note: size % 2 ? null : 'x', body: Buffer.alloc(size, size % 251), tags: ['a', 'b'.repeat(size % 5000)] };
    const bytes = ping.encode(value);
    assert.deepEqual(bytes, reference.toBuffer(value), `size ${size}`);
    if (bytes.length >= 1024) assert.equal(bytes.buffer.byteLength, bytes.length, 'a buffer of its own, not a view of the scratch or a pool slab');
    assert.deepEqual(plain(ping.decode(bytes)), plain(value));
  }
  // Two encodes in a row never share bytes (the scratch is reused).
  const a = ping.encode({ id: 1, from: 'a', note: null, body: Buffer.alloc(5000, 1), tags: [] });
  const b = ping.encode({ id: 2, from: 'b', note: null, body: Buffer.alloc(5000, 2), tags: [] });
  assert.deepEqual([ping.decode(a).body[4999], ping.decode(b).body[4999]], [1, 2]);
});

test('property: truncated input and trailing bytes are CodecErrors', () => {
  fc.assert(
    fc.property(pingValue, fc.uint8Array({ minLength: 1, maxLength: 4 }), (v, extra) => {
      const bytes = ping.encode(v);
      for (let n = 0; n < bytes.length; n++) assert.throws(() => ping.decode(bytes.subarray(0, n)), CodecError);
      assert.throws(() => ping.decode(Buffer.concat([bytes, extra])), { name: 'CodecError', message: /cannot decode Ping: \d+ trailing bytes/ });
    }),
    { numRuns: 200 },
  );
});

function onlyCodecErrors(decode: (b: Buffer) => unknown, bytes: Buffer): void {
  try {
    decode(bytes);
  } catch (err) {
    if (!(err instanceof CodecError)) throw new Error(`untyped error: ${String(err)}`, { cause: err });
  }
}

test('property: random bytes decode only to CodecError, for every replication message', () => {
  const all = Object.entries(messages) as [string, { decode(b: Buffer): unknown }][];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (u) => {
      const bytes = Buffer.from(u);
      onlyCodecErrors((b) => ping.decode(b), bytes);
      for (const [, codec] of all) onlyCodecErrors((b) => codec.decode(b), bytes);
    }),
    { numRuns: 1500 },
  );
});

test('a hostile item count fails fast instead of looping', () => {
  // SessionCopy: six strings/longs, then an entries array claiming 2^62 items.
  const copy: SessionCopy = { base: 'b', owner: 'o', epoch: 1, version: 1, expire: 1, maxAge: -1, entries: [] };
  const head = messages.copy.encode(copy).subarray(0, -1);
  const started = performance.now();
  assert.throws(() => messages.copy.decode(Buffer.concat([head, Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])])), CodecError);
  assert.ok(performance.now() - started < 200);
});

test('bytes in a decoded message round-trip (not copied per entry: whoever keeps them copies, as the session table does)', () => {
  const copy: SessionCopy = {
    base: 'abc',
    owner: 'node1',
    epoch: 3,
    version: 7,
    expire: Date.now(),
    maxAge: 86_400_000,
    entries: [{ key: 'user', value: Buffer.from('encoded session value') }],
    createdAt: Date.now() - 1000,
    principal: 'user-7',
  };
  const frame = messages.copy.encode(copy);
  const back = messages.copy.decode(frame);
  assert.deepStrictEqual(plain(back), plain(copy));
});

test('a copy without the owner fields (createdAt, principal) is sent with their defaults', () => {
  const back = messages.copy.decode(messages.copy.encode({ base: 'abc', owner: 'n', epoch: 1, version: 1, expire: 5, maxAge: -1, entries: [] }));
  assert.equal(back.createdAt, 0);
  assert.equal(back.principal, '');
});

test('index messages round-trip, and garbage is a CodecError, never a crash', () => {
  const item = { principal: 'u1', base: 'b'.repeat(24), kind: 'live' as const, route: 'node2', epoch: 3, createdAt: 10, lastAccessAt: 20, expire: 30 };
  assert.deepStrictEqual(plain(messages.indexAnnounce.decode(messages.indexAnnounce.encode({ items: [item] }))), { items: [item] });
  assert.deepStrictEqual(plain(messages.indexLookup.decode(messages.indexLookup.encode({ principal: 'u1' }))), { principal: 'u1' });
  for (const junk of [Buffer.from([0xff, 0xff, 0xff]), Buffer.from('garbage'), Buffer.alloc(0)]) {
    assert.throws(() => messages.indexAnnounce.decode(junk), { name: 'CodecError' });
    assert.throws(() => messages.indexLookupReply.decode(junk), { name: 'CodecError' });
  }
});

test('encoding a value that does not fit the schema is a CodecError naming the field', () => {
  assert.throws(() => ping.encode({ id: 1.5, from: 'x', note: null, body: Buffer.alloc(0), tags: [] }), {
    name: 'CodecError',
    message: /cannot encode Ping: id: got 1\.5, expected long/,
  });
  assert.throws(() => ping.decode('nope' as unknown as Buffer), CodecError);
});
