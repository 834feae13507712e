import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adopt, applyCopy, applyDelta, applyPackedCopy, applyRemove, compareHeld, describeHeld, grantTo, installGranted, expiredPast, isExpiryTrace, toCopy, toPackedCopy } from '../../src/replication/copies.js';
import { EXPIRY_TRACE_MS, SessionTable } from '../../src/replication/session-table.js';
import { systemClock } from '../../src/replication/clock.js';
import { unpackEntries, type Packed } from '../../src/replication/packed-entries.js';
import type { SessionDeltaMessage } from '../../src/codec/messages.js';

const later = () => Date.now() + 60_000;
const b = (s: string) => Buffer.from(s);
/** The value of `key` in an entry's packed entries, as text. */
const held = (p: Packed, key: string) => unpackEntries(p).find((x) => x.key === key)?.value.toString();

function delta(over: Partial<SessionDeltaMessage>): SessionDeltaMessage {
  return { base: 'S', owner: 'n1', epoch: 1, version: 1, baseVersion: 0, expire: later(), maxAge: 60_000, set: [], removed: [], ...over };
}

test('deltas apply in version order, repeats are acknowledged again, and a gap asks for the whole session', () => {
  const t = new SessionTable();
  assert.equal(applyDelta(t, delta({ set: [{ key: 'a', value: b('1') }] })).status, 'OK');
  assert.equal(applyDelta(t, delta({ version: 2, baseVersion: 1, set: [{ key: 'b', value: b('2') }] })).status, 'OK');
  assert.equal(applyDelta(t, delta({ version: 2, baseVersion: 1, set: [{ key: 'b', value: b('X') }] })).status, 'OK');
  assert.equal(held(t.get('S')!.packed, 'b'), '2', 'a repeated version changes nothing');
  assert.equal(applyDelta(t, delta({ version: 4, baseVersion: 3 })).status, 'NEED_FULL');
  assert.equal(applyDelta(t, delta({ base: 'T', version: 5, baseVersion: 4 })).status, 'NEED_FULL', 'unknown session mid-stream');
  assert.equal(applyDelta(t, delta({ version: 3, baseVersion: 2, removed: ['a'] })).status, 'OK');
  assert.deepEqual(unpackEntries(t.get('S')!.packed).map((x) => x.key), ['b']);
});

test('a stale owner is fenced: lower epoch, a tie lost to a greater route, or after a takeover tombstone', () => {
  const t = new SessionTable();
  applyDelta(t, delta({}));
  // A new owner's delta onto a copy that missed its takeover: the ownership is recorded (it fences),
  // the content is not trusted (no version: the same number may hold other content), a whole copy is asked for.
  assert.equal(applyDelta(t, delta({ owner: 'n2', epoch: 2, version: 2, baseVersion: 1 })).status, 'NEED_FULL');
  assert.equal(t.get('S')!.owner, 'n2');
  assert.equal(t.get('S')!.version, -1);
  const stale = applyDelta(t, delta({ owner: 'n1', epoch: 1, version: 2, baseVersion: 1 }));
  assert.deepEqual(stale, { status: 'STALE', epoch: 2, owner: 'n2' });
  // A tie (two concurrent takeovers reaching one epoch) goes to the greater route on every holder.
  assert.equal(applyDelta(t, delta({ owner: 'n1', epoch: 2, version: 2, baseVersion: 1 })).status, 'STALE');
  assert.equal(applyRemove(t, { base: 'S', owner: 'n1', epoch: 2, destroy: false, until: 0 }).status, 'STALE', 'the tie loser cannot drop the winner');
  assert.equal(applyRemove(t, { base: 'S', owner: 'n1', epoch: 1, destroy: false, until: 0 }).status, 'STALE');
  assert.equal(applyDelta(t, delta({ owner: 'n3', epoch: 2, version: 2, baseVersion: 1 })).status, 'NEED_FULL');
  assert.equal(t.get('S')!.owner, 'n3');
  assert.equal(applyCopy(t, { base: 'S', owner: 'n3', epoch: 2, version: 2, expire: later(), maxAge: 1, entries: [] }).status, 'OK');
  assert.equal(t.get('S')!.version, 2, 'the whole copy installs over the untrusted one');
  assert.equal(applyRemove(t, { base: 'S', owner: 'n3', epoch: 3, destroy: false, until: 0 }).status, 'OK');
  assert.equal(t.get('S'), undefined);
  assert.equal(applyDelta(t, delta({ owner: 'n2', epoch: 2, version: 2, baseVersion: 1 })).status, 'STALE', 'tombstone fences');
  const copy = { base: 'S', owner: 'n2', epoch: 2, version: 9, expire: later(), maxAge: 1, entries: [] };
  assert.equal(applyCopy(t, copy).status, 'STALE');
  assert.equal(applyCopy(t, { ...copy, owner: 'n4', epoch: 4 }).status, 'OK');
});

