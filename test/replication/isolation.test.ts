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

function isolation(clock = manualClock()) {
  return { clock, iso: new Isolation({ self: 'a', clock, dropTime: 1500, forgetAfter: 60_000, discoveryMs: 800 }) };
}

test('majority of seats: members removed for silence keep their seat, refused or departed ones free it', () => {
  const cases: { name: string; removed: [string, 'left' | 'failed', boolean][]; quorum: boolean; silent: string[] }[] = [
    { name: 'all five alive', removed: [], quorum: true, silent: [] },
    { name: 'one silent of five', removed: [['b', 'failed', false]], quorum: true, silent: ['b'] },
    { name: 'two silent of five', removed: [['b', 'failed', false], ['c', 'failed', false]], quorum: true, silent: ['b', 'c'] },
    { name: 'three silent of five: the cut-off side', removed: [['b', 'failed', false], ['c', 'failed', false], ['d', 'failed', false]], quorum: false, silent: ['b', 'c', 'd'] },
    { name: 'four gone, refused (killed): alone but serving', removed: [['b', 'failed', true], ['c', 'failed', true], ['d', 'failed', true], ['e', 'failed', true]], quorum: true, silent: [] },
    { name: 'three left gracefully', removed: [['b', 'left', false], ['c', 'left', false], ['d', 'left', false]], quorum: true, silent: [] },
    { name: 'two refused, two silent: 1 of 3', removed: [['b', 'failed', true], ['c', 'failed', true], ['d', 'failed', false], ['e', 'failed', false]], quorum: false, silent: ['d', 'e'] },
  ];
  for (const c of cases) {
    const { iso } = isolation();
    for (const r of ['b', 'c', 'd', 'e']) iso.memberAdded(r);
    for (const [route, reason, refused] of c.removed) iso.memberRemoved(route, reason, refused);
    assert.equal(iso.hasQuorum(), c.quorum, c.name);
    assert.deepEqual(iso.silentRoutes().sort(), c.silent, c.name);
  }
});

test('a silent seat is forgotten after forgetAfter; a silent owner is released after one more drop time', () => {
  const { clock, iso } = isolation();
  iso.memberAdded('b');
  iso.memberAdded('c');
  iso.memberRemoved('b', 'failed', false);
  iso.memberRemoved('c', 'failed', false);
  assert.equal(iso.hasQuorum(), false, '1 of 3');
  assert.equal(iso.ownerReleased('b'), false, 'just went silent: may still write on the other side');
  clock.advance(1500);
  assert.equal(iso.ownerReleased('b'), true);
  assert.equal(iso.ownerReleased('zz'), true, 'unknown routes are not waited for');
  iso.memberAdded('b');
  assert.equal(iso.ownerReleased('b'), false, 'alive owners are asked, never bypassed');
  assert.equal(iso.hasQuorum(), true, '2 of 3');
  iso.memberRemoved('b', 'failed', false);
  clock.advance(60_000);
  assert.equal(iso.hasQuorum(), true, 'both silent seats forgotten: alone');
  assert.deepEqual(iso.silentRoutes(), []);
});

test('"no session" needs discovery to be over and no pause being digested', () => {
  const { clock, iso } = isolation();
  assert.equal(iso.settled(), false, 'just started: the holder may not be discovered yet');
  clock.advance(800);
  assert.equal(iso.settled(), true);
  iso.paused(4000);
  assert.equal(iso.settled(), false, 'after a pause the others may have moved on');
  clock.advance(1500);
  assert.equal(iso.settled(), true);
  iso.paused(100);
  assert.equal(iso.settled(), true, 'a short stall is not a pause');
});

test('an owner not met yet may be serving until discovery is over; one seen die or leave never is', () => {
  const { clock, iso } = isolation();
  iso.memberAdded('b');
  iso.memberRemoved('b', 'failed', true);
  assert.equal(iso.mayServe('b'), false, 'killed (refused): its copies may be taken at once');
  assert.equal(iso.mayServe('c'), true, 'never met, and discovery is not over');
  iso.memberAdded('d');
  iso.memberRemoved('d', 'failed', false);
  assert.equal(iso.mayServe('d'), true, 'silent a moment ago');
  clock.advance(1500);
  assert.equal(iso.mayServe('c'), false, 'discovery over: a route nobody announced is not serving');
  assert.equal(iso.mayServe('d'), false, 'silent past its grace');
});
