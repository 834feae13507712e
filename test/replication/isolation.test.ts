import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Isolation } from '../../src/replication/isolation.js';
import type { Clock } from '../../src/replication/clock.js';

/** A clock that moves only when the test says so. */
function manualClock(start = 1_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    monotonic: () => now,
    advance(ms) {
      now += ms;
    },
    setTimeout: () => undefined,
    clearTimeout: () => undefined,
    setInterval: () => undefined,
    clearInterval: () => undefined,
  };
}

function isolation(clock = manualClock(), expectedMembers?: number) {
  const options = { self: 'a', clock, dropTime: 1500, leaseMs: 2000, forgetAfter: 60_000, discoveryMs: 800 };
  return { clock, iso: new Isolation(expectedMembers === undefined ? options : { ...options, expectedMembers }) };
}

test('majority of seats: members removed for failure keep their seat (a reset is no proof of death), departed ones free it', () => {
  const cases: { name: string; removed: [string, 'left' | 'failed'][]; quorum: boolean; silent: string[] }[] = [
    { name: 'all five alive', removed: [], quorum: true, silent: [] },
    { name: 'one failed of five', removed: [['b', 'failed']], quorum: true, silent: ['b'] },
    { name: 'two failed of five', removed: [['b', 'failed'], ['c', 'failed']], quorum: true, silent: ['b', 'c'] },
    { name: 'three failed of five: the cut-off side', removed: [['b', 'failed'], ['c', 'failed'], ['d', 'failed']], quorum: false, silent: ['b', 'c', 'd'] },
    { name: 'four failed: alone, and not serving (they may be the other side of a reset partition)', removed: [['b', 'failed'], ['c', 'failed'], ['d', 'failed'], ['e', 'failed']], quorum: false, silent: ['b', 'c', 'd', 'e'] },
    { name: 'three left gracefully', removed: [['b', 'left'], ['c', 'left'], ['d', 'left']], quorum: true, silent: [] },
  ];
  for (const c of cases) {
    const { iso } = isolation();
    for (const r of ['b', 'c', 'd', 'e']) iso.memberAdded(r);
    for (const [route, reason] of c.removed) iso.memberRemoved(route, reason);
    assert.equal(iso.seesMajority(), c.quorum, c.name);
    assert.deepEqual(iso.silentRoutes().sort(), c.silent, c.name);
    assert.equal(iso.unreachable(), c.silent.length, c.name);
  }
});

/** Every route in `routes` answers a request that left now. */
function answer(clock: Clock, iso: Isolation, ...routes: string[]): void {
  for (const r of routes) iso.acked(r, clock.monotonic());
}

test('expectedMembers: the majority is of the cluster\'s size, whatever this member has seen, and nothing is forgotten', () => {
  const { clock, iso } = isolation(manualClock(), 5);
  assert.equal(iso.hasQuorum(), false, 'started alone (cut off): 1 of 5, serves nothing');
  assert.equal(iso.unreachable(), 4, 'four members it cannot ask');
  iso.memberAdded('b');
  answer(clock, iso, 'b');
  assert.equal(iso.hasQuorum(), false, '2 of 5');
  iso.memberAdded('c');
  answer(clock, iso, 'c');
  assert.equal(iso.hasQuorum(), true, '3 of 5');
  assert.equal(iso.unreachable(), 2);
  iso.memberRemoved('c', 'left');
  assert.equal(iso.seesMajority(), false, 'a leave does not shrink a given size');
  iso.memberAdded('c');
  iso.memberRemoved('b', 'failed');
  iso.memberRemoved('c', 'failed');
  clock.advance(10 * 60_000);
  assert.equal(iso.hasQuorum(), false, 'a partition of any length: still 1 of 5');
  assert.equal(iso.seesMajority(), false);
  for (const r of ['b', 'c', 'd', 'e', 'f']) iso.memberAdded(r);
  assert.equal(iso.excess(), 1, 'six live members for a size of five: said, since the rule then protects nothing');
});

