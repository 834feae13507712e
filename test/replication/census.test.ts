/**
 * `census`: how many sessions are held here as primary and as copies, and which have one live copy,
 * in both modes (issues 14, 16).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { census } from '../../src/replication/census.js';
import type { SessionEntry } from '../../src/replication/session-table.js';

const NOW = 1_000_000;

/** Only what the census reads: the rest of an entry changes with the replication layer. */
function entry(role: 'primary' | 'backup', owner: string, backup?: string, expire = NOW + 1): Pick<SessionEntry, 'role' | 'owner' | 'backup' | 'expire'> {
  return { role, owner, backup, expire };
}

test('backup mode: a primary without a live acknowledged backup, and a copy whose owner is gone, have one copy', () => {
  const held = [
    entry('primary', 'a', 'b'),
    entry('primary', 'a'), // not acknowledged yet, or no other member
    entry('primary', 'a', 'c'), // its backup was lost: re-protection owed
    entry('backup', 'b'),
    entry('backup', 'c'), // its primary was lost: adoption owed
  ];
  assert.deepEqual(census('backup', 'a', held, ['a', 'b'], NOW), { primary: 3, backup: 2, unprotected: 3, underReplicated: 3 });
  assert.deepEqual(census('backup', 'a', held, ['b', 'c'], NOW), { primary: 3, backup: 2, unprotected: 1, underReplicated: 1 }, 'self counts as live even when not listed');
  assert.deepEqual(census('backup', 'a', [], ['a', 'b'], NOW), { primary: 0, backup: 0, unprotected: 0, underReplicated: 0 });
});

test('delta mode: every member holds everything, so sessions have one copy only while this member is alone', () => {
  const held = [entry('primary', 'a'), entry('backup', 'b'), entry('backup', 'c')];
  assert.deepEqual(census('delta', 'a', held, ['a', 'b'], NOW), { primary: 1, backup: 2, unprotected: 0, underReplicated: 0 });
  assert.equal(census('delta', 'a', held, ['a'], NOW).unprotected, 3);
  assert.equal(census('delta', 'a', held, [], NOW).unprotected, 3);
});

test('expired entries still in the table count for nothing', () => {
  const held = [entry('primary', 'a', undefined, NOW), entry('backup', 'c', undefined, NOW - 5), entry('backup', 'b')];
  assert.deepEqual(census('backup', 'a', held, ['a', 'b'], NOW), { primary: 0, backup: 1, unprotected: 0, underReplicated: 0 });
  assert.deepEqual(census('delta', 'a', held, ['a'], NOW), { primary: 0, backup: 1, unprotected: 1, underReplicated: 1 });
});

test('backup mode with two backups: a session with one live backup is protected but under-replicated', () => {
  const held = [
    entry('primary', 'a', 'b,c'), // both backups live
    entry('primary', 'a', 'b,d'), // d was lost: one copy short
    entry('primary', 'a', 'd,e'), // both lost: one copy left
    entry('primary', 'a', 'b'), // too few members when it was written
  ];
  assert.deepEqual(census('backup', 'a', held, ['a', 'b', 'c'], NOW, 2), { primary: 4, backup: 0, unprotected: 1, underReplicated: 3 });
});
