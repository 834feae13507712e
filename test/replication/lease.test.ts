import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Leases } from '../../src/replication/lease.js';

test('a lease needs answers from floor(size / 2) others, each good for leaseMs from when its request left', () => {
  const l = new Leases(1000);
  assert.equal(l.coveredUntil(1), Infinity, 'a cluster of one needs nobody');
  assert.equal(l.coveredUntil(3), -Infinity, 'no answer yet');
  l.acked('b', 100);
  assert.equal(l.coveredUntil(2), 1100, 'two members: the other one answered');
  assert.equal(l.coveredUntil(3), 1100, 'three: one other is enough (2 of 3)');
  assert.equal(l.coveredUntil(4), -Infinity, 'four: two others needed');
  l.acked('c', 500);
  assert.equal(l.coveredUntil(4), 1100, 'the weaker of the two best answers');
  assert.equal(l.coveredUntil(5), 1100);
  assert.equal(l.coveredUntil(3), 1500, 'the best answer when one is enough');
  l.acked('c', 300);
  assert.equal(l.coveredUntil(3), 1500, 'an older answer never shortens a lease');
});

test('a promise outlasts the lease it backs by a quarter of it, and is made by every request heard', () => {
  const l = new Leases(1000);
  assert.equal(l.margin, 300);
  l.heard('x', 2000);
  assert.equal(l.promised('x', 3299), true, 'x may count our answer until 3000; we hold until 3300');
  assert.equal(l.promised('x', 3300), false);
  l.heard('x', 1000);
  assert.equal(l.promised('x', 3299), true, 'an older request never shortens a promise');
  assert.deepEqual(l.promises(3000), [{ route: 'x', ms: 300 }]);
  assert.equal(l.promisedFor('x', 3100), 200);
  assert.deepEqual(l.promises(3300), [], 'run-out promises are forgotten');
  assert.equal(l.promisedFor('x', 3300), 0);
});

test('lease pings go only where nothing was sent for a third of the lease', () => {
  const l = new Leases(900);
  l.sent('b', 1000);
  assert.deepEqual(l.due(['b', 'c'], 1200), ['c'], 'b had a request 200 ms ago');
  assert.deepEqual(l.due(['b', 'c'], 1300), ['b', 'c']);
});

test('a member removed for failure stops counting toward the lease at once, late answers included', () => {
  const l = new Leases(1000);
  l.acked('b', 100);
  l.acked('c', 200);
  assert.equal(l.coveredUntil(3), 1200);
  l.withdraw('c', 250);
  assert.equal(l.coveredUntil(3), 1100, 'c removed: only b counts');
  l.withdraw('b', 260);
  assert.equal(l.coveredUntil(3), -Infinity, 'both removed (a reset partition seen from the cut-off side): no lease, whatever they answered a moment ago');
  l.acked('b', 240);
  assert.equal(l.coveredUntil(3), -Infinity, 'an answer to a request sent before the removal never counts');
  l.acked('b', 300);
  assert.equal(l.coveredUntil(3), 1300, 'back (admitted again): its new answers count');
  assert.deepEqual(l.fresh(400), ['b']);
});
