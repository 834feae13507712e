import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { MemberInfo } from '../../src/cluster/types.js';
import type { LocateReply } from '../../src/codec/messages.js';
import type { Survey } from '../../src/replication/member-core.js';
import { KeyLock } from '../../src/replication/key-lock.js';
import { NO_ENTRIES } from '../../src/replication/packed-entries.js';
import { SessionTable } from '../../src/replication/session-table.js';
import { Settlement, type SettlementContext } from '../../src/replication/settlement.js';
import { owners } from '../../src/ring/index.js';

// The members (n1 lost, n2 here, n3 alive) answer surveys from a table per member: what the survey
// and the takeover do over the network is the delta manager's, run by the simulator (regression seeds
// 2925 and 3982); this checks which sessions are settled, by whom, when, and at what cost.
const member = (route: string): MemberInfo => ({ id: `${route}-id`, route, host: '127.0.0.1', port: 1, startTime: 0 });
const n3 = member('n3');

function copy(table: SessionTable, base: string, version: number, owner = 'n1'): void {
  table.set({ base, owner, epoch: 2, version, expire: Date.now() + 60_000, maxAge: 60_000, packed: NO_ENTRIES, role: 'backup', backup: undefined });
}

function world() {
  const here = new SessionTable();
  const there = new Map<string, LocateReply>();
  const surveys: string[][] = [];
  const taken: string[] = [];
  const promised = new Map<string, number>();
  let released = false;
  const ctx: SettlementContext = {
    route: 'n2',
    table: here,
    locks: new KeyLock(),
    log: pino({ level: 'silent' }),
    lockWait: 1000,
    liveRoutes: () => ['n2', 'n3'],
    memberByRoute: (route) => (route === 'n3' ? n3 : undefined),
    ownerMayServe: () => !released,
    survey: (bases) => {
      surveys.push(bases);
      const found = (b: string): LocateReply => there.get(b) ?? { found: false, primary: false, owner: '', epoch: 0, version: 0, removed: false, backup: '' };
      return Promise.resolve(new Map<string, Survey>(bases.map((b) => [b, { replies: [{ m: n3, r: found(b) }], failed: 0, gone: 0, promised }])));
    },
    takeOver: (base) => {
      taken.push(base);
      const e = here.get(base)!;
      here.set({ ...e, role: 'primary', owner: 'n2', epoch: e.epoch + 2 });
      return Promise.resolve(true);
    },
    mayRun: () => true,
  };
  const held = (base: string, version: number, primary = false): void => {
    there.set(base, { found: true, primary, owner: primary ? 'n3' : 'n1', epoch: primary ? 4 : 2, version, removed: false, backup: '' });
  };
  return { ctx, here, held, surveys, taken, promised, release: () => (released = true) };
}

/** Bases whose first live member in ring order (of n2 and n3) is n2, or n3. */
function basesFirstAt(route: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (owners(`s${i}`, ['n2', 'n3'])[0] === route) out.push(`s${i}`);
  return out;
}

async function idle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

test("a lost owner's sessions: only those whose copies differ are taken over, by the first live member in their ring order, a survey per 256", async () => {
  const w = world();
  const mine = basesFirstAt('n2', 600);
  const theirs = basesFirstAt('n3', 5);
  for (const b of [...mine, ...theirs]) {
    copy(w.here, b, 3);
    w.held(b, 3);
  }
  w.held(mine[10], 4); // the owner's last write reached n3, not us
  w.held(mine[500], 2); // or us, not n3
  w.held(theirs[0], 4); // n3's to settle
  const settlement = new Settlement(w.ctx);
  settlement.memberLost();
  settlement.maintain();
  await idle();
  assert.equal(w.surveys.length, 0, "nothing while the owner's promises run");
  w.release();
  settlement.maintain();
  await idle();
  assert.deepEqual(w.surveys.map((s) => s.length), [256, 256, 88], 'a survey per 256 of the sessions this member is first for, none of the others');
  assert.deepEqual(w.taken.sort(), [mine[10], mine[500]].sort(), 'a takeover each for the two whose copies differ');
  assert.equal(settlement.size, 0, 'the rest wait for their request');
});

test("a running promise to the owner, or a live primary elsewhere, holds settling off", async () => {
  const w = world();
  const [a, b] = basesFirstAt('n2', 2);
  copy(w.here, a, 3);
  copy(w.here, b, 3);
  w.held(a, 4);
  w.held(b, 4, true); // n3 took it over meanwhile and serves it
  w.promised.set('n1', 500);
  w.release();
  const settlement = new Settlement(w.ctx);
  settlement.memberLost();
  settlement.maintain();
  await idle();
  assert.deepEqual(w.taken, [], 'n3 promised n1: it may be serving across a partition');
  assert.equal(settlement.size, 1, 'the one n3 serves is dropped, the other is checked again');
  w.promised.clear();
  settlement.maintain();
  await idle();
  assert.deepEqual(w.taken, [a]);
  assert.equal(settlement.size, 0);
});

test('a restarted member settles the copies its previous incarnation owned, whoever is first in their ring order', async () => {
  const w = world();
  const [b] = basesFirstAt('n3', 1);
  copy(w.here, b, 3, 'n2');
  w.held(b, 4);
  const settlement = new Settlement(w.ctx);
  settlement.restarted(); // the previous incarnation's promises are this process's to keep
  settlement.maintain();
  await idle();
  assert.deepEqual(w.taken, [b]);
});