test('a full copy never replaces a newer version of the same epoch', () => {
  const t = new SessionTable();
  const copy = { base: 'S', owner: 'n1', epoch: 1, version: 5, expire: later(), maxAge: 1, entries: [{ key: 'k', value: b('5') }] };
  applyCopy(t, copy);
  applyCopy(t, { ...copy, version: 4, entries: [{ key: 'k', value: b('4') }] });
  assert.equal(held(t.get('S')!.packed, 'k'), '5');
});

test('a packed copy (state transfer page) installs what the whole copy would, under the same rules', () => {
  const source = new SessionTable();
  applyCopy(source, { base: 'P', owner: 'n1', epoch: 3, version: 7, expire: later(), maxAge: 1, entries: [{ key: 'k', value: b('7') }, { key: 'j', value: b('x') }], createdAt: 5, principal: 'ana' });
  const sent = toPackedCopy(source.get('P')!);
  const { entries: _entries, ...whole } = toCopy(source.get('P')!);
  const { packed: _packed, ...fields } = sent;
  assert.deepEqual(fields, whole, 'the same fields but the entries');
  const t = new SessionTable();
  assert.equal(applyPackedCopy(t, sent).status, 'OK');
  const got = t.get('P')!;
  assert.deepEqual([got.packed, got.version, got.epoch, got.owner, got.createdAt, got.principal, got.role], [source.get('P')!.packed, 7, 3, 'n1', 5, 'ana', 'backup']);
  assert.equal(applyPackedCopy(t, { ...sent, version: 6, packed: Buffer.alloc(0) }).status, 'OK');
  assert.equal(held(t.get('P')!.packed, 'k'), '7', 'an older version of the same ownership changes nothing');
  t.moved('P', 4, 'n2');
  assert.equal(applyPackedCopy(t, sent).status, 'STALE', 'fenced by a newer owner');
});

test('expired sessions disappear from reads and sweeps', () => {
  const t = new SessionTable();
  applyDelta(t, delta({ expire: Date.now() - 1 }));
  assert.equal(t.get('S'), undefined);
  applyDelta(t, delta({ base: 'U', expire: Date.now() + 20 }));
  assert.equal(t.sweep(Date.now() + 100), 1);
  assert.equal(t.size, 0);
});

test('a destroyed session stays destroyed: its tombstone fences every copy and write of that ownership or older, until expiry', () => {
  const t = new SessionTable();
  applyDelta(t, delta({ set: [{ key: 'a', value: b('1') }] }));
  const until = later();
  assert.equal(applyRemove(t, { base: 'S', owner: 'n1', epoch: 1, destroy: true, until }).status, 'OK');
  assert.deepEqual(describeHeld(t, 'S'), { found: false, primary: false, owner: 'n1', epoch: 1, version: 0, removed: true, backup: '' });
  const copy = { base: 'S', owner: 'n1', epoch: 1, version: 1, expire: later(), maxAge: 1, entries: [] };
  assert.equal(applyCopy(t, copy).status, 'STALE', 'a stray copy of the same epoch');
  assert.equal(applyCopy(t, { ...copy, owner: 'a0', epoch: 1 }).status, 'STALE', 'a tie lost to the destroying owner');
  assert.equal(applyDelta(t, delta({ version: 2, baseVersion: 1 })).status, 'STALE');
  assert.equal(applyRemove(t, { base: 'S', owner: 'n1', epoch: 1, destroy: false, until: 0 }).status, 'OK');
  assert.equal(describeHeld(t, 'S').removed, true, 'a later drop does not turn the destruction into a move');
  assert.ok(t.tombstone('S')!.until >= until);
  // A destroy its owner could not get acknowledged is superseded by a newer owner that never saw it.
  assert.equal(applyCopy(t, { ...copy, owner: 'n9', epoch: 7 }).status, 'OK');
  assert.equal(describeHeld(t, 'S').found, true);
});

