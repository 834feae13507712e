import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createSessionCodec, HEADER_BYTES, type SessionCodec } from '../../src/codec/index.js';
import { CodecError, UnknownSchemaError } from '../../src/errors.js';
import { registered, session } from './arbitraries.js';

const MiB = 1024 * 1024;
const dynamic = createSessionCodec({ types: registered, maxSessionBytes: MiB });
const typed = createSessionCodec({
  types: registered,
  maxSessionBytes: MiB,
  sessionSchema: {
    type: 'record',
    name: 'Shop',
    fields: [
      { name: 'user', type: ['null', { type: 'record', name: 'User', fields: [{ name: 'id', type: 'long' }, { name: 'tags', type: { type: 'map', values: 'string' } }] }] },
      { name: 'cart', type: { type: 'array', items: { type: 'record', name: 'Item', fields: [{ name: 'sku', type: 'string' }, { name: 'qty', type: 'int' }, { name: 'price', type: 'double' }] } } },
      { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
      { name: 'flags', type: { type: 'array', items: 'boolean' } },
      { name: 'kind', type: { type: 'enum', name: 'Kind', symbols: ['A', 'B'] } },
      { name: 'blob', type: { type: 'fixed', name: 'Blob', size: 4 } },
      { name: 'money', type: 'Money' },
      { name: 'any', type: 'ksc_Value' },
    ],
  },
});

/**
 * Decodes `bytes` and requires the only outcomes a member may see: a typed error, or session data
 * that is itself valid (it could be stored again).
 */
function decodeSafely(codec: SessionCodec, bytes: Buffer): 'ok' | 'codec' | 'unknown-schema' {
  for (const decode of [() => codec.decodeSession(bytes), () => codec.decodeEntries(bytes)]) {
    try {
      const data = decode();
      codec.check(data);
    } catch (err) {
      if (err instanceof UnknownSchemaError) return 'unknown-schema';
      if (err instanceof CodecError) {
        assert.equal(err.code, 'ERR_CODEC');
        return 'codec';
      }
      throw new Error(`decoding raised an untyped error: ${String(err)}`, { cause: err });
    }
  }
  return 'ok';
}

function headerOf(codec: SessionCodec): Buffer {
  return codec.encodeSession({}).subarray(0, HEADER_BYTES);
}

test('property: random byte strings decode only to typed errors', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (u) => {
      for (const c of [dynamic, typed]) decodeSafely(c, Buffer.from(u));
    }),
    { numRuns: 1000 },
  );
});

test('property: random bodies behind a valid header decode only to typed errors or valid sessions', () => {
  const outcomes = { ok: 0, codec: 0, 'unknown-schema': 0 };
  for (const c of [dynamic, typed]) {
    const header = headerOf(c);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (body) => {
        outcomes[decodeSafely(c, Buffer.concat([header, body]))]++;
      }),
      { numRuns: 3000 },
    );
  }
  assert.equal(outcomes['unknown-schema'], 0);
  assert.ok(outcomes.codec > 0, `typed errors seen: ${JSON.stringify(outcomes)}`);
  // Random bodies are rarely valid; a real body behind the same header must decode (the other branch).
  for (const c of [dynamic, typed]) assert.equal(decodeSafely(c, c.encodeSession({ flags: [true, false] })), 'ok');
});

test('property: every truncation of a valid encoding is a CodecError; trailing bytes too', () => {
  fc.assert(
    fc.property(session, (data) => {
      const bytes = dynamic.encodeSession(data);
      for (let n = 0; n < bytes.length; n++) {
        assert.throws(() => dynamic.decodeSession(bytes.subarray(0, n)), CodecError);
      }
      assert.throws(() => dynamic.decodeEntries(Buffer.concat([bytes, Buffer.from([0])])), CodecError);
    }),
    { numRuns: 150 },
  );
  const full = typed.encodeSession({ user: { id: 1, tags: { a: 'b' } }, cart: [{ sku: 'x', qty: 1, price: 2.5 }], at: new Date(), kind: 'B' });
  for (let n = 0; n < full.length; n++) assert.throws(() => typed.decodeSession(full.subarray(0, n)), CodecError);
});

