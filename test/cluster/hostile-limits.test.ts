/**
 * Limits before authentication (issue 13): the admission budgets on their own (fake clock), the
 * first-frame size limit in the frame codec, and a real receiver in this process refusing
 * strangers (connections from other 127/8 source addresses) while a member still joins.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { Admission, DEFAULT_PREAUTH_LIMITS, TRUST_MS, sourceKey } from '../../src/cluster/admission.js';
import type { AdmissionTicket, PreauthLimits } from '../../src/cluster/admission.js';
import { FrameSession, frameRejectReason } from '../../src/cluster/frame-codec.js';
import { deriveClusterKeys } from '../../src/cluster/keys.js';
import { PROTOCOL_VERSION, decodeEnvelope, encodeEnvelope, encodeHello } from '../../src/cluster/messages.js';
import { FRAME_REJECT_REASONS, createMetrics } from '../../src/cluster/metrics.js';
import { createClusterChannel } from '../../src/cluster/index.js';
import type { ClusterChannel } from '../../src/cluster/index.js';
import { FrameError } from '../../src/errors.js';
import { SECRET, channelOptions, randomMulticast, until, waitForEvent } from '../helpers/cluster-harness.js';

const limits = (over: Partial<PreauthLimits> = {}): PreauthLimits => ({ ...DEFAULT_PREAUTH_LIMITS, ...over });

function ticket(t: AdmissionTicket | string): AdmissionTicket {
  assert.equal(typeof t, 'object', `expected a slot, got ${typeof t === 'string' ? t : 'a ticket'}`);
  return t as AdmissionTicket;
}

test('sources: an IPv4 address, an IPv4-mapped one unwrapped, an IPv6 /64', () => {
  const cases: [string | undefined, string][] = [
    ['10.0.0.7', '10.0.0.7'],
    ['::ffff:10.0.0.7', '10.0.0.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    [undefined, '?'],
  ];
  for (const [address, key] of cases) assert.equal(sourceKey(address), key, String(address));
});

test('admission: a cap per source, a budget for strangers, none for authenticated connections', () => {
  const a = new Admission(limits({ maxPerSource: 2, maxUnauthenticated: 3 }));
  const x1 = ticket(a.admit('10.0.0.1'));
  ticket(a.admit('10.0.0.1'));
  assert.equal(a.admit('10.0.0.1'), 'per_source_limit');
  const y1 = ticket(a.admit('10.0.0.2'));
  assert.equal(a.admit('10.0.0.3'), 'unauth_limit', 'three strangers hold the whole budget');
  assert.deepEqual(a.counts, { preauth: 3, strangers: 3 });
  // x1 authenticates: its slot is free, 10.0.0.1 becomes a known member's address.
  a.authenticated(x1);
  assert.deepEqual(a.counts, { preauth: 2, strangers: 2 });
  assert.equal(a.isKnown('10.0.0.1'), true);
  ticket(a.admit('10.0.0.3'));
  assert.equal(a.admit('10.0.0.4'), 'unauth_limit');
  // The known source is not counted in the strangers' budget, only in its own per-source cap.
  const x3 = ticket(a.admit('10.0.0.1'));
  assert.equal(x3.stranger, false);
  assert.equal(a.admit('10.0.0.1'), 'per_source_limit', 'a known source still has its per-source cap');
  a.closed(y1);
  a.closed(y1); // twice is harmless
  ticket(a.admit('10.0.0.4'));
  assert.deepEqual(a.counts, { preauth: 4, strangers: 3 });
});

test('admission: a source stays known for TRUST_MS after its last authenticated connection', () => {
  let now = 0;
  const a = new Admission(limits({ maxPerSource: 5, maxUnauthenticated: 1 }), () => now);
  const m = ticket(a.admit('10.0.0.1'));
  a.authenticated(m);
  ticket(a.admit('10.0.0.9')); // strangers' budget now full
  now = 1000;
  a.closed(m);
  now += TRUST_MS - 1;
  assert.equal(ticket(a.admit('10.0.0.1')).stranger, false);
  now += 2;
  assert.equal(a.isKnown('10.0.0.1'), false);
  assert.equal(a.admit('10.0.0.1'), 'unauth_limit');
});

test('admission: an address heard in an authenticated heartbeat is a member\'s before it connects', () => {
  let now = 0;
  const a = new Admission(limits({ maxPerSource: 2, maxUnauthenticated: 0 }), () => now);
  assert.equal(a.admit('10.0.0.5'), 'unauth_limit');
  a.trust('::ffff:10.0.0.5');
  assert.equal(ticket(a.admit('10.0.0.5')).stranger, false);
  now += TRUST_MS + 1;
  assert.equal(a.admit('10.0.0.5'), 'unauth_limit', 'trust from a heartbeat lasts TRUST_MS after the last one');
});

test('frame codec: before authentication a frame over the small limit is refused on its prefix', () => {
  const keys = deriveClusterKeys(SECRET);
  const pair = () => {
    const client = new FrameSession({ keys, encrypt: false, role: 'client', maxFrameBytes: 1 << 20 });
    const server = new FrameSession({ keys, encrypt: false, role: 'server', maxFrameBytes: 1 << 20, maxPreauthFrameBytes: 1024 });
    server.receive(client.preamble);
    client.receive(server.preamble);
    return { client, server };
  };
  const { client, server } = pair();
  const big = client.seal(Buffer.alloc(4000));
  // Only the 4-byte prefix is needed to refuse it: nothing of the 4 KB is waited for or kept.
  assert.throws(
    () => server.receive(big.subarray(0, 4)),
    (err: unknown) => err instanceof FrameError && err.code === 'ERR_FRAME_TOO_LARGE' && /before authentication/.test(err.message),
  );
  assert.equal(server.authenticated, false);
  assert.equal(frameRejectReason(new FrameError('ERR_FRAME_TOO_LARGE', 'x'), false), 'preauth_too_large');
  assert.equal(frameRejectReason(new FrameError('ERR_FRAME_TOO_LARGE', 'x'), true), 'too_large');
  // After one small frame verified, the full maxFrameBytes applies.
  const ok = pair();
  assert.equal(ok.server.receive(ok.client.seal(Buffer.from('hello'))).length, 1);
  assert.equal(ok.server.authenticated, true);
  assert.equal(ok.server.receive(ok.client.seal(Buffer.alloc(100_000)))[0].length, 100_000);
});

test('every rejection reason is a metrics series from the start, at zero', () => {
  const m = createMetrics();
  for (const r of FRAME_REJECT_REASONS) assert.equal(m.framesRejected[r], 0, r);
  for (const r of ['preauth_too_large', 'preauth_timeout', 'per_source_limit', 'unauth_limit', 'foreign']) {
    assert.ok((FRAME_REJECT_REASONS as readonly string[]).includes(r), r);
  }
});

/** A raw connection from `localAddress` (any 127/8 address is loopback on Linux). */
function stranger(port: number, localAddress: string, parts: Buffer[] = []): { socket: Socket; closed: Promise<number> } {
  const started = performance.now();
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => {}); // a reset by the member is an expected outcome
  socket.resume();
  socket.once('connect', () => {
    for (const p of parts) socket.write(p);
  });
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - started)));
  return { socket, closed };
}

