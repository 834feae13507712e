/**
 * The pure parts of sessions by user: the index holder's table, the merge of two holders' answers,
 * the write policy (principal, createdAt, absoluteMaxAge), which member fires an expiry, and handles.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IndexItem } from '../../src/codec/messages.js';
import { INDEX_REFRESH_MS, PrincipalIndex, mergeItems, notDestroyed } from '../../src/replication/principal-index.js';
import { applyPolicy, mergedValues, principalOf } from '../../src/replication/session-policy.js';
import { expiryReason, firesExpiry } from '../../src/replication/session-events.js';
import { deriveHandleKey, sessionHandle } from '../../src/replication/session-handle.js';
import type { SessionEntry } from '../../src/replication/session-table.js';
import type { WritePlan } from '../../src/replication/write-plan.js';
import { owners } from '../../src/ring/index.js';

const item = (over: Partial<IndexItem> = {}): IndexItem => ({
  principal: 'u1',
  base: 'b1',
  kind: 'live',
  route: 'node1',
  epoch: 1,
  createdAt: 100,
  lastAccessAt: 100,
  expire: 100_000,
  ...over,
});

test('the index lists, relists under a newer owner, unlists, and a destruction fences late announcements', () => {
  const index = new PrincipalIndex();
  index.apply(item(), 0);
  index.apply(item({ base: 'b2' }), 0);
  assert.deepEqual(index.lookup('u1', 0).map((x) => x.base).sort(), ['b1', 'b2']);
  index.apply(item({ route: 'node2', epoch: 3, lastAccessAt: 50 }), 0);
  assert.deepEqual(index.lookup('u1', 0).find((x) => x.base === 'b1'), item({ route: 'node2', epoch: 3, lastAccessAt: 100 }), 'newer owner, latest access kept');
  index.apply(item({ route: 'node1', epoch: 1 }), 0);
  assert.equal(index.lookup('u1', 0).find((x) => x.base === 'b1')?.route, 'node2', 'an older owner\'s late announcement changes nothing');
  index.apply(item({ base: 'b2', kind: 'unlisted' }), 0);
  assert.deepEqual(index.lookup('u1', 0).map((x) => x.base), ['b1']);
  index.apply(item({ epoch: 3, kind: 'gone' }), 0);
  index.apply(item({ epoch: 3 }), 0);
  index.apply(item({ epoch: 2, route: 'node3' }), 0);
  assert.deepEqual(index.lookup('u1', 0), [], 'a destroyed session is never listed again by a late announcement');
  index.apply(item({ epoch: 5, route: 'node4' }), 0);
  assert.equal(index.lookup('u1', 0).length, 1, 'a newer epoch than the destruction (a takeover that won) is listed');
  assert.equal(index.size, 1);
});

test('index entries end a refresh after their announced expiry, and prune forgets them', () => {
  const index = new PrincipalIndex();
  index.apply(item({ expire: 1000 }), 0);
  assert.equal(index.lookup('u1', 1000 + INDEX_REFRESH_MS - 1).length, 1);
  assert.equal(index.lookup('u1', 1000 + INDEX_REFRESH_MS).length, 0);
  index.prune(1000 + INDEX_REFRESH_MS);
  assert.equal(index.size, 0);
});

test('two holders\' answers merge into one item per session: the newest ownership, the latest access; only live items', () => {
  const merged = mergeItems([
    [item({ epoch: 1, lastAccessAt: 500 }), item({ base: 'b2' })],
    [item({ epoch: 2, route: 'node2', lastAccessAt: 200 }), item({ base: 'b3', kind: 'gone' })],
  ]);
  assert.deepEqual(merged.sort((a, b) => a.base.localeCompare(b.base)), [item({ epoch: 2, route: 'node2', lastAccessAt: 500 }), item({ base: 'b2' })]);
});

test("a destruction known here hides only the ownerships it covers: a session adopted under a newer epoch after a failed logout is still listed (chaos, promise 2)", () => {
  // A log-out-everywhere cut off on one side of a partition left a tombstone at epoch 2 on the member
  // that later ran the next one; the other side had adopted the session at epoch 4.
  const tombstones = new Map([['b1', 2], ['b2', 2]]);
  const kept = notDestroyed([item({ base: 'b1', epoch: 4, route: 'node4' }), item({ base: 'b2', epoch: 2 }), item({ base: 'b3', epoch: 1 })], (b) => tombstones.get(b));
  assert.deepEqual(kept.map((x) => x.base), ['b1', 'b3']);
});

test('the write policy: principal from the merged values (numbers become strings), createdAt kept, expiry clamped to createdAt + absoluteMaxAge', () => {
  const policy = { principal: (s: Record<string, unknown>) => (s.user as { id?: number } | undefined)?.id, absoluteMaxAge: 1000 };
  assert.equal(principalOf(policy, { user: { id: 7 } }), '7');
  assert.equal(principalOf(policy, {}), undefined);
  assert.equal(principalOf({ principal: () => '' }, {}), undefined);
  const next = { base: 'b', owner: 'n', epoch: 1, version: 2, expire: 50_000, maxAge: 60_000, packed: '', role: 'primary', backup: undefined, createdAt: 10_000 } as SessionEntry;
  const plan = { next, message: { base: 'b', owner: 'n', epoch: 1, version: 2, baseVersion: 1, expire: 50_000, maxAge: 60_000, set: [], removed: [] }, nextValues: () => ({}) } as WritePlan;
  applyPolicy(plan, policy, 20_000, { user: { id: 7 } });
  assert.equal(next.expire, 11_000);
  assert.equal(plan.message.expire, 11_000);
  assert.equal(plan.message.createdAt, 10_000);
  assert.equal(plan.message.principal, '7');
  const fresh = { ...plan, next: { ...next, createdAt: undefined, expire: 50_000 } } as WritePlan;
  applyPolicy(fresh, {}, 20_000, {});
  assert.equal(fresh.next.createdAt, 20_000);
  assert.equal(fresh.next.expire, 50_000, 'no absoluteMaxAge: the idle expiry');
  assert.equal(fresh.message.principal, '');
});

test('the values a write leaves: the current ones with the keys it sends taken from what the request wrote', () => {
  const message = { base: 'b', owner: 'n', epoch: 1, version: 2, baseVersion: 1, expire: 0, maxAge: 0, set: [{ key: 'user', value: Buffer.alloc(0) }], removed: ['gone'] };
  // A concurrent request that did not touch `cart` wrote an old one: the current cart stays.
  const merged = mergedValues({ cart: ['tea'], gone: 1 }, { user: { id: 7 }, cart: [] }, message);
  assert.deepEqual(merged, { cart: ['tea'], user: { id: 7 } });
});

test('an expiry fires on the owner; on a copy only when the owner is gone (backup: the holder; delta: the first live member in ring order)', () => {
  const e = (owner: string, role: 'primary' | 'backup', unverified = false) => ({ base: 'xyz', owner, role, unverified, expire: 5000, createdAt: 4000 }) as SessionEntry;
  const live = ['node1', 'node2', 'node3'];
  assert.equal(firesExpiry(e('node1', 'primary'), 'node1', live, 'backup'), true);
  assert.equal(firesExpiry(e('node1', 'primary', true), 'node1', live, 'backup'), false, 'an unverified primary may have been taken over');
  assert.equal(firesExpiry(e('node1', 'backup'), 'node2', live, 'backup'), false, 'the live owner fires');
  assert.equal(firesExpiry(e('node9', 'backup'), 'node2', live, 'backup'), true, 'the owner is gone: the backup fires');
  const first = owners('xyz', live)[0];
  for (const self of live) assert.equal(firesExpiry(e('node9', 'backup'), self, live, 'delta'), self === first, `delta: only ${first}`);
  assert.equal(expiryReason(e('n', 'primary'), 1000), 'absolute');
  assert.equal(expiryReason(e('n', 'primary'), 5000), 'idle');
  assert.equal(expiryReason(e('n', 'primary'), undefined), 'idle');
});

test('a handle is stable for one secret, differs across secrets and sessions, and reveals nothing of the id', () => {
  const key = deriveHandleKey('a-cluster-secret-0123456789');
  const base = 'AbCdEfGhIjKlMnOpQrStUvWx';
  assert.equal(sessionHandle(key, base), sessionHandle(deriveHandleKey('a-cluster-secret-0123456789'), base));
  assert.notEqual(sessionHandle(key, base), sessionHandle(deriveHandleKey('another-secret-0123456789'), base));
  assert.notEqual(sessionHandle(key, base), sessionHandle(key, base.replace('A', 'B')));
  assert.match(sessionHandle(key, base), /^[A-Za-z0-9_-]{22}$/);
  assert.ok(!sessionHandle(key, base).includes(base.slice(0, 6)));
});