test('property: valid encodings with bytes flipped, inserted or removed decode only to typed errors or valid sessions', () => {
  fc.assert(
    fc.property(
      session,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'insert', 'remove')), { minLength: 1, maxLength: 4 }),
      (data, edits) => {
        const bytes = [...dynamic.encodeSession(data)];
        for (const [at, byte, op] of edits) {
          // Keep the header mostly intact so the body's decoder is what gets exercised.
          const i = HEADER_BYTES + (at % Math.max(1, bytes.length - HEADER_BYTES));
          if (op === 'flip') bytes[i] = byte;
          else if (op === 'insert') bytes.splice(i, 0, byte);
          else bytes.splice(i, 1);
        }
        decodeSafely(dynamic, Buffer.from(bytes));
      },
    ),
    { numRuns: 1500 },
  );
});

test('an unknown writer fingerprint is an UnknownSchemaError carrying it; a bad header a CodecError', () => {
  const bytes = dynamic.encodeSession({ a: 1 });
  const other = Buffer.from(bytes);
  other.fill(0xab, 1, HEADER_BYTES);
  assert.throws(() => dynamic.decodeSession(other), (err: unknown) => {
    assert.ok(err instanceof UnknownSchemaError);
    assert.equal(err.code, 'ERR_UNKNOWN_SCHEMA');
    assert.equal(err.fingerprint, 'abababababababab');
    return true;
  });
  assert.equal(dynamic.fingerprintOf(other), 'abababababababab');
  assert.equal(dynamic.fingerprintOf(bytes), bytes.toString('hex', 1, HEADER_BYTES));

  const version = Buffer.from(bytes);
  version[0] = 2;
  assert.throws(() => dynamic.decodeSession(version), { name: 'CodecError', message: /unknown format version 2/ });
  assert.equal(dynamic.fingerprintOf(version), undefined);
  assert.equal(dynamic.fingerprintOf(Buffer.alloc(3)), undefined);
  assert.throws(() => dynamic.decodeSession(Buffer.alloc(0)), CodecError);
  assert.throws(() => dynamic.decodeSession('not bytes' as unknown as Buffer), CodecError);
});

test('hostile counts and nesting fail fast with CodecError, never a hang or a stack overflow', () => {
  const header = headerOf(dynamic);
  // The union index of an array in ksc_Value, from a real encoding of { a: [] }.
  const arrayIndex = dynamic.encodeSession({ a: [] })[HEADER_BYTES + 3];
  const hostile: Buffer[] = [
    // one entry, key "a", an array claiming 2^62 items with 2 bytes left
    Buffer.concat([header, Buffer.from([0x02, 0x02, 0x61, arrayIndex, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x02, 0x02])]),
    // a session claiming 2^40 entries
    Buffer.concat([header, Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x40])]),
    // a negative block count (items with a byte size) whose byte size lies
    Buffer.concat([header, Buffer.from([0x01, 0x02, 0x02, 0x61, 0x02, 0x00])]),
    // a string length beyond the buffer, and a negative one
    Buffer.concat([header, Buffer.from([0x02, 0xfe, 0xff, 0x03, 0x61])]),
    Buffer.concat([header, Buffer.from([0x02, 0x01, 0x61])]),
    // an endless varint
    Buffer.concat([header, Buffer.alloc(64, 0xff)]),
    // 200,000 nested arrays
    Buffer.concat([header, Buffer.from([0x02, 0x02, 0x61]), Buffer.alloc(400_000).fill(Buffer.from([arrayIndex, 0x02]))]),
  ];
  const reasons = [
    /item count exceeds the bytes left/,
    /item count exceeds the bytes left/,
    /block size does not match its content/,
    /truncated/,
    /negative length/,
    /varint too long/,
    /nested too deeply/,
  ];
  for (const [i, bytes] of hostile.entries()) {
    const started = performance.now();
    assert.throws(() => dynamic.decodeSession(bytes), { name: 'CodecError', message: reasons[i] });
    assert.ok(performance.now() - started < 500, 'fails fast');
  }
});

test('addSchema refuses what is not a session schema with CodecError', () => {
  const own = dynamic.schemaFor(dynamic.fingerprintOf(dynamic.encodeSession({}))!)!;
  const tampered = own.replace('{"name":"ms","type":"long"}', '{"name":"ms","type":"string"}');
  assert.notEqual(tampered, own);
  const deep = '['.repeat(100_000) + '"null"' + ']'.repeat(100_000);
  for (const bad of ['', 'not json', '"string"', '{"type":"map","values":"string"}', '{"type":"record","name":"X","fields":[{"name":"a","type":"long"}]}', tampered, deep]) {
    assert.throws(() => dynamic.addSchema(bad), CodecError, bad.slice(0, 40));
  }
  assert.equal(dynamic.addSchema(own), dynamic.fingerprintOf(dynamic.encodeSession({})));
});