test('a real receiver: strangers are refused by budget and deadline, a member still joins', async (t) => {
  const channels: ClusterChannel[] = [];
  const sockets: Socket[] = [];
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(channels.map((c) => c.stop()));
  });
  const multicast = randomMulticast();
  const preauth = { timeout: 2000, maxFrameBytes: 1024, maxPerSource: 2, maxUnauthenticated: 3 };
  const make = (route: string) => {
    const c = createClusterChannel(channelOptions(route, { multicast }, { receiver: { host: '127.0.0.1', port: 0, preauth } }));
    channels.push(c);
    return c;
  };
  const a = make('a');
  const b = make('b');
  await Promise.all([a.start(), b.start()]);
  await until(() => a.members().length === 1 && b.members().length === 1, 5000, 'a and b to see each other');
  const port = a.self.port;
  const before = a.metrics().framesRejected;
  const preamble = new FrameSession({ keys: deriveClusterKeys(SECRET), encrypt: false, role: 'client', maxFrameBytes: 1 << 20 }).preamble;

  // Two idle connections from 127.0.0.2 and one from 127.0.0.3 fill both budgets.
  const held = [stranger(port, '127.0.0.2'), stranger(port, '127.0.0.2'), stranger(port, '127.0.0.3', [preamble])];
  sockets.push(...held.map((h) => h.socket));
  await until(() => held.every((h) => h.socket.readyState === 'open'), 2000, 'the strangers to connect');
  await new Promise((r) => setTimeout(r, 50));
  const perSource = stranger(port, '127.0.0.2');
  const overBudget = stranger(port, '127.0.0.4');
  sockets.push(perSource.socket, overBudget.socket);
  assert.ok((await perSource.closed) < 1000, 'refused at accept, not at the deadline');
  assert.ok((await overBudget.closed) < 1000);

  // While strangers hold every slot, a new member from a known address (127.0.0.1) joins: its
  // connection to a's receiver handshakes (c lists a) before the strangers' deadline.
  const c = make('c');
  const joined = waitForEvent(a, 'member-added', (m: { route: string }) => m.route === 'c', 5000);
  await c.start();
  await joined;
  await until(() => c.members().some((x) => x.route === 'a'), 1500, 'c to handshake with a');
  assert.ok(held.every((h) => !h.socket.destroyed), 'the strangers still hold their slots');

  // The held ones are closed at the deadline, which frees their slots; a slow talker (one byte
  // per 100 ms) is closed at its own deadline too.
  const closedAfter = await Promise.all(held.map((h) => h.closed));
  for (const ms of closedAfter) assert.ok(ms >= 1900 && ms < 4000, `closed after ${Math.round(ms)} ms, expected about 2000`);
  const slow = stranger(port, '127.0.0.5');
  sockets.push(slow.socket);
  let i = 0;
  const drip = setInterval(() => {
    if (slow.socket.writable && i < preamble.length) slow.socket.write(preamble.subarray(i, ++i));
  }, 100);
  t.after(() => clearInterval(drip));
  const slowMs = await slow.closed;
  assert.ok(slowMs >= 1900 && slowMs < 4000, `slow talker closed after ${Math.round(slowMs)} ms`);

  // A first frame over 1024 bytes is refused on its length prefix.
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(8 * 1024 * 1024, 0);
  const big = stranger(port, '127.0.0.6', [preamble, prefix, Buffer.alloc(64 * 1024)]);
  sockets.push(big.socket);
  assert.ok((await big.closed) < 1000, 'refused on the prefix, not at the deadline');

  const m = a.metrics().framesRejected;
  const delta = (r: string) => (m[r] ?? 0) - (before[r] ?? 0);
  assert.equal(delta('per_source_limit'), 1, JSON.stringify(m));
  assert.equal(delta('unauth_limit'), 1, JSON.stringify(m));
  assert.equal(delta('preauth_timeout'), 4, JSON.stringify(m));
  assert.equal(delta('preauth_too_large'), 1, JSON.stringify(m));
  assert.deepEqual(a.members().map((x) => x.route).sort(), ['b', 'c']);
});