test('a destroy holders never saw still leaves a tombstone; a destroy from a stale owner is refused', () => {
  const t = new SessionTable();
  assert.equal(applyRemove(t, { base: 'X', owner: 'n1', epoch: 3, destroy: true, until: later() }).status, 'OK');
  assert.equal(describeHeld(t, 'X').removed, true);
  applyCopy(t, { base: 'Y', owner: 'n2', epoch: 2, version: 4, expire: later(), maxAge: 1, entries: [] });
  assert.deepEqual(applyRemove(t, { base: 'Y', owner: 'n1', epoch: 1, destroy: true, until: later() }), { status: 'STALE', epoch: 2, owner: 'n2' });
  assert.equal(describeHeld(t, 'Y').found, true, 'the newer owner keeps the session');
});

test('granting a takeover: the holder keeps the data as a copy of the taker, one epoch up; the taker installs it as primary', () => {
  const holder = new SessionTable();
  applyCopy(holder, { base: 'S', owner: 'n1', epoch: 4, version: 9, expire: later(), maxAge: 1, entries: [{ key: 'k', value: b('v') }] }, 'primary');
  const granted = grantTo(holder.get('S')!, 'n2');
  assert.deepEqual([granted.owner, granted.epoch, granted.version], ['n2', 5, 9]);
  assert.deepEqual(describeHeld(holder, 'S'), { found: true, primary: false, owner: 'n2', epoch: 5, version: 9, removed: false, backup: '' });
  assert.equal(applyDelta(holder, delta({ owner: 'n1', epoch: 4, version: 10, baseVersion: 9 })).status, 'STALE', 'the old owner is fenced at once');
  const taker = new SessionTable();
  const mine = installGranted(taker, granted);
  assert.equal(mine.role, 'primary');
  assert.equal(held(mine.packed, 'k'), 'v');
  const e = holder.get('S')!;
  adopt(e, 'n3');
  assert.deepEqual([e.role, e.owner, e.epoch], ['primary', 'n3', 7], 'past any epoch the gone owner may have granted');
});

test('what members hold is ordered by ownership, then version', () => {
  assert.ok(compareHeld({ epoch: 2, owner: 'a', version: 1 }, { epoch: 1, owner: 'z', version: 99 }) > 0);
  assert.ok(compareHeld({ epoch: 2, owner: 'b', version: 1 }, { epoch: 2, owner: 'a', version: 5 }) > 0);
  assert.ok(compareHeld({ epoch: 2, owner: 'a', version: 3 }, { epoch: 2, owner: 'a', version: 5 }) < 0);
  assert.equal(compareHeld({ epoch: 2, owner: 'a', version: 5 }, { epoch: 2, owner: 'a', version: 5 }), 0);
});

test('a copy let go to a newer owner is described as moved (found: false, with the owner), not as unknown', () => {
  const t = new SessionTable();
  applyCopy(t, { base: 'M', owner: 'n1', epoch: 4, version: 5, expire: later(), maxAge: 1, entries: [] });
  t.moved('M', 5, 'n2');
  assert.deepEqual(describeHeld(t, 'M'), { found: false, primary: false, owner: 'n2', epoch: 5, version: 0, removed: false, backup: '' });
  assert.deepEqual(describeHeld(t, 'never'), { found: false, primary: false, owner: '', epoch: 0, version: 0, removed: false, backup: '' });
});

