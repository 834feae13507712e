/**
 * `unprotectedCount`: which sessions held here have one live copy, in both modes (issue 16).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unprotectedCount } from '../../src/replication/protection.js';
import type { SessionEntry } from '../../src/replication/session-table.js';

/** Only what the count reads: the rest of an entry changes with the replication layer. */
function entry(_base: string, role: 'primary' | 'backup', owner: string, backup?: string): Pick<SessionEntry, 'role' | 'owner' | 'backup'> {
  return { role, owner, backup };
}

test('backup mode: a primary without a live acknowledged backup, and a copy whose owner is gone, have one copy', () => {
  const held = [
    entry('p-ok', 'primary', 'a', 'b'),
    entry('p-none', 'primary', 'a'), // not acknowledged yet, or no other member
    entry('p-dead', 'primary', 'a', 'c'), // its backup was lost: re-protection owed
    entry('c-ok', 'backup', 'b'),
    entry('c-orphan', 'backup', 'c'), // its primary was lost: adoption owed
  ];
  assert.equal(unprotectedCount('backup', 'a', held, ['a', 'b']), 3);
  assert.equal(unprotectedCount('backup', 'a', held, ['b', 'c']), 1, 'self counts as live even when not listed');
  assert.equal(unprotectedCount('backup', 'a', [], ['a', 'b']), 0);
});

test('delta mode: every member holds everything, so sessions have one copy only while this member is alone', () => {
  const held = [entry('x', 'primary', 'a'), entry('y', 'backup', 'b'), entry('z', 'backup', 'c')];
  assert.equal(unprotectedCount('delta', 'a', held, ['a', 'b']), 0);
  assert.equal(unprotectedCount('delta', 'a', held, ['a']), 3);
  assert.equal(unprotectedCount('delta', 'a', held, []), 3);
});
