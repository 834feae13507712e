/**
 * The per-session copy check (copies.ts), pure: what agrees, and each way copies can disagree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkCopies, placement } from './copies.js';
import type { ChaosCopy } from './member-cluster.js';
import type { MemberCopies } from './members.js';

function copy(base: string, role: 'primary' | 'backup', extra: Partial<ChaosCopy> = {}): ChaosCopy {
  return { base, role, owner: 'node1', epoch: 1, version: 3, backup: '', unverified: false, resync: false, content: 'abc', ...extra };
}

/** node1 primary of s1 with backups on node2 (and node3 when `k` is 2). */
function cluster(k: 1 | 2, change: (m: MemberCopies[]) => void = () => {}): MemberCopies[] {
  const members: MemberCopies[] = [
    { route: 'node1', copies: [copy('s1', 'primary', { backup: k === 2 ? 'node2,node3' : 'node2' })] },
    { route: 'node2', copies: [copy('s1', 'backup')] },
    { route: 'node3', copies: k === 2 ? [copy('s1', 'backup')] : [] },
  ];
  change(members);
  return members;
}

test('copies that agree (one primary on the owner, its named backups, same epoch, version and values) pass', () => {
  assert.deepEqual(checkCopies('backup', 1, cluster(1)), { problems: [], sessions: 1 });
  assert.deepEqual(checkCopies('backup', 2, cluster(2)), { problems: [], sessions: 1 });
});

test('backup mode: a copy at another version, with other values, or unverified is a disagreement', () => {
  for (const change of [{ version: 4 }, { content: 'xyz' }, { epoch: 2 }, { unverified: true }]) {
    const { problems } = checkCopies('backup', 1, cluster(1, (m) => Object.assign(m[1].copies[0], change)));
    assert.equal(problems.length, 1, JSON.stringify(change));
  }
});

test('backup mode: too few copies, two primaries, or backups the primary does not name are disagreements', () => {
  assert.match(checkCopies('backup', 2, cluster(1)).problems[0], /2 copies, want 3/);
  assert.match(checkCopies('backup', 1, cluster(1, (m) => (m[1].copies[0].role = 'primary'))).problems[0], /2 primaries|not on the owner/);
  assert.match(checkCopies('backup', 1, cluster(1, (m) => (m[0].copies[0].backup = 'node3'))).problems[0], /names backups \[node3\], held by \[node2\]/);
});

test('delta mode: versions may differ (a failed write burns one on the owner), values may not; every member holds a copy', () => {
  const delta = (change: (m: MemberCopies[]) => void) =>
    checkCopies('delta', 1, cluster(2, (m) => {
      m[0].copies[0].backup = '';
      change(m);
    }));
  assert.deepEqual(delta((m) => (m[2].copies[0].version = 1)).problems, []);
  assert.match(delta((m) => (m[2].copies[0].content = 'old')).problems[0], /values differ/);
  assert.match(delta((m) => (m[2].copies = [])).problems[0], /2 copies, want 3/);
});

test('a session known live but held by no member is reported', () => {
  assert.match(checkCopies('backup', 1, cluster(1), ['s1', 's2']).problems[0], /^s2: live .* held by no member/);
});

test('placement lists the holders of each session', () => {
  assert.deepEqual(placement(cluster(2)).get('s1'), ['node1', 'node2', 'node3']);
});

test('without a live majority only the copies\' values, epochs, owners and versions are compared: nothing is verified or re-protected then, by design', () => {
  const answers = cluster(1);
  answers[0].copies[0].unverified = true;
  assert.match(checkCopies('backup', 1, answers, ['s1']).problems[0], /unverified copy/);
  assert.deepEqual(checkCopies('backup', 1, answers, ['s1'], false).problems, []);
});
