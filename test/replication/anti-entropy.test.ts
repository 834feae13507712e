/**
 * Backup mode's anti-entropy while a member catches up after a lease lapse (a partition healed): it lets
 * go at once of the copies superseded elsewhere meanwhile (a newer owner that holds the session, or
 * an owner that re-protected it on other live members), and nothing else. It keeps any copy that may
 * be the only current one, and verifies, adopts and re-protects nothing until the drop time is out:
 * then the full check takes what it kept (never a copy whose owner let it go to a newer owner), and
 * claims a grant to it that never arrived. Pure: the other members' answers are given as a survey
 * would bring them (the network is what is replaced; `AntiEntropy` and the session table are real).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MemberInfo } from '../../src/cluster/types.js';
import type { LocateReply } from '../../src/codec/messages.js';
import { AntiEntropy } from '../../src/replication/backup/anti-entropy.js';
import { dropIfOutlived, fromCopy } from '../../src/replication/copies.js';
import type { Survey } from '../../src/replication/member-core.js';
import { phaseContext, stillClock } from '../helpers/backup-context.js';
import { SessionTable, type SessionEntry } from '../../src/replication/session-table.js';

const NOW = 1_800_000_000_000;
const clock = stillClock(NOW);

/** This member is `d`; `a`, `b`, `c`, `e` are live, `x` is gone for good. */
const members: MemberInfo[] = ['a', 'b', 'c', 'e'].map((route) => ({ id: `${route}-id`, route, host: '127.0.0.1', port: 1, startTime: 0 }));

function held(base: string, owner: string, epoch: number, version: number, role: 'primary' | 'backup'): void {
  const e = fromCopy({ base, owner, epoch, version, expire: NOW + 3_600_000, maxAge: 3_600_000, entries: [], createdAt: 0, principal: '' }, role);
  if (role === 'primary') {
    e.backup = 'a,b';
    e.unverified = true; // as the lapse left it
  }
  table.set(e);
}

const none: LocateReply = { found: false, primary: false, owner: '', epoch: 0, version: 0, removed: false, backup: '' };
const primary = (owner: string, epoch: number, version: number, backup: string): LocateReply => ({ found: true, primary: true, owner, epoch, version, removed: false, backup });
const copy = (owner: string, epoch: number, version: number): LocateReply => ({ found: true, primary: false, owner, epoch, version, removed: false, backup: '' });

/** What each live member answers, per session (absent: holds nothing of it). */
const answers: Record<string, Record<string, LocateReply>> = {
  // Re-protected on b and c while d was cut off: superseded here.
  reprotected: { a: primary('a', 1, 7, 'b,c'), b: copy('a', 1, 7), c: copy('a', 1, 7) },
  // Still kept on d by its owner: stays.
  kept: { a: primary('a', 1, 5, 'd,b'), b: copy('a', 1, 5) },
  // d's own primary, taken over by c (granted by b) while d was cut off, and installed there.
  takenOver: { b: copy('c', 2, 3), c: primary('c', 2, 3, 'b,e') },
  // Granted by b to c, but c has not installed it (yet, or ever): d's copy may be the only current one.
  granted: { b: copy('c', 2, 4) },
  // Its owner x is gone for good and d holds the only copy: adopted by the full check, never earlier.
  orphan: {},
  // d's own primary that nobody took over: verified by the full check, never earlier.
  mine: { a: copy('d', 1, 2), b: copy('d', 1, 2) },
  // Destroyed while d was cut off: goes too.
  destroyed: { a: { ...none, owner: 'a', epoch: 1, removed: true } },
  // Granted by its owner a to d, whose take gave up before the answer came (cut off meanwhile): a keeps
  // the data as d's copy. Nobody serves it: the full check asks for the grant again (claims it).
  grantedToMe: { a: copy('d', 2, 6) },
  // Its live owner e let it go to y (epoch 2), a member d cannot reach (a cut between the two only):
  // d's copy is y's past, never adopted (backup seed 1194), however long y stays out of reach.
  movedOn: { e: { ...none, owner: 'y', epoch: 2 } },
  // The same, and y's copy has since expired on b: the session has ended, and d's copy (a clock behind
  // keeps it alive here) is a stray of its past. Dropped by the full check, not kept waiting for y.
  movedOnAndEnded: { e: { ...none, owner: 'y', epoch: 2 }, b: { ...none, owner: 'y', epoch: 2, version: 9 } },
};

