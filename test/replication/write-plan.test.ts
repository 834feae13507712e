import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSessionCodec } from '../../src/codec/index.js';
import { planWrite } from '../../src/replication/write-plan.js';
import type { SessionEntry } from '../../src/replication/session-table.js';
import { entryValues, packEntries } from '../../src/replication/packed-entries.js';
import { SessionTooLargeError, SessionUnserializableError } from '../../src/errors.js';

const codec = createSessionCodec({ types: [], maxSessionBytes: 1 << 20 });
const meta = { expire: Date.now() + 60_000, maxAge: 60_000 };

function entryOf(values: Record<string, unknown>, version = 3): SessionEntry {
  const packed = packEntries(Object.entries(values).map(([key, v]) => ({ key, value: codec.encodeEntries({ [key]: v }) })));
  return { base: 'B'.repeat(24), owner: 'n1', epoch: 2, version, expire: meta.expire, maxAge: 60_000, packed, role: 'primary', backup: 'n2', resync: true };
}

/** What an entry holds, decoded. */
function valuesOf(e: SessionEntry): Record<string, unknown> {
  return codec.decodeEntryList(entryValues(e.packed));
}

test('a write sends only the keys this request changed, onto the current values, at the next version', () => {
  const cases: { name: string; current: Record<string, unknown>; read: Record<string, unknown>; written: Record<string, unknown>; set: string[]; removed: string[]; values: Record<string, unknown> }[] = [
    { name: 'one key changed', current: { a: 1, b: 2 }, read: { a: 1, b: 2 }, written: { a: 5, b: 2 }, set: ['a'], removed: [], values: { a: 5, b: 2 } },
    { name: 'a key removed', current: { a: 1, b: 2 }, read: { a: 1, b: 2 }, written: { a: 1 }, set: [], removed: ['b'], values: { a: 1 } },
    { name: 'a concurrent change to another key survives', current: { a: 1, b: 9 }, read: { a: 1, b: 2 }, written: { a: 5, b: 2 }, set: ['a'], removed: [], values: { a: 5, b: 9 } },
    { name: 'nothing changed', current: { a: 1 }, read: { a: 1 }, written: { a: 1 }, set: [], removed: [], values: { a: 1 } },
    { name: 'a new session', current: {}, read: {}, written: { user: { id: 1 } }, set: ['user'], removed: [], values: { user: { id: 1 } } },
  ];
  for (const c of cases) {
    const e = entryOf(c.current);
    const { message, next } = planWrite(codec, 1 << 20, e, c.current, c.written, c.read, meta);
    assert.deepEqual(message.set.map((x) => x.key), c.set, c.name);
    assert.deepEqual(message.removed, c.removed, c.name);
    assert.deepEqual(valuesOf(next), c.values, c.name);
    assert.deepEqual([message.version, message.baseVersion, message.epoch, message.owner], [4, 3, 2, 'n1'], c.name);
    assert.equal(next.version, 4);
    assert.equal(next.resync, false, 'a planned write clears the resync mark once committed');
  }
});

test('a committed entry holds bytes only: an object changed in place after save() still differs from what was stored', () => {
  const cart = { items: ['a'] };
  const e = entryOf({});
  const { next, nextValues } = planWrite(codec, 1 << 20, e, {}, { cart }, {}, meta);
  const cached = nextValues();
  cart.items.push('b'); // the application keeps using its session object
  assert.deepEqual(cached, { cart: { items: ['a'] } }, 'the values kept decoded are copies too');
  const again = planWrite(codec, 1 << 20, next, valuesOf(next), { cart }, valuesOf(next), meta);
  assert.deepEqual(again.message.set.map((x) => x.key), ['cart'], 'the in-place change is replicated, not lost');
});

test('an unserializable value or an oversize session plans nothing', () => {
  class Avatar {
    constructor(public url: string) {}
  }
  const e = entryOf({ a: 1 });
  assert.throws(() => planWrite(codec, 1 << 20, e, { a: 1 }, { a: 1, avatar: new Avatar('x') }, { a: 1 }, meta), SessionUnserializableError);
  assert.throws(() => planWrite(codec, 100, e, { a: 1 }, { a: 1, big: 'x'.repeat(500) }, { a: 1 }, meta), SessionTooLargeError);
  assert.equal(e.version, 3, 'the entry is untouched');
});
