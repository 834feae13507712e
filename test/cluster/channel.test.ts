/**
 * Channels in this process, talking over real loopback sockets: the request/reply contract,
 * its errors, static and DNS membership, backpressure. Process-level behaviour (kill, stop,
 * hostile peers) is in membership.test.ts and hostile.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ClusterRequestError, FrameError } from '../../src/errors.js';
import type { ClusterChannel, ClusterChannelOptions, MemberInfo } from '../../src/cluster/index.js';
import { channelHarness, channelOptions, freePort, randomMulticast, until, waitForEvent } from '../helpers/cluster-harness.js';

const harness = channelHarness;

/** Resolves when `c` lists members with every route in `routes`. */
async function sees(c: ClusterChannel, routes: string[], timeoutMs = 3000): Promise<void> {
  const has = () => routes.every((r) => c.members().some((m) => m.route === r));
  if (has()) return;
  await waitForEvent(c, 'member-added', () => has(), timeoutMs);
}

function code(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

/** Two started channels that see each other over loopback multicast. */
async function pair(t: Parameters<typeof harness>[0], extra: Partial<ClusterChannelOptions> = {}) {
  const make = harness(t);
  const multicast = randomMulticast();
  const a = make(channelOptions('a', { multicast }, extra));
  const b = make(channelOptions('b', { multicast }, extra));
  await Promise.all([a.start(), b.start()]);
  await Promise.all([sees(a, ['b']), sees(b, ['a'])]);
  const bOnA = a.members().find((m) => m.route === 'b')!;
  return { a, b, bOnA, make, multicast };
}

test('requests get their handler\'s reply; a request right after member-added works', async (t) => {
  const make = harness(t);
  const multicast = randomMulticast();
  const a = make(channelOptions('a', { multicast }));
  const b = make(channelOptions('b', { multicast }));
  b.handle('upper', (from, body) => Buffer.from(`${from.route}:${body.toString().toUpperCase()}`));
  b.handle('nothing', () => undefined);
  const added = waitForEvent<[MemberInfo]>(a, 'member-added');
  await Promise.all([a.start(), b.start()]);
  const [member] = await added;
  assert.equal(member.route, 'b');
  assert.equal(member.id, b.self.id);
  assert.equal(member.port, b.self.port);
  assert.notEqual(b.self.port, 0);
  assert.equal((await a.request(member.id, 'upper', Buffer.from('hi'))).toString(), 'a:HI');
  assert.equal((await a.request(member.id, 'nothing', Buffer.alloc(0))).length, 0);
  assert.deepEqual(a.members().map((m) => m.route), ['b']);
  const m = a.metrics();
  assert.equal(m.requestLatencyMs.count, 2);
  assert.ok(m.messagesSent >= 2 && m.heartbeatsSent >= 1 && m.heartbeatsReceived >= 1);
});

test('handler errors, unknown types, timeouts and unknown members reject with their codes', async (t) => {
  const { a, b, bOnA } = await pair(t);
  b.handle('boom', () => {
    throw Object.assign(new Error('no such session'), { code: 'ERR_SOMETHING' });
  });
  b.handle('never', () => new Promise<Buffer>(() => {}));
  await assert.rejects(a.request(bOnA.id, 'boom', Buffer.alloc(0)), (err: unknown) => {
    assert.ok(err instanceof ClusterRequestError);
    assert.equal(err.code, 'ERR_REMOTE');
    assert.deepEqual(err.remote, { code: 'ERR_SOMETHING', message: 'no such session' });
    return true;
  });
  await assert.rejects(a.request(bOnA.id, 'nope', Buffer.alloc(0)), (err: unknown) => {
    assert.equal(code(err), 'ERR_REMOTE');
    assert.match((err as Error).message, /no handler for message type "nope"/);
    return true;
  });
  const t0 = performance.now();
  await assert.rejects(a.request(bOnA.id, 'never', Buffer.alloc(0), { timeoutMs: 200 }), (err: unknown) => code(err) === 'ERR_REQUEST_TIMEOUT');
  assert.ok(performance.now() - t0 < 1000);
  await assert.rejects(a.request('not-a-member-id', 'boom', Buffer.alloc(0)), (err: unknown) => code(err) === 'ERR_MEMBER_GONE');
  assert.throws(() => b.handle('boom', () => undefined), /already registered/);
  assert.equal(a.metrics().requestsTimedOut, 1);
});

test('a graceful stop removes the member at once as left, and pending requests fail ERR_MEMBER_GONE', async (t) => {
  const { a, b, bOnA } = await pair(t);
  b.handle('never', () => new Promise<Buffer>(() => {}));
  const pending = assert.rejects(a.request(bOnA.id, 'never', Buffer.alloc(0), { timeoutMs: 10_000 }), (err: unknown) => code(err) === 'ERR_MEMBER_GONE');
  const removed = waitForEvent<[MemberInfo, string]>(a, 'member-removed');
  const t0 = performance.now();
  await b.stop();
  const [m, reason] = await removed;
  assert.equal(m.route, 'b');
  assert.equal(reason, 'left');
  assert.ok(performance.now() - t0 < 1000, 'removed within the stop, not after dropTime');
  await pending;
  assert.deepEqual(a.members(), []);
  await assert.rejects(b.request(a.self.id, 'x', Buffer.alloc(0)), (err: unknown) => code(err) === 'ERR_STOPPED');
});

test('stop() rejects our own pending requests with ERR_STOPPED', async (t) => {
  const { a, b, bOnA } = await pair(t);
  b.handle('never', () => new Promise<Buffer>(() => {}));
  const pending = assert.rejects(a.request(bOnA.id, 'never', Buffer.alloc(0), { timeoutMs: 10_000 }), (err: unknown) => code(err) === 'ERR_STOPPED');
  await a.stop();
  await pending;
});

test('with encrypt: true members talk, and a member without encryption is never admitted', async (t) => {
  const { a, b, bOnA, make, multicast } = await pair(t, { encrypt: true });
  b.handle('echo', (_f, body) => body);
  const body = randomBytes(100_000);
  assert.deepEqual(await a.request(bOnA.id, 'echo', body), body);
  const plain = make(channelOptions('plain', { multicast }, { encrypt: false }));
  await plain.start();
  // Its heartbeats are valid (same secret), so a and b try the handshake, which fails on the preamble.
  await until(() => a.metrics().framesRejected.auth > 0 || plain.metrics().framesRejected.auth > 0, 3000, 'a rejected handshake');
  assert.deepEqual(a.members().map((m) => m.route), ['b']);
  assert.deepEqual(plain.members(), []);
});

test('a message over maxFrameBytes is refused locally, and the connection stays usable', async (t) => {
  const { a, b, bOnA } = await pair(t, { maxFrameBytes: 64 * 1024 });
  b.handle('echo', (_f, body) => body);
  await assert.rejects(a.request(bOnA.id, 'echo', Buffer.alloc(64 * 1024)), (err: unknown) => err instanceof FrameError && err.code === 'ERR_FRAME_TOO_LARGE');
  assert.equal((await a.request(bOnA.id, 'echo', Buffer.from('still fine'))).toString(), 'still fine');
});

test('a peer that cannot keep up is reported with ERR_BACKPRESSURE, not buffered without end', async (t) => {
  const { a, b, bOnA } = await pair(t, { sendQueue: { maxFrames: 50 } });
  b.handle('stuck', () => new Promise<Buffer>(() => {}));
  const body = randomBytes(32 * 1024);
  const outcomes: Promise<string>[] = [];
  let backpressure: ClusterRequestError | undefined;
  // The receiver stops reading at 256 unanswered requests; then TCP buffers fill, then our queue.
  for (let i = 0; i < 5000 && backpressure === undefined; i++) {
    outcomes.push(
      a.request(bOnA.id, 'stuck', body, { timeoutMs: 30_000 }).then(
        () => 'ok',
        (err: unknown) => {
          if (code(err) === 'ERR_BACKPRESSURE') backpressure = err as ClusterRequestError;
          return String(code(err));
        },
      ),
    );
    if (i % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  assert.ok(backpressure, 'some request was refused with ERR_BACKPRESSURE');
  assert.match(backpressure.message, /cannot keep up/);
  assert.ok(a.metrics().requestsRejectedBackpressure >= 1);
  assert.ok(outcomes.length < 2000, `refused after ${outcomes.length} requests, so memory stayed bounded`);
  t.diagnostic(`ERR_BACKPRESSURE after ${outcomes.length} requests of 32 KiB`);
  await b.stop();
  const results = await Promise.all(outcomes);
  assert.ok(results.every((r) => r === 'ERR_MEMBER_GONE' || r === 'ERR_BACKPRESSURE' || r === 'ERR_NOT_CONNECTED'), String(new Set(results).size));
});

test('static membership: members learned over TCP, own address skipped, liveness by TCP heartbeat', async (t) => {
  const make = harness(t);
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  const list = ports.map((p) => `127.0.0.1:${p}`);
  const timing = { frequency: 100, dropTime: 600 };
  const chans = ['s1', 's2', 's3'].map((route, i) =>
    make(channelOptions(route, { static: list, ...timing }, { receiver: { host: '127.0.0.1', port: ports[i] } })),
  );
  for (const c of chans) c.handle('who', () => Buffer.from(c.self.route));
  await Promise.all(chans.map((c) => c.start()));
  await Promise.all(chans.map((c) => sees(c, ['s1', 's2', 's3'].filter((r) => r !== c.self.route))));
  for (const c of chans) assert.equal(c.members().length, 2, 'its own address in the list is skipped');
  const [s1, s2, s3] = chans as [ClusterChannel, ClusterChannel, ClusterChannel];
  const s2OnS1 = s1.members().find((m) => m.route === 's2')!;
  assert.equal((await s1.request(s2OnS1.id, 'who', Buffer.alloc(0))).toString(), 's2');
  // Several heartbeat periods: nobody is suspected while TCP heartbeats flow.
  let suspected = 0;
  s1.on('member-suspected', () => suspected++);
  await new Promise((r) => setTimeout(r, 3 * timing.dropTime));
  assert.equal(suspected, 0);
  const removed = waitForEvent<[MemberInfo, string]>(s1, 'member-removed', (m) => m.route === 's3');
  await s3.stop();
  assert.equal((await removed)[1], 'left');
  assert.deepEqual(s1.members().map((m) => m.route), ['s2']);
  void s2;
});

test('DNS membership: resolved addresses become peers; re-resolution finds new ones; a failed lookup drops nobody', async (t) => {
  const make = harness(t);
  const [port1, port2] = [await freePort(), await freePort()];
  // A fake resolver: each member gets the other's port, so the name resolves to 127.0.0.1 for both.
  let answer: string[] = [];
  let failing = false;
  let lookups = 0;
  const resolve4 = (name: string) => {
    lookups++;
    if (failing || name !== 'members.test') return Promise.reject(new Error('ESERVFAIL'));
    return Promise.resolve([...answer]);
  };
  const timing = { frequency: 100, dropTime: 600 };
  const d1 = make(channelOptions('d1', { dns: { name: 'members.test', port: port2, interval: 100 }, ...timing }, { resolve4, receiver: { host: '127.0.0.1', port: port1 } }));
  const d2 = make(channelOptions('d2', { dns: { name: 'members.test', port: port1, interval: 100 }, ...timing }, { resolve4, receiver: { host: '127.0.0.1', port: port2 } }));
  await Promise.all([d1.start(), d2.start()]);
  assert.deepEqual(d1.members(), []);
  answer = ['127.0.0.1']; // the service got its endpoints: the next re-resolution finds them
  await Promise.all([sees(d1, ['d2']), sees(d2, ['d1'])]);
  failing = true;
  const before = lookups;
  let removed = 0;
  d1.on('member-removed', () => removed++);
  await until(() => lookups >= before + 20, 5000, 'ten failed lookups per member');
  assert.equal(removed, 0);
  assert.deepEqual(d1.members().map((m) => m.route), ['d2']);
});

test('each member\'s zone reaches the others: in multicast heartbeats, and in the hello and welcome of a static list', async (t) => {
  const make = harness(t);
  const multicast = randomMulticast();
  const a = make(channelOptions('a', { multicast }, { zone: 'zone-a' }));
  const b = make(channelOptions('b', { multicast }, { zone: 'zone-b' }));
  const c = make(channelOptions('c', { multicast }));
  await Promise.all([a.start(), b.start(), c.start()]);
  await Promise.all([sees(a, ['b', 'c']), sees(b, ['a', 'c']), sees(c, ['a', 'b'])]);
  const zoneOn = (x: ClusterChannel, route: string) => x.members().find((m) => m.route === route)?.zone;
  assert.equal(zoneOn(a, 'b'), 'zone-b');
  assert.equal(zoneOn(b, 'a'), 'zone-a');
  assert.equal(zoneOn(c, 'a'), 'zone-a');
  assert.equal(zoneOn(a, 'c'), undefined, 'a member that names no zone has none');

  // Static membership: no heartbeat, only the hello (x asks y) and the welcome (y answers).
  const [px, py] = [await freePort(), await freePort()];
  const x = make(channelOptions('x', { static: [`127.0.0.1:${py}`] }, { zone: 'zone-x', receiver: { host: '127.0.0.1', port: px } }));
  const y = make(channelOptions('y', { static: [`127.0.0.1:${px}`] }, { zone: 'zone-y', receiver: { host: '127.0.0.1', port: py } }));
  await Promise.all([x.start(), y.start()]);
  await Promise.all([sees(x, ['y']), sees(y, ['x'])]);
  assert.equal(zoneOn(x, 'y'), 'zone-y');
  assert.equal(zoneOn(y, 'x'), 'zone-x');
});
