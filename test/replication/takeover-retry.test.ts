/**
 * Backup mode: a take whose grant came back slowly (backup seed 23863, promise 3). The take and its
 * grant each crossed a slow link, and the taker timed out while the grant was on its way: the session
 * was answered 503 at a member with no fault left to blame. A timed-out take is asked once more; the
 * owner gives again a grant it gave that taker ("granted before; the answer was lost"). Both sides are
 * real (`takeOver` with its re-protection on the taker `d`, `Grants` on the owner `a`, a session table
 * and lock each); what crosses the network between them is the test's, as a slow link would bring it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MemberInfo } from '../../src/cluster/types.js';
import { messages, type LocateReply } from '../../src/codec/messages.js';
import { ClusterRequestError, SessionUnavailableError } from '../../src/errors.js';
import { FullMembers } from '../../src/replication/capacity.js';
import { fromCopy } from '../../src/replication/copies.js';
import { Grants } from '../../src/replication/backup/grant.js';
import { Reprotection } from '../../src/replication/backup/reprotection.js';
import { takeOver } from '../../src/replication/backup/takeover.js';
import { MSG } from '../../src/replication/message-types.js';
import { SessionTable } from '../../src/replication/session-table.js';
import { phaseContext, stillClock } from '../helpers/backup-context.js';

const NOW = 1_800_000_000_000;
const clock = stillClock(NOW);
const a: MemberInfo = { id: 'a-id', route: 'a', host: '127.0.0.1', port: 1, startTime: 0 };
const d: MemberInfo = { id: 'd-id', route: 'd', host: '127.0.0.1', port: 2, startTime: 0 };
const session = { base: 's', expire: NOW + 3_600_000, maxAge: 3_600_000, entries: [], createdAt: 0, principal: '' };

/** `lost`: how many of the owner's answers to a take are lost on the way back (the taker times out). */
function world(lost: number) {
  // The owner a serves the session at epoch 2; d holds its backup copy.
  const owned = new SessionTable(clock);
  owned.set(fromCopy({ ...session, owner: 'a', epoch: 2, version: 4 }, 'primary'));
  const owner = new Grants(
    phaseContext(owned, clock, {
      route: 'a',
      options: { ackTimeout: 500 },
      channel: { members: () => [d] },
      isolation: { hasQuorum: () => true, recovering: () => false, ownerReleased: () => false },
      memberByRoute: (route: string) => (route === 'd' ? d : undefined),
    }),
    () => undefined,
  );
  const table = new SessionTable(clock);
  table.set(fromCopy({ ...session, owner: 'a', epoch: 2, version: 4 }, 'backup'));
  let takes = 0;
  /** What a answers when asked where the session is: its copy as it stands. */
  const whereAtA = (): LocateReply => {
    const e = owned.get('s')!;
    return { found: true, primary: e.role === 'primary', owner: e.owner, epoch: e.epoch, version: e.version, removed: false, backup: '' };
  };
  const ctx = phaseContext(table, clock, {
    options: { ackTimeout: 500, backups: 1, reprotectRate: 1000 },
    channel: {
      members: () => [a],
      request: async (_id: string, type: string, body: Buffer) => {
        assert.equal(type, MSG.take);
        takes++;
        const reply = await owner.onTake(d, messages.take.decode(body));
        if (takes <= lost) throw new ClusterRequestError('ERR_REQUEST_TIMEOUT', 'no answer from a within 500 ms');
        return reply;
      },
    },
    isolation: { hasQuorum: () => true, settled: () => true, unreachable: () => 0, ownerReleased: () => false },
    fullMembers: new FullMembers(clock),
    removals: { start: () => Promise.resolve(new Map()) },
    schemas: { learn: () => Promise.resolve() },
    liveRoutes: () => ['d', 'a'],
    memberByRoute: (route: string) => (route === 'a' ? a : undefined),
    unavailable: (base: string, why: string) => new SessionUnavailableError(`session ${base}: ${why}`),
    survey: () => Promise.resolve(new Map([['s', { replies: [{ m: a, r: whereAtA() }], failed: 0, gone: 0, promised: new Map() }]])),
    newestRemoval: () => undefined,
    ownerMayServe: () => false,
    sendCopy: () => Promise.resolve({ status: 'OK', epoch: 0, owner: '' }),
  });
  const protection = new Reprotection(ctx, () => undefined);
  const run = () => ctx.locks.run('s', () => takeOver(ctx, protection, { grantedTo: () => undefined }, 's'));
  return { table, owned, run, protection, takes: () => takes };
}

test('a take timed out while its grant was on its way: asked again, the owner gives the same grant, and the session is served', async () => {
  const w = world(1);
  assert.equal(await w.run(), true);
  assert.equal(w.takes(), 2, 'asked once more');
  const mine = w.table.get('s')!;
  assert.deepEqual([mine.role, mine.owner, mine.epoch, mine.version], ['primary', 'd', 3, 4], 'the grant of epoch 3, installed once');
  assert.deepEqual([w.owned.get('s')?.role, w.owned.get('s')?.owner, w.owned.get('s')?.epoch], ['backup', 'd', 3], 'the owner keeps a copy of the taker, not a second grant');
  w.protection.stop();
});

test('a take asked again is asked once: with the second answer lost too, 503 rather than an unbounded wait', async () => {
  const w = world(2);
  await assert.rejects(w.run(), SessionUnavailableError);
  assert.equal(w.takes(), 2);
  assert.equal(w.table.get('s')?.role, 'backup', 'nothing installed from a grant whose answer never came');
  w.protection.stop();
});
