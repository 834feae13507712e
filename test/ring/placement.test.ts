import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { backupsFor, backupFor, owners, type Placed } from '../../src/ring/index.js';

const route = (i: number) => `node${i}`;

test('without zones, k backups are the first k members of the ring order that are not the primary', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 24 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 4 }), (base, n, k) => {
      const members = Array.from({ length: n }, (_, i) => ({ route: route(i) }));
      const primary = members[0];
      const expected = owners(base, members.map((m) => m.route)).filter((r) => r !== primary.route).slice(0, k);
      assert.deepEqual(backupsFor(base, primary, members, k), expected);
      if (n > 1) assert.equal(backupsFor(base, primary, members, 1)[0], backupFor(base, primary.route, members.map((m) => m.route)), 'k = 1 is the backup of before');
    }),
  );
});

test('copies go to distinct zones first, then share; never the primary; never more than there are', () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 24 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 9 }),
      fc.integer({ min: 1, max: 5 }),
      (base, zones, k) => {
        const members: Placed[] = zones.map((z, i) => ({ route: route(i), zone: `z${z}` }));
        const primary = members[0];
        const chosen = backupsFor(base, primary, members, k);
        assert.equal(chosen.length, Math.min(k, members.length - 1));
        assert.equal(new Set(chosen).size, chosen.length, 'distinct members');
        assert.ok(!chosen.includes(primary.route));
        const zoneOf = (r: string) => members.find((m) => m.route === r)!.zone!;
        const otherZones = new Set(members.filter((m) => m.zone !== primary.zone).map((m) => m.zone));
        const distinct = new Set(chosen.map(zoneOf).filter((z) => z !== primary.zone));
        assert.equal(distinct.size, Math.min(chosen.length, otherZones.size), 'as many zones besides the primary\'s as there are, before any repeats');
      },
    ),
  );
});

test('a lost zone costs no session: with copies in two zones, every member of one zone can go', () => {
  const members: Placed[] = Array.from({ length: 6 }, (_, i) => ({ route: route(i), zone: `z${i % 3}` }));
  for (let s = 0; s < 2000; s++) {
    const base = `session-${s}`;
    const primary = members[s % 6];
    const copies = [primary.route, ...backupsFor(base, primary, members, 1)];
    const zonesHeld = new Set(copies.map((r) => members.find((m) => m.route === r)!.zone));
    assert.equal(zonesHeld.size, 2, `${base}: two copies in two zones`);
  }
});

test('members that name no zone are zones of their own', () => {
  const members: Placed[] = [{ route: 'a', zone: 'z1' }, { route: 'b', zone: 'z1' }, { route: 'c' }, { route: 'd' }];
  for (let s = 0; s < 200; s++) {
    const chosen = backupsFor(`k${s}`, members[0], members, 2);
    assert.ok(!chosen.includes('b'), 'b shares the primary\'s zone: chosen only when nothing else is left');
  }
});
