import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSessionCodec } from '../../src/codec/index.js';

const typical = {
  user: { id: 12345, name: 'alice', roles: ['admin', 'user'], createdAt: new Date('2024-09-04T10:00:00Z') },
  cart: [{ sku: 'A-1', qty: 2, price: 9.99 }],
  views: 42,
};

const schema = {
  type: 'record',
  name: 'Session',
  fields: [
    {
      name: 'user',
      type: {
        type: 'record',
        name: 'User',
        fields: [
          { name: 'id', type: 'long' },
          { name: 'name', type: 'string' },
          { name: 'roles', type: { type: 'array', items: 'string' } },
          { name: 'createdAt', type: { type: 'long', logicalType: 'timestamp-millis' } },
        ],
      },
    },
    {
      name: 'cart',
      type: {
        type: 'array',
        items: {
          type: 'record',
          name: 'Item',
          fields: [
            { name: 'sku', type: 'string' },
            { name: 'qty', type: 'int' },
            { name: 'price', type: 'double' },
          ],
        },
      },
    },
    { name: 'views', type: 'long' },
  ],
};

test('a typical session encodes to at most 0.6x its JSON with a sessionSchema, and smaller than JSON without', (t) => {
  const json = Buffer.byteLength(JSON.stringify(typical));
  const withSchema = createSessionCodec({ types: [], sessionSchema: schema, maxSessionBytes: 1 << 20 });
  const without = createSessionCodec({ types: [], maxSessionBytes: 1 << 20 });
  const a = withSchema.encodeSession(typical).length;
  const b = without.encodeSession(typical).length;
  // As the replication layer sends a write: one encodeEntries per top-level key.
  const perKey = (c: typeof without) => Object.keys(typical).reduce((n, k) => n + c.encodeEntries({ [k]: typical[k as keyof typeof typical] }).length, 0);
  t.diagnostic(`JSON ${json} B; with sessionSchema ${a} B (${(a / json).toFixed(2)}x); without ${b} B (${(b / json).toFixed(2)}x)`);
  t.diagnostic(`per-key entries: with sessionSchema ${perKey(withSchema)} B, without ${perKey(without)} B (9-byte header each)`);
  assert.ok(a <= 0.6 * json, `${a} > 0.6 x ${json}`);
  assert.ok(b < 0.85 * json, `${b} >= 0.85 x ${json}`);
});
