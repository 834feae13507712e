/**
 * Backup mode: a primary whose write failed after it may have reached the backup (backup seed 58171,
 * promise 4). Its backup may keep the failed write under the version the primary burnt, and would be
 * adopted with it if the primary were lost; so the primary serves the session again only once the
 * backup holds the session as the primary does, sent whole at a version of its own. The takeover,
 * re-protection, session table and lock are real; what the other member answers is the test's, as
 * the network would bring it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MemberInfo } from '../../src/cluster/types.js';
import { messages, type ApplyReply, type LocateReply } from '../../src/codec/messages.js';
import { ClusterRequestError, SessionUnavailableError } from '../../src/errors.js';
import { FullMembers } from '../../src/replication/capacity.js';
import { fromCopy } from '../../src/replication/copies.js';
import { Reprotection } from '../../src/replication/backup/reprotection.js';
import { takeOver } from '../../src/replication/backup/takeover.js';
import { SessionTable, type SessionEntry } from '../../src/replication/session-table.js';
import { phaseContext, stillClock } from '../helpers/backup-context.js';

const NOW = 1_800_000_000_000;
const clock = stillClock(NOW);

/** This member is `d`, the primary; `a`, its backup, is live. */
const a: MemberInfo = { id: 'a-id', route: 'a', host: '127.0.0.1', port: 1, startTime: 0 };

/** `pausedDuring`: how many of the first surveys a pause of this member spans (each marks every session). */
function world(copyAnswer: () => Promise<ApplyReply>, { resync = true, pausedDuring = 0 } = {}) {
  const table = new SessionTable(clock);
  // After the failed write: its version (3) burnt, to be sent whole, and checked before it is served.
  const e: SessionEntry = { ...fromCopy({ base: 's', owner: 'd', epoch: 2, version: 3, expire: NOW + 3_600_000, maxAge: 3_600_000, entries: [], createdAt: 0, principal: '' }, 'primary'), backup: 'a', resync, unverified: true };
  let marks = 0;
  let surveys = 0;
  table.set(e);
  /** The backup still holds the failed write at version 3. */
  const held: LocateReply = { found: true, primary: false, owner: 'd', epoch: 2, version: 3, removed: false, backup: '' };
  const sent: number[] = [];
  const ctx = phaseContext(table, clock, {
    options: { ackTimeout: 500, backups: 1, reprotectRate: 1000 },
    channel: { members: () => [a] },
    isolation: { hasQuorum: () => true, settled: () => true, unreachable: () => 0, ownerReleased: () => false },
    fullMembers: new FullMembers(clock),
    removals: { start: () => Promise.resolve(new Map()) },
    liveRoutes: () => ['d', 'a'],
    memberByRoute: (route: string) => (route === 'a' ? a : undefined),
    unavailable: (base: string, why: string) => new SessionUnavailableError(`session ${base}: ${why}`),
    survey: () => {
      if (surveys++ < pausedDuring) {
        marks++;
        e.unverified = true;
      }
      return Promise.resolve(new Map([['s', { replies: [{ m: a, r: held }], failed: 0, gone: 0, promised: new Map() }]]));
    },
    unverifiedMarks: () => marks,
    verified: (x: SessionEntry, since: number) => {
      if (since === marks) x.unverified = false;
    },
    newestRemoval: () => undefined,
    ownerMayServe: () => false,
    sendCopy: (_m: MemberInfo, entry: SessionEntry) => {
      sent.push(entry.version);
      return copyAnswer();
    },
    requestApply: () => Promise.resolve(messages.applyReply.decode(messages.applyReply.encode({ status: 'OK', epoch: 0, owner: '' }))),
  });
  const protection = new Reprotection(ctx, () => undefined);
  const run = () => ctx.locks.run('s', () => takeOver(ctx, protection, { grantedTo: () => undefined }, 's'));
  return { e, sent, run, protection, surveys: () => surveys };
}

test('a primary whose failed write may sit on its live backup sends the session whole before it serves it again', async () => {
  const w = world(() => Promise.resolve({ status: 'OK', epoch: 0, owner: '' }));
  assert.equal(await w.run(), true);
  // The backup's version 3 (the failed write) is replaced by the primary's content at version 4.
  assert.deepEqual(w.sent, [4]);
  assert.equal(w.e.version, 4);
  assert.equal(w.e.resync, false);
  assert.equal(w.e.unverified, false);
  w.protection.stop();
});

test('while the backup cannot be sent the session, the primary answers 503 rather than serve it', async () => {
  const w = world(() => Promise.reject(new ClusterRequestError('ERR_NOT_CONNECTED', 'a: not connected')));
  await assert.rejects(w.run(), SessionUnavailableError);
  assert.ok(w.sent.length > 0, 'the session was offered to the backup');
  assert.equal(w.e.unverified, true, 'still checked before it is served');
  w.protection.stop();
});

test("a primary's check spanned by a pause verifies nothing: the answers may predate a takeover by the others, so it asks again", async () => {
  // Its backup holds it as held here (no failed write): one survey would do, but a pause came during it.
  const w = world(() => Promise.resolve({ status: 'OK', epoch: 0, owner: '' }), { resync: false, pausedDuring: 1 });
  assert.equal(await w.run(), true);
  assert.equal(w.surveys(), 2, 'asked again after the pause');
  assert.deepEqual(w.sent, [], 'nothing sent: the backup holds it');
  assert.equal(w.e.unverified, false, 'verified by the survey after the pause');
  w.protection.stop();
});