test('the lease: held while a majority answered within leaseMs of sending; a lapse is counted, and catching up follows it', () => {
  const { clock, iso } = isolation();
  iso.memberAdded('b');
  iso.memberAdded('c');
  assert.equal(iso.hasQuorum(), false, 'three seats: one answer needed');
  answer(clock, iso, 'b');
  assert.equal(iso.hasQuorum(), true);
  clock.advance(1999);
  assert.equal(iso.hasQuorum(), true, 'b answered a request that left 1999 ms ago');
  assert.equal(iso.lapses, 0);
  clock.advance(1);
  assert.equal(iso.hasQuorum(), false, 'the lease ran out');
  assert.equal(iso.lapses, 1, 'others may take its sessions over once their promises run out');
  answer(clock, iso, 'c');
  assert.equal(iso.hasQuorum(), true);
  assert.equal(iso.recovering(), true, 'back: it catches up before serving (others may have moved on)');
  clock.advance(1500);
  assert.equal(iso.recovering(), false);
  // A lapse nobody looked at is still seen, by the answer that ends it.
  clock.advance(5000);
  const sent = clock.monotonic();
  clock.advance(10);
  iso.acked('b', sent);
  assert.equal(iso.lapses, 2);
  assert.equal(iso.recovering(), true);
});

test('a failed member is released when this member\'s promise to it runs out (not at a reset), and never in the first lease after a start', () => {
  const { clock, iso } = isolation();
  iso.memberAdded('b');
  iso.memberAdded('c');
  iso.heard('b'); // b's lease ping: we promise it leaseMs + margin (2000 + 550)
  iso.memberRemoved('b', 'failed');
  assert.equal(iso.ownerReleased('b'), false, 'just removed: may still serve on our answer');
  clock.advance(2549);
  assert.equal(iso.ownerReleased('b'), false);
  clock.advance(1);
  assert.equal(iso.ownerReleased('b'), true);
  iso.memberAdded('b');
  assert.equal(iso.ownerReleased('b'), false, 'alive owners (a new incarnation too) are asked, never bypassed');
  const fresh = isolation();
  fresh.iso.memberAdded('x');
  fresh.iso.memberRemoved('x', 'failed');
  assert.equal(fresh.iso.ownerReleased('x'), false, 'a restarted member may have promised x in its previous life');
  fresh.clock.advance(2550);
  assert.equal(fresh.iso.ownerReleased('x'), true);
});

test('without expectedMembers, a member that met nobody since it started serves nothing until forgetAfter (it may have started cut off)', () => {
  const { clock, iso } = isolation();
  assert.equal(iso.hasQuorum(), false, 'one seat, but the cluster it has not met keeps its seat on the other side');
  assert.equal(iso.size(), 1);
  clock.advance(59_999);
  assert.equal(iso.hasQuorum(), false);
  clock.advance(1);
  assert.equal(iso.hasQuorum(), true, 'alone for forgetAfter: the others have forgotten it too (README: the assumption without expectedMembers)');
  assert.equal(iso.lapses, 0, 'not a lapse: it never held the lease');
  const met = isolation();
  met.clock.advance(5000);
  met.iso.memberAdded('b');
  assert.equal(met.iso.hasQuorum(), false, 'two seats: b must answer');
  answer(met.clock, met.iso, 'b');
  assert.equal(met.iso.hasQuorum(), true, 'met a peer, which answered: a majority of the seats it knows');
  assert.equal(met.iso.recovering(), false, 'a first lease is not a lapse to catch up from');
  met.iso.memberRemoved('b', 'left');
  assert.equal(met.iso.hasQuorum(), true, 'its peer left gracefully: a cluster of one it has met');
  const expected = isolation(manualClock(), 1);
  assert.equal(expected.iso.hasQuorum(), true, 'expectedMembers 1 (or an empty static list): serves alone at once');
});

test('cut off behind firewalls that reset: removing the others ends the lease at once, and the lapse is counted', () => {
  const { clock, iso } = isolation();
  for (const r of ['b', 'c']) iso.memberAdded(r);
  answer(clock, iso, 'b', 'c');
  assert.equal(iso.hasQuorum(), true);
  clock.advance(10);
  iso.memberRemoved('b', 'failed'); // a reset, refused at once: the lease still rests on c
  assert.equal(iso.hasQuorum(), true);
  iso.memberRemoved('c', 'failed');
  assert.equal(iso.hasQuorum(), false, 'their answers of 10 ms ago covered 1990 ms more, in which writes made here reach nobody the majority asks');
  assert.equal(iso.lapses, 1, 'lost: the others may move on, so it catches up when it is back');
  clock.advance(100);
  iso.memberAdded('b');
  answer(clock, iso, 'b');
  assert.equal(iso.hasQuorum(), true);
  assert.equal(iso.recovering(), true);
});

