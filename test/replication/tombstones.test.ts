import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Tombstones, type Destruction } from '../../src/replication/tombstones.js';

const base = () => randomBytes(18).toString('base64url');

test('the compact table behaves as a map, through inserts, updates, deletions, growth and sweeps (against a Map model)', () => {
  const pool = Array.from({ length: 300 }, base);
  pool.push('a-base-of-twenty-two-c', 'x'.repeat(40)); // other lengths: the plain map
  const op = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), i: fc.nat(pool.length - 1), epoch: fc.nat(1000), until: fc.nat(3600), owner: fc.nat(5) }),
    fc.record({ kind: fc.constant('delete' as const), i: fc.nat(pool.length - 1) }),
    fc.record({ kind: fc.constant('sweep' as const), now: fc.nat(3600) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 600 }), (ops) => {
      const t = new Tombstones(16);
      const model = new Map<string, Destruction>();
      for (const o of ops) {
        if (o.kind === 'set') {
          const d = { epoch: o.epoch, until: o.until * 1000, owner: `node${o.owner}` };
          t.set(pool[o.i], d);
          model.set(pool[o.i], d);
        } else if (o.kind === 'delete') {
          assert.equal(t.delete(pool[o.i]), model.delete(pool[o.i]));
        } else {
          const before = model.size;
          for (const [b, d] of model) if (d.until <= o.now * 1000) model.delete(b);
          assert.equal(t.sweep(o.now * 1000), before - model.size);
        }
        assert.equal(t.size, model.size);
      }
      for (const b of pool) assert.deepEqual(t.get(b), model.get(b));
      assert.deepEqual(new Map(t.entries()), model);
    }),
    { numRuns: 200 },
  );
});

test('until is kept to the second, rounded up: a tombstone never fences for less than asked', () => {
  const t = new Tombstones();
  const b = base();
  t.set(b, { epoch: 7, owner: 'node2', until: 1_800_000_000_123 });
  assert.deepEqual(t.get(b), { epoch: 7, owner: 'node2', until: 1_800_000_001_000 });
});

test('a tombstone costs 32 bytes a slot, 46 to 91 bytes by the table\'s fill (0.7 down to 0.35 after a doubling)', () => {
  const t = new Tombstones();
  for (let i = 0; i < 100_000; i++) t.set(base(), { epoch: 1, owner: 'node1', until: Date.now() + 86_400_000 });
  const perTombstone = t.bytes / t.size;
  assert.ok(perTombstone <= 32 / 0.35 && perTombstone >= 32, `${perTombstone.toFixed(1)} bytes per tombstone`);
});

test('a table made with versions keeps each one (the traces of expired copies), in 40-byte slots', () => {
  const t = new Tombstones(16, { versions: true });
  const bases = Array.from({ length: 100 }, base);
  bases.forEach((b, i) => t.set(b, { epoch: i, owner: 'node1', until: 2_000_000_000_000, version: i * 1_000_003 - 1 }));
  t.set('x'.repeat(40), { epoch: 1, owner: 'node2', until: 2_000_000_000_000, version: 7 });
  bases.forEach((b, i) => assert.equal(t.get(b)?.version, i * 1_000_003 - 1));
  assert.equal(t.get('x'.repeat(40))?.version, 7);
  assert.equal(t.bytes / 40, 256, 'grown to 256 slots of 40 bytes');
  assert.equal(new Tombstones().get(bases[0]), undefined);
});