const table = new SessionTable(clock);
held('reprotected', 'a', 1, 7, 'backup');
held('kept', 'a', 1, 5, 'backup');
held('takenOver', 'd', 1, 3, 'primary');
held('granted', 'e', 1, 4, 'backup');
held('orphan', 'x', 1, 9, 'backup');
held('mine', 'd', 1, 2, 'primary');
held('destroyed', 'a', 1, 1, 'backup');
held('grantedToMe', 'a', 1, 6, 'backup');
held('movedOn', 'e', 1, 5, 'backup');
held('movedOnAndEnded', 'e', 1, 5, 'backup');

let recovering = true;
const protect: string[] = [];
const claimed: string[] = [];
const ctx = phaseContext(table, clock, {
  options: { dropTime: 1500 },
  channel: { members: () => members },
  isolation: { hasQuorum: () => true, recovering: () => recovering, ownerReleased: (r: string) => r === 'x' },
  stopping: () => false,
  memberByRoute: (route: string) => members.find((m) => m.route === route),
  dropOutlived: (base: string, replies: Survey['replies'], e: SessionEntry) => dropIfOutlived(table, base, replies.map((x) => x.r), e) !== undefined,
  survey: (bases: string[]) =>
    Promise.resolve(
      new Map(
        bases.map((b): [string, Survey] => [
          b,
          { replies: members.map((m) => ({ m, r: answers[b][m.route] ?? none })), failed: 0, gone: 0, promised: new Map() },
        ]),
      ),
    ),
});
const ae = new AntiEntropy(ctx, { granting: () => false, protect: (b) => protect.push(b), claim: (b) => claimed.push(b) });

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

const state = (base: string) => {
  const e = table.get(base);
  return e === undefined ? 'gone' : `${e.role}@${e.epoch}/${e.owner}${e.unverified === true ? ' unverified' : ''}`;
};

test('catching up after a lapse: superseded copies go at once, every other copy stays untouched; the full check follows the drop time', async () => {
  for (const b of Object.keys(answers)) ae.add(b); // as the lapse queued them
  ae.letGo();
  await settle();
  assert.deepEqual(
    Object.fromEntries(Object.keys(answers).map((b) => [b, state(b)])),
    {
      reprotected: 'gone',
      kept: 'backup@1/a',
      takenOver: 'gone',
      granted: 'backup@1/e',
      orphan: 'backup@1/x',
      mine: 'primary@1/d unverified',
      destroyed: 'gone',
      grantedToMe: 'backup@1/a',
      movedOn: 'backup@1/e',
      movedOnAndEnded: 'backup@1/e',
    },
    'only what a newer owner holds, or its owner keeps on other live members, or a destruction covers, goes',
  );
  assert.equal(table.tombstone('takenOver')?.owner, 'c');
  assert.equal(table.tombstone('destroyed')?.kind, 'removed');
  assert.deepEqual(protect, [], 'nothing re-protected while catching up');
  assert.deepEqual(claimed, [], 'nothing claimed while catching up');

  // Again while still catching up: what stays is checked again, and still kept.
  ae.letGo();
  await settle();
  assert.equal(state('orphan'), 'backup@1/x');
  assert.equal(state('mine'), 'primary@1/d unverified');

  // The drop time is out: the full check verifies and adopts what was kept.
  recovering = false;
  ae.maintain();
  await settle();
  assert.equal(state('mine'), 'primary@1/d');
  assert.match(state('orphan'), /^primary@[0-9]+\/d$/, 'adopted past its silent owner');
  assert.equal(state('kept'), 'backup@1/a');
  assert.equal(state('granted'), 'backup@1/e');
  assert.equal(state('movedOn'), 'backup@1/e', 'not adopted past the newer owner its owner let it go to');
  assert.equal(state('movedOnAndEnded'), 'gone', 'a stray of a session that has ended since');
  assert.deepEqual(protect, ['orphan']);
  assert.deepEqual(claimed, ['grantedToMe'], 'a grant to this member that never arrived is asked for again');
  assert.equal(state('grantedToMe'), 'backup@1/a', 'claimed by a takeover, not changed by the audit');
});
