/**
 * The nemesis's pure parts: which faults can run where, what each hits, and that a partition's excuse
 * covers only the sessions whose every copy it cut off, answered from the side without one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { History } from './history.js';
import type { ChaosCluster } from './members.js';
import { faultKinds, planFault, Nemesis, type FaultSetting } from './nemesis.js';
import { Random } from './random.js';

const routes = ['node1', 'node2', 'node3', 'node4', 'node5', 'node6'];
const zones = new Map([
  ['zone-a', ['node1', 'node4']],
  ['zone-b', ['node2', 'node5']],
  ['zone-c', ['node3', 'node6']],
]);
const setting: FaultSetting = { net: 'netns', members: 6, mode: 'backup', zones, faketime: true, killMany: 2 };

test('faults that need namespaces, zones or libfaketime say so where they cannot run', () => {
  const { kinds, why } = faultKinds({ ...setting, net: 'loopback', zones: new Map(), faketime: false });
  assert.deepEqual(kinds, ['kill', 'pause', 'term', 'kill-many']);
  assert.match(why.get('zone-cut')!, /netns/);
  assert.match(why.get('zone-kill')!, /--zones/);
  assert.match(why.get('clock-step')!, /faketime/);
  assert.equal(faultKinds(setting).kinds.length, 13);
  assert.match(why.get('partition-reset-in')!, /netns/);
});

test('kill-many hits K members, zone faults a whole zone, a long partition only while it fits', () => {
  const rng = new Random(1);
  for (let i = 0; i < 50; i++) {
    assert.equal(new Set(planFault(rng, ['kill-many'], routes, { ...setting, killMany: 3 }, 1500, 600_000).targets).size, 3);
    const z = planFault(rng, ['zone-kill', 'zone-cut'], routes, setting, 1500, 600_000).targets;
    assert.ok([...zones.values()].some((members) => members.join() === z.join()), `${z.join()} is a zone`);
    assert.equal(planFault(rng, ['partition-long', 'kill'], routes, setting, 1500, 179_000).kind, 'kill');
    const step = planFault(rng, ['clock-step'], routes, setting, 1500, 600_000).clock!;
    for (const o of step) assert.match(o, /^[+-]([1-9]|[12][0-9]|30)s$/);
  }
  // 2-3 minutes (issue 23), and a 10-minute run can still draw one in its first 7.
  for (let seed = 1; seed <= 20; seed++) {
    const long = planFault(new Random(seed), ['partition-long'], routes, setting, 1500, 180_000).holdMs;
    assert.ok(long >= 120_000 && long <= 180_000, `${long} ms`);
  }
  const drawn = Array.from({ length: 20 }, (_, i) => planFault(new Random(i + 1), ['partition-long', 'kill'], routes, setting, 1500, 600_000 - 420_000).kind);
  assert.ok(drawn.includes('partition-long'));
});

test("a partition's excuse covers only sessions whose every copy it cut off, answered from the side without a copy, in its window", () => {
  const cluster = { zones: new Map(), spec: { net: 'netns', members: 5 } } as unknown as ChaosCluster;
  const opts = { mode: 'backup' as const, dropTime: 1500, backups: 1, now: () => 0, t0: 0, endsAt: 1, capMs: 1, tmpDir: '/tmp' };
  const nemesis = new Nemesis(cluster, new History(() => 0), new Random(1), { ...opts, lifecycle: () => {}, hold: () => Promise.resolve(), log: () => {} });
  nemesis.cutWindows.push({
    kind: 'partition-two',
    from: 10_000,
    to: 20_000,
    groups: [['node1', 'node2'], ['node3', 'node4', 'node5']],
    placement: new Map([
      ['cut', ['node1', 'node2']],
      ['split', ['node2', 'node3']],
    ]),
  });
  assert.match(nemesis.excuse('node4', 'cut', 12_000, 12_100)!, /cut off from every copy \(node1, node2\) by partition-two/);
  assert.equal(nemesis.excuse('node4', 'split', 12_000, 12_100), undefined, 'a copy on the answering side');
  assert.equal(nemesis.excuse('node1', 'cut', 12_000, 12_100), undefined, 'the side holding the copies');
  assert.equal(nemesis.excuse('node4', 'unknown', 12_000, 12_100), undefined, 'placement unknown: never excused');
  assert.ok(nemesis.excuse('node4', 'cut', 21_000, 21_100) !== undefined, 'until dropTime after the heal');
  assert.equal(nemesis.excuse('node4', 'cut', 21_600, 21_700), undefined, 'after that');
  assert.equal(nemesis.excusedBy.get('partition-two'), 2);
});