test('an expired copy leaves a trace (ownership and version) that ends an older copy\'s takeover, and goes two minutes after', () => {
  let now = 1_800_000_000_000;
  const clock = { ...systemClock, now: () => now };
  // n3's clock runs ahead: its copy of n1's session (epoch 13, version 17) ends first.
  const n3 = new SessionTable(clock);
  applyCopy(n3, { base: 'E', owner: 'n1', epoch: 13, version: 17, expire: now + 1000, maxAge: 1, entries: [] });
  now += 1000;
  assert.equal(n3.get('E'), undefined);
  const trace = describeHeld(n3, 'E');
  assert.deepEqual(trace, { found: false, primary: false, owner: 'n1', epoch: 13, version: 17, removed: false, backup: '' });
  assert.ok(isExpiryTrace(trace));
  assert.ok(!isExpiryTrace({ ...trace, version: 0 }), 'a moved-session answer carries no version');
  // n2 holds an older copy (n3's former backup, epoch 12): the newest copy known ended, so has the session.
  const n2 = new SessionTable(clock);
  applyCopy(n2, { base: 'E', owner: 'n3', epoch: 12, version: 14, expire: now + 300, maxAge: 1, entries: [] });
  const mine = describeHeld(n2, 'E');
  assert.deepEqual(expiredPast(n2, 'E', [trace], mine), { epoch: 13, owner: 'n1', version: 17 });
  assert.deepEqual(expiredPast(n2, 'E', [trace], undefined), { epoch: 13, owner: 'n1', version: 17 }, 'with no copy found either');
  // One as new as the copy that ended has its expiry (it ended on a clock ahead): it ended too (delta seed 36).
  assert.deepEqual(expiredPast(n2, 'E', [trace], { ...trace, version: 17 }), { epoch: 13, owner: 'n1', version: 17 }, 'a copy as new as the one that ended has ended');
  assert.equal(expiredPast(n2, 'E', [trace], { ...trace, version: 18 }), undefined, 'nor a newer one (its owner extended the session)');
  // An answer naming a newer owner it let the session go to: that owner holds it, no end is known.
  assert.equal(expiredPast(n2, 'E', [trace, { ...trace, owner: 'n2', epoch: 14, version: 0 }], mine), undefined);
  n2.outlived('E', trace);
  assert.equal(n2.get('E'), undefined);
  assert.deepEqual(describeHeld(n2, 'E'), trace, 'the taker answers as the member whose copy ended');
  // An owner whose clock runs behind wrote again (an idle session extended): the newer copy installs, the trace goes.
  applyCopy(n3, { base: 'E', owner: 'n1', epoch: 13, version: 18, expire: now + 60_000, maxAge: 1, entries: [] });
  assert.equal(describeHeld(n3, 'E').found, true);
  assert.equal(n3.tombstoneCount().expired, 0);
  // An older copy arriving late (its owner back from a cut, resending what it held) is refused as a
  // stale owner's is, naming the ownership that ended: installed, its sender read "OK" as "no newer
  // owner anywhere" and served it again (delta seed 57635). The trace stays in place.
  assert.deepEqual(applyCopy(n2, { base: 'E', owner: 'n3', epoch: 12, version: 14, expire: now + 300, maxAge: 1, entries: [] }), { status: 'STALE', epoch: 13, owner: 'n1' });
  assert.deepEqual(applyCopy(n2, { base: 'E', owner: 'n1', epoch: 13, version: 16, expire: now + 300, maxAge: 1, entries: [] }), { status: 'STALE', epoch: 13, owner: 'n1' }, 'an older version of the same ownership too');
  assert.equal(n2.get('E'), undefined);
  assert.equal(n2.tombstoneCount().expired, 1);
  n2.moved('E', 12, 'n3');
  assert.deepEqual(describeHeld(n2, 'E'), trace, 'the newer of a trace and a moved tombstone is answered');
  now += EXPIRY_TRACE_MS + 1000;
  n2.sweep();
  assert.equal(n2.tombstoneCount().expired, 0);
  assert.equal(isExpiryTrace(describeHeld(n2, 'E')), false);
});

test('a copy or delta applied from a received frame keeps its own bytes: the frame may go or be reused', () => {
  const t = new SessionTable();
  const frame = Buffer.from('xxAAyyBBzz');
  applyCopy(t, { base: 'F', owner: 'n1', epoch: 1, version: 1, expire: later(), maxAge: 1, entries: [{ key: 'a', value: frame.subarray(2, 4) }] });
  applyDelta(t, delta({ base: 'F', version: 2, baseVersion: 1, set: [{ key: 'b', value: frame.subarray(6, 8) }] }));
  frame.fill(0);
  assert.deepEqual([held(t.get('F')!.packed, 'a'), held(t.get('F')!.packed, 'b')], ['AA', 'BB']);
});
