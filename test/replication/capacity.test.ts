/**
 * The capacity rules of one member (issue 26), as pure functions and one `Capacity` over a table the
 * test holds: the planned level's formula, where copies go when a member is full, what a new session
 * meets at the planned level under each `onCapacity`, and copies refused at `maxSessions`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Capacity, FullMembers, derivedMaxSessions, plannedLevel, withRoom, type OnCapacity } from '../../src/replication/capacity.js';
import { SessionCapacityError, SessionUnavailableError } from '../../src/errors.js';

test('plannedLevel = floor(maxSessions · (N - f) / N), f = min(backups, N - 1); maxSessions in delta mode or alone', () => {
  const cases: [max: number, live: number, mode: 'backup' | 'delta', backups: number, want: number][] = [
    [1000, 4, 'backup', 1, 750],
    [1000, 3, 'backup', 1, 666],
    [1000, 2, 'backup', 1, 500],
    [1000, 1, 'backup', 1, 1000],
    [1000, 5, 'backup', 2, 600],
    [1000, 2, 'backup', 3, 500],
    [1000, 4, 'delta', 1, 1000],
  ];
  for (const [max, live, mode, backups, want] of cases) assert.equal(plannedLevel(max, live, mode, backups), want, `${max} ${live} ${mode} ${backups}`);
  // What the level is for: after one of N members fails, each survivor holds L · N / (N - 1) ≤ max.
  for (const n of [2, 3, 4, 8, 16]) assert.ok((plannedLevel(10_000, n, 'backup') * n) / (n - 1) <= 10_000);
});

test('the default maxSessions is half the heap the application left over the cost of one session', () => {
  assert.equal(derivedMaxSessions(1024 * 1024 * 1024, 2048), 262_144);
  assert.equal(derivedMaxSessions(1024 * 1024 * 1024, 2048, 512 * 1024 * 1024), 131_072, 'a baseline of half the heap halves it');
  assert.equal(derivedMaxSessions(128 * 1024 * 1024, 100), 131_072, 'a cost below 512 bytes counts as 512');
  assert.equal(derivedMaxSessions(1000, 2048), 100, 'never below 100');
});

test('withRoom: a full member gets no new copy; an existing session stays where it is held, a new one is refused', () => {
  const full = new FullMembers();
  const [a, b, c] = [{ route: 'a' }, { route: 'b' }, { route: 'c' }];
  assert.deepEqual(withRoom(full, [a, b], [], true), [a, b], 'nobody full: the ring decides');
  full.mark('b');
  assert.ok(full.has('b') && !full.has('a'));
  assert.deepEqual(withRoom(full, [a, b], [c], false), [a, c], 'b is replaced by c, which holds the session already');
  assert.deepEqual(withRoom(full, [a, b], [], false), [a], 'nobody to replace it: one copy fewer');
  assert.deepEqual(withRoom(full, [a, b], [b], false), [a, b], 'b holds it already: its copy is updated, not new');
  assert.throws(() => withRoom(full, [a, b], [], true), (err: unknown) => err instanceof SessionCapacityError && err.reason === 'copy-holder-full');
});

function member(onCapacity: OnCapacity, max: number, live = 2) {
  const held = new Set<string>();
  const primaries = new Set<string>();
  const evicted: string[] = [];
  const capacity = new Capacity({
    maxSessions: max,
    onCapacity,
    idleMs: 1000,
    maxEventLoopDelay: 0,
    mode: 'backup',
    backups: 1,
    held: () => held.size,
    liveMembers: () => live,
    isPrimary: (base) => primaries.has(base),
    evict: (base) => {
      evicted.push(base);
      held.delete(base);
      return Promise.resolve(primaries.delete(base));
    },
    logger: pino({ level: 'silent' }),
    heapLimitBytes: 256 * 1024 * 1024,
  });
  const create = async (base: string) => {
    await capacity.admitSession(base, undefined);
    held.add(base);
    primaries.add(base);
    capacity.creationEnded(base);
    capacity.touched(base);
  };
  return { capacity, held, primaries, evicted, create };
}

test("'refuse': new sessions stop at the planned level with a 503 SessionCapacityError; nothing that exists is dropped", async () => {
  const m = member('refuse', 200); // 2 members: planned level 100
  for (let i = 0; i < 100; i++) await m.create(`s${i}`);
  await assert.rejects(m.create('one-more'), (err: unknown) => {
    assert.ok(err instanceof SessionCapacityError && err instanceof SessionUnavailableError);
    assert.equal(err.code, 'ERR_SESSION_CAPACITY');
    assert.equal(err.status, 503);
    assert.equal(err.headers['Retry-After'], '1');
    assert.equal(err.reason, 'full');
    assert.match(err.message, /planned level \(100 of maxSessions 200/);
    return true;
  });
  assert.equal(m.held.size, 100);
  assert.deepEqual(m.evicted, []);
  // Copies still come, up to maxSessions: the room kept for a failed member's share.
  for (let i = 0; i < 100; i++) {
    m.capacity.admitCopy(`c${i}`);
    m.held.add(`c${i}`);
  }
  assert.throws(() => m.capacity.admitCopy('c-over'), (err: unknown) => err instanceof SessionCapacityError && err.reason === 'full');
  assert.equal(m.capacity.status().copiesRefused, 1);
  assert.equal(m.capacity.status().refusedFull, 1);
  assert.equal(m.capacity.status().fill, 1);
});

test('a creation admitted holds its place until it ends: a copy arriving meanwhile is refused at maxSessions', async () => {
  const m = member('refuse', 4, 1); // 1 member: planned level = maxSessions
  for (let i = 0; i < 3; i++) await m.create(`s${i}`);
  // Admitted, its copies on their way (not in the table yet): the last place is taken.
  await m.capacity.admitSession('new', undefined);
  assert.throws(() => m.capacity.admitCopy('c1'), (err: unknown) => err instanceof SessionCapacityError && err.reason === 'full');
  await assert.rejects(m.capacity.admitSession('another', undefined), (err: unknown) => err instanceof SessionCapacityError && err.reason === 'full');
  // The creation failed: its place is free again.
  m.capacity.creationEnded('new');
  assert.doesNotThrow(() => m.capacity.admitCopy('c1'));
});

test("'evict-idle': the least recently used session idle past the bound goes first; none idle enough, the new one is refused", async () => {
  const m = member('evict-idle', 200, 2);
  for (let i = 0; i < 100; i++) await m.create(`s${i}`);
  // Nothing idle a second yet: refused, nothing evicted.
  await assert.rejects(m.create('early'), (err: unknown) => err instanceof SessionCapacityError && err.reason === 'full');
  assert.deepEqual(m.evicted, []);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  // s0 and s1 were used again just now: s2 is the least recently used.
  m.capacity.touched('s0');
  m.capacity.touched('s1');
  m.primaries.delete('s2'); // moved to another member meanwhile: not ours to evict
  m.held.delete('s2');
  await m.create('late1');
  await m.create('late2');
  assert.deepEqual(m.evicted, ['s3'], 'one in, one out; s2 is skipped as not served here');
  assert.equal(m.capacity.status().evicted, 1);
});
