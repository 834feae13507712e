import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DecodedCache } from '../../src/replication/decoded-cache.js';

test('a cached decode is valid only for the packed bytes it came from, and the least recently used goes first', () => {
  const c = new DecodedCache(2);
  const p1 = 'one';
  const p2 = 'two';
  c.set('a', p1, { n: 1 });
  assert.deepEqual(c.get('a', p1), { n: 1 });
  assert.equal(c.get('a', p2), undefined, 'other bytes (a write since): a miss');
  assert.equal(c.has('a'), false, 'a stale entry is dropped on the miss');
  c.set('a', p1, { n: 1 });
  c.set('b', p1, { n: 2 });
  assert.ok(c.get('a', p1), 'a is now the most recently used');
  c.set('c', p1, { n: 3 });
  assert.deepEqual([c.has('a'), c.has('b'), c.has('c')], [true, false, true], 'b, least recently used, went');
  assert.equal(c.size, 2);
  c.delete('a');
  assert.equal(c.has('a'), false);
  const none = new DecodedCache(0);
  none.set('a', p1, {});
  assert.equal(none.size, 0, 'size 0 keeps nothing');
});
