import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { owners, backupFor } from '../../src/ring/index.js';

const ids = Array.from({ length: 100_000 }, () => randomBytes(16).toString('base64url'));
const routes = (n: number) => Array.from({ length: n }, (_, i) => `node${i + 1}`);

test('owners() orders every member once, independent of input order', () => {
  fc.assert(
    fc.property(fc.string(), fc.uniqueArray(fc.stringMatching(/^[a-z0-9]{1,8}$/), { minLength: 1, maxLength: 12 }), (key, members) => {
      const a = owners(key, members);
      const b = owners(key, [...members].reverse());
      assert.deepEqual(a, b);
      assert.deepEqual([...a].sort(), [...members].sort());
    }),
  );
});

test('backupFor() is the first member of the order that is not the primary', () => {
  const members = routes(6);
  for (const id of ids.slice(0, 2000)) {
    const primary = members[id.charCodeAt(0) % members.length];
    const expected = owners(id, members).find((m) => m !== primary);
    assert.equal(backupFor(id, primary, members), expected);
  }
  assert.equal(backupFor('x', 'node1', ['node1']), undefined);
  assert.equal(backupFor('x', 'node1', ['node1', 'node2'], new Set(['node2'])), undefined);
});

for (const n of [4, 8, 16]) {
  test(`backups of 100k ids over ${n} members: the busiest holds at most 1.1x the mean`, () => {
    const members = routes(n);
    const count = new Map<string, number>(members.map((m) => [m, 0]));
    ids.forEach((id, i) => {
      const primary = members[i % n]; // primaries spread evenly, as sticky balancing does
      const b = backupFor(id, primary, members)!;
      count.set(b, count.get(b)! + 1);
    });
    const mean = ids.length / n;
    const max = Math.max(...count.values());
    assert.ok(max <= 1.1 * mean, `busiest holds ${max}, mean ${mean} (${(max / mean).toFixed(3)}x)`);
  });
}

for (const n of [4, 8, 16]) {
  test(`adding or removing one of ${n} members moves about 1/N of the backups`, () => {
    const members = routes(n);
    const grown = [...members, 'newcomer'];
    const shrunk = members.slice(1);
    let movedOnJoin = 0;
    let movedOnLeave = 0;
    let lost = 0;
    ids.forEach((id, i) => {
      const primary = members[(i % (n - 1)) + 1]; // never the removed node1
      const before = backupFor(id, primary, members)!;
      const afterJoin = backupFor(id, primary, grown)!;
      if (afterJoin !== before) {
        movedOnJoin++;
        assert.equal(afterJoin, 'newcomer', 'a join only moves backups to the new member');
      }
      if (before === 'node1') lost++;
      if (backupFor(id, primary, shrunk) !== before) movedOnLeave++;
    });
    // Only the copies the newcomer wins move: expected share 1/n of ids (it competes with n-1 others).
    assert.ok(movedOnJoin / ids.length <= 1.15 / n, `join moved ${movedOnJoin}`);
    assert.ok(movedOnJoin / ids.length >= 0.85 / n, `join moved ${movedOnJoin}`);
    // On leave, exactly the backups the leaver held move, nothing else.
    assert.equal(movedOnLeave, lost);
    assert.ok(movedOnLeave / ids.length <= 1.15 / (n - 1), `leave moved ${movedOnLeave}`);
  });
}