test('a seat is forgotten after forgetAfter without expectedMembers', () => {
  const { clock, iso } = isolation();
  iso.memberAdded('b');
  iso.memberAdded('c');
  iso.memberRemoved('b', 'failed');
  iso.memberRemoved('c', 'failed');
  assert.equal(iso.seesMajority(), false, '1 of 3');
  clock.advance(60_000);
  assert.equal(iso.seesMajority(), true, 'both failed seats forgotten: alone');
  assert.equal(iso.hasQuorum(), true);
  assert.deepEqual(iso.silentRoutes(), []);
});

test('"no session" needs discovery to be over, no pause being digested, and (without expectedMembers) a peer met a discovery window ago or forgetAfter waited', () => {
  const { clock, iso } = isolation();
  assert.equal(iso.settled(), false, 'just started: the holder may not be discovered yet');
  clock.advance(800);
  assert.equal(iso.settled(), false, 'nobody met yet: this member may have started cut off');
  iso.memberAdded('b');
  assert.equal(iso.settled(), false, 'met one peer: the others (healed at once) may still be on their way');
  clock.advance(799);
  assert.equal(iso.settled(), false);
  clock.advance(1);
  assert.equal(iso.settled(), true, 'a discovery window after the first peer met');
  iso.paused(4000);
  assert.equal(iso.settled(), false, 'after a pause the others may have moved on');
  clock.advance(1500);
  assert.equal(iso.settled(), true);
  iso.paused(100);
  assert.equal(iso.settled(), true, 'a short stall is not a pause');
  const alone = isolation();
  alone.clock.advance(59_999);
  assert.equal(alone.iso.settled(), false);
  alone.clock.advance(1);
  assert.equal(alone.iso.settled(), true, 'a one-member cluster answers "no session" after forgetAfter');
});

test('an owner not met yet may be serving until discovery and a promise\'s length are over; one seen leave never is', () => {
  const { clock, iso } = isolation();
  iso.memberAdded('b');
  iso.memberRemoved('b', 'left');
  assert.equal(iso.mayServe('b'), false, 'left: its copies may be taken at once');
  assert.equal(iso.mayServe('c'), true, 'never met, and discovery is not over');
  iso.memberAdded('d');
  iso.heard('d');
  iso.memberRemoved('d', 'failed');
  assert.equal(iso.mayServe('d'), true, 'failed a moment ago (killed or cut off: it cannot tell)');
  clock.advance(2550);
  assert.equal(iso.mayServe('c'), false, 'a route nobody announced is not serving');
  assert.equal(iso.mayServe('d'), false, 'its promise ran out');
});

test('intervals are monotonic: a step of the wall clock neither releases an owner nor ends a pause', () => {
  let wall = 1_000_000;
  let mono = 0;
  const clock: Clock = { now: () => wall, monotonic: () => mono, setTimeout: () => undefined, clearTimeout: () => undefined, setInterval: () => undefined, clearInterval: () => undefined };
  const iso = new Isolation({ self: 'a', clock, dropTime: 1500, leaseMs: 2000, forgetAfter: 60_000, discoveryMs: 800 });
  mono += 3000;
  iso.memberAdded('b');
  iso.memberAdded('c');
  iso.heard('b');
  iso.memberRemoved('b', 'failed');
  iso.paused(4000);
  wall += 120_000; // NTP steps the wall clock two minutes ahead
  assert.equal(iso.ownerReleased('b'), false);
  assert.equal(iso.recovering(), true);
  assert.deepEqual(iso.silentRoutes(), ['b'], 'not forgotten either');
  mono += 2550;
  assert.equal(iso.ownerReleased('b'), true);
  assert.equal(iso.recovering(), false);
});
