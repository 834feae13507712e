import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FailureDetector } from '../../src/cluster/failure-detector.js';
import { createMetrics } from '../../src/cluster/metrics.js';
import type { MemberInfo, RemovalReason } from '../../src/cluster/types.js';

const self: MemberInfo = { id: 'self-id-0000', route: 'self', host: '127.0.0.1', port: 4000, startTime: 1 };
const member = (route: string, id = `${route}-id-0000`, startTime = 100): MemberInfo => ({ id, route, host: '127.0.0.1', port: 4001, startTime });

/** A failure detector on a fake clock, with a direct check the test answers by hand. */
function setup() {
  let now = 0;
  const probes: { member: MemberInfo; answer: (ok: boolean) => void }[] = [];
  const events: string[] = [];
  const fd = new FailureDetector({
    self,
    dropTimeMs: 3000,
    checkTimeoutMs: 1000,
    now: () => now,
    probe: (m) => new Promise<boolean>((resolve) => probes.push({ member: m, answer: resolve })),
    lastActivity: () => 0,
    metrics: createMetrics(),
    logger: pino({ level: 'silent' }),
  });
  fd.on('discovered', (r) => events.push(`discovered ${r.info.route}`));
  fd.on('released', (r) => events.push(`released ${r.info.route}`));
  fd.on('member-added', (m) => events.push(`added ${m.route}`));
  fd.on('member-suspected', (m) => events.push(`suspected ${m.route}`));
  fd.on('member-removed', (m, why: RemovalReason) => events.push(`removed ${m.route} ${why}`));
  return { fd, probes, events, advance: (ms: number) => ((now += ms), fd.tick()) };
}

const settle = () => new Promise((r) => setImmediate(r));

test('a member is added only once heard and handshaken, in joining order, never self', () => {
  const { fd, events } = setup();
  fd.heard(self, 'x:1');
  fd.heard(member('b'), 'b:1');
  fd.heard(member('a'), 'a:1');
  assert.deepEqual(fd.members(), []);
  fd.reachable(member('a'));
  fd.reachable(member('b'));
  fd.reachable(member('zz')); // never heard: ignored
  assert.deepEqual(fd.members().map((m) => m.route), ['b', 'a']);
  assert.deepEqual(events, ['discovered b', 'discovered a', 'added a', 'added b']);
});

test('silence suspects; a passing direct check keeps the member, a failing one removes it', async () => {
  const { fd, probes, events, advance } = setup();
  fd.heard(member('a'), 'a:1');
  fd.reachable(member('a'));
  advance(2900);
  assert.equal(probes.length, 0);
  advance(200); // 3100 ms of silence
  assert.equal(probes.length, 1);
  probes[0].answer(true); // a lost heartbeat, but the member answers over TCP
  await settle();
  assert.deepEqual(fd.members().map((m) => m.route), ['a']);
  advance(3100);
  probes[1].answer(false);
  await settle();
  assert.deepEqual(fd.members(), []);
  assert.deepEqual(events.slice(2), ['suspected a', 'suspected a', 'released a', 'removed a failed']);
});

test('a broken connection suspects at once; heartbeats meanwhile do not cancel the check', async () => {
  const { fd, probes, events } = setup();
  fd.heard(member('a'), 'a:1');
  fd.reachable(member('a'));
  fd.connectionLost(member('a').id);
  fd.heard(member('a'), 'a:1');
  assert.equal(probes.length, 1);
  probes[0].answer(false);
  await settle();
  assert.deepEqual(events.slice(-2), ['released a', 'removed a failed']);
  // Same id heard again later (SIGCONT): it may come back.
  fd.heard(member('a'), 'a:1');
  fd.reachable(member('a'));
  assert.deepEqual(fd.members().map((m) => m.route), ['a']);
});

test('a restarted route replaces its old incarnation; an older one is ignored', () => {
  const { fd, events } = setup();
  fd.heard(member('a', 'old-id-0000', 100), 'a:1');
  fd.reachable(member('a', 'old-id-0000', 100));
  fd.heard(member('a', 'new-id-0000', 200), 'a:2');
  assert.deepEqual(events.slice(-3), ['released a', 'removed a failed', 'discovered a']);
  fd.reachable(member('a', 'new-id-0000', 200));
  assert.deepEqual(fd.members().map((m) => m.id), ['new-id-0000']);
  fd.heard(member('a', 'old-id-0000', 100), 'a:1'); // a delayed heartbeat of the old process
  assert.deepEqual(fd.members().map((m) => m.id), ['new-id-0000']);
  fd.heard(member('self', 'imposter-0000', 300), 'c:1'); // our own route: never
  assert.equal(fd.get('imposter-0000'), undefined);
});

test('a leave removes at once, and late heartbeats do not bring the member back', () => {
  const { fd, events, advance } = setup();
  fd.heard(member('a'), 'a:1');
  fd.reachable(member('a'));
  fd.left(member('a').id);
  assert.deepEqual(events.slice(-1), ['removed a left']);
  fd.heard(member('a'), 'a:1');
  assert.equal(fd.get(member('a').id), undefined);
  advance(7000); // tombstone expired
  fd.heard(member('a'), 'a:1');
  assert.equal(fd.get(member('a').id)?.state, 'joining');
});

test('a joining member that goes silent is forgotten without events', () => {
  const { fd, events, advance } = setup();
  fd.heard(member('a'), 'a:1');
  advance(3100);
  assert.deepEqual(events, ['discovered a', 'released a']);
});

test('a failed direct check is followed by an indirect one: a member another member reaches stays; one nobody reaches goes', async () => {
  let now = 0;
  const probes: ((ok: boolean) => void)[] = [];
  const asked: ((reached: boolean) => void)[] = [];
  const events: string[] = [];
  const fd = new FailureDetector({
    self,
    dropTimeMs: 3000,
    checkTimeoutMs: 1000,
    now: () => now,
    probe: () => new Promise<boolean>((resolve) => probes.push(resolve)),
    indirect: () => new Promise<{ reached: boolean }>((resolve) => asked.push((reached) => resolve({ reached }))),
    lastActivity: () => 0,
    metrics: createMetrics(),
    logger: pino({ level: 'silent' }),
  });
  fd.on('member-removed', (m) => events.push(`removed ${m.route}`));
  fd.heard(member('a'), 'a:1');
  fd.reachable(member('a'));
  fd.connectionLost(member('a').id); // a reset on our path
  probes[0](false);
  await settle();
  assert.equal(asked.length, 1, 'the others are asked before any verdict');
  assert.equal(fd.get(member('a').id)?.state, 'suspect');
  asked[0](true);
  await settle();
  assert.equal(fd.get(member('a').id)?.state, 'alive', 'another member reached it: it stays');
  assert.deepEqual(events, []);
  now += 3100;
  fd.tick(); // silent to us again
  probes[1](false);
  await settle();
  asked[1](false);
  await settle();
  assert.deepEqual(events, ['removed a'], 'nobody reaches it: removed');
});
