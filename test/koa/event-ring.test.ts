/**
 * The event ring of the status page: bounded, oldest overwritten, sequence numbers never reused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventRing } from '../../src/koa/event-ring.js';

test('the ring keeps the newest events, oldest first, with increasing sequence numbers', () => {
  const ring = new EventRing(3);
  assert.deepEqual(ring.list(), []);
  for (let i = 1; i <= 5; i++) ring.push({ at: i, type: 'joined', member: `n${i}`, detail: `event ${i}` });
  const list = ring.list();
  assert.deepEqual(list.map((e) => [e.seq, e.member]), [[3, 'n3'], [4, 'n4'], [5, 'n5']]);
  list[0].detail = 'changed by a reader';
  assert.equal(ring.list()[0].detail, 'event 3', 'readers get copies');
});