test('a hello that arrived in time is not lost to the deadline when the member stalled', async (t) => {
  const c = createClusterChannel(
    channelOptions('a', { multicast: randomMulticast() }, { receiver: { host: '127.0.0.1', port: 0, preauth: { timeout: 300 } } }),
  );
  t.after(() => c.stop());
  await c.start();
  // One message per frame (no batch flag), so this raw client reads envelopes directly.
  const session = new FrameSession({ keys: deriveClusterKeys(SECRET), encrypt: false, role: 'client', maxFrameBytes: 1 << 20, batch: false });
  const socket = connect({ host: '127.0.0.1', port: c.self.port });
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  const envelopes: string[] = [];
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('data', (chunk: Buffer) => {
    for (const p of session.receive(chunk)) envelopes.push(decodeEnvelope(p).kind);
  });
  socket.write(session.preamble);
  await until(() => session.ready, 2000, 'the member\'s preamble');
  const member = { id: 'stalled-client-id-000001', route: 'x', host: '127.0.0.1', port: 9, startTime: Date.now() };
  socket.write(session.seal(encodeEnvelope({ kind: 'hello', id: 1, type: '', body: encodeHello({ member, clusterName: 'test-cluster', protocolVersion: PROTOCOL_VERSION }) })));
  // The hello now sits in the member's socket buffer; the member (this process) stalls past its
  // deadline, so the deadline's timer and the hello's read are due in the same loop turn.
  const stallUntil = performance.now() + 600;
  while (performance.now() < stallUntil) {
    // busy: a long GC or a paused process looks the same to the member
  }
  await until(() => envelopes.includes('welcome') || closed, 2000, 'a welcome or a close');
  assert.deepEqual(envelopes, ['welcome']);
  assert.equal(closed, false);
  assert.equal(c.metrics().framesRejected.preauth_timeout, 0);
});

test('with no slots for strangers at all, members still meet: their heartbeats vouch for their address', async (t) => {
  const multicast = randomMulticast('127.0.0.1', { frequency: 100, dropTime: 1000 });
  const preauth = { maxUnauthenticated: 0 };
  const channels = ['a', 'b'].map((r) => createClusterChannel(channelOptions(r, { multicast }, { receiver: { host: '127.0.0.1', port: 0, preauth } })));
  t.after(async () => {
    await Promise.all(channels.map((c) => c.stop()));
  });
  const [a, b] = channels;
  await Promise.all(channels.map((c) => c.start()));
  await until(() => a.members().length === 1 && b.members().length === 1, 5000, 'a and b to see each other');
  const before = a.metrics().framesRejected.unauth_limit;
  const outsider = stranger(a.self.port, '127.0.0.2');
  assert.ok((await outsider.closed) < 1000);
  assert.equal(a.metrics().framesRejected.unauth_limit - before, 1);
});
