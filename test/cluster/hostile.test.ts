/**
 * Hostile and broken peers against real member processes: another secret, garbage and
 * malformed frames on the receiver port, garbage and forged datagrams on the multicast port.
 * Members must stay up, keep each other, and count what they dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { once } from 'node:events';
import { encodeHeartbeat } from '../../src/cluster/heartbeat.js';
import { FrameSession } from '../../src/cluster/frame-codec.js';
import { deriveClusterKeys } from '../../src/cluster/keys.js';
import { PROTOCOL_VERSION } from '../../src/cluster/messages.js';
import { MemberSet, SECRET, randomMulticast, until, waitForFullMesh } from '../helpers/cluster-harness.js';
import type { MemberProcess } from '../helpers/cluster-harness.js';

const metricsOf = async (m: MemberProcess) => (await m.command({ cmd: 'metrics' })).metrics as {
  framesRejected: Record<string, number>;
  heartbeatsDropped: Record<string, number>;
};

/** Opens a TCP connection to a member's receiver, writes `bytes`, and resolves when the member closed it. */
async function sendAndExpectClose(port: number, parts: Buffer[], end = false): Promise<void> {
  const s: Socket = connect({ host: '127.0.0.1', port });
  s.on('error', () => {}); // a reset by the member is the expected outcome
  s.resume();
  await once(s, 'connect');
  for (const p of parts) s.write(p);
  if (end) s.end();
  await once(s, 'close');
}

/** A valid client preamble: the member will expect frames after it. */
function preamble(): Buffer {
  return new FrameSession({ keys: deriveClusterKeys(SECRET), encrypt: false, role: 'client', maxFrameBytes: 1 << 20 }).preamble;
}

test('a member with another secret is never admitted, by multicast or by a direct connection', async (t) => {
  const set = new MemberSet();
  t.after(() => set.cleanup());
  const multicast = randomMulticast();
  const [a, b] = await Promise.all([set.start({ route: 'a', multicast }), set.start({ route: 'b', multicast })]);
  await waitForFullMesh([a, b], 5000);
  // Heartbeats with the wrong MAC, and a handshake attempt straight at a's receiver.
  const intruder = await set.start({ route: 'x', multicast, secret: 'a-different-secret-0123456789' });
  const direct = await set.start({ route: 'y', static: [`127.0.0.1:${a.self!.port}`], secret: 'a-different-secret-0123456789' });
  await until(async () => (await metricsOf(a)).heartbeatsDropped.auth >= 4, 5000, 'a to drop the intruder\'s heartbeats');
  await until(async () => (await metricsOf(a)).framesRejected.auth >= 1, 5000, 'a to reject the direct handshake');
  assert.deepEqual(await a.memberRoutes(), ['b']);
  assert.deepEqual(await b.memberRoutes(), ['a']);
  assert.deepEqual(await intruder.memberRoutes(), []);
  assert.deepEqual(await direct.memberRoutes(), []);
  assert.equal(a.messages.some((m) => m.event === 'member-added' && m.member?.route !== 'b'), false);
});

test('garbage, oversize, truncated and forged traffic leaves members running and together', async (t) => {
  const set = new MemberSet();
  t.after(() => set.cleanup());
  const multicast = randomMulticast();
  const [a, b] = await Promise.all([set.start({ route: 'a', multicast }), set.start({ route: 'b', multicast })]);
  await waitForFullMesh([a, b], 5000);
  const port = a.self!.port;

  await t.test('receiver port: garbage bytes, oversize length prefix, truncated and unauthenticated frames', async () => {
    await sendAndExpectClose(port, [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
    await sendAndExpectClose(port, [randomBytes(4096)]);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(0x7fff_ffff, 0);
    await sendAndExpectClose(port, [preamble(), huge]); // refused before buffering 2 GiB
    const truncated = Buffer.alloc(14);
    truncated.writeUInt32BE(100, 0);
    await sendAndExpectClose(port, [preamble(), truncated], true);
    const forged = Buffer.concat([Buffer.from([0, 0, 0, 64]), randomBytes(64)]);
    await sendAndExpectClose(port, [preamble(), forged]);
    const m = await metricsOf(a);
    assert.ok(m.framesRejected.malformed >= 3, JSON.stringify(m.framesRejected));
    // Before the hello verified, an oversize prefix is the pre-authentication limit's.
    assert.ok(m.framesRejected.preauth_too_large >= 1, JSON.stringify(m.framesRejected));
    assert.ok(m.framesRejected.auth >= 1, JSON.stringify(m.framesRejected));
  });

  await t.test('multicast port: garbage, forged, foreign and stale heartbeats', async () => {
    const sock = createSocket({ type: 'udp4', reuseAddr: true });
    sock.bind(0, '127.0.0.1');
    await once(sock, 'listening');
    sock.setMulticastInterface('127.0.0.1'); // loopback only, never the default interface
    const send = (b: Buffer) => new Promise<void>((resolve) => sock.send(b, multicast.port, multicast.address, () => resolve()));
    const key = deriveClusterKeys(SECRET).heartbeatMac;
    const hb = (over: Record<string, unknown>, k = key) =>
      encodeHeartbeat(
        {
          clusterName: 'test-cluster',
          member: { id: 'forged-member-id-0000', route: 'forged', host: '127.0.0.1', port: 9, startTime: Date.now() },
          protocolVersion: PROTOCOL_VERSION,
          timestamp: Date.now(),
          kind: 'alive',
          ...over,
        },
        k,
      );
    for (let i = 0; i < 20; i++) await send(randomBytes(1 + Math.floor(Math.random() * 500)));
    await send(Buffer.concat([Buffer.from('KSH1'), randomBytes(100)]));
    await send(hb({}, deriveClusterKeys('a-different-secret-0123456789').heartbeatMac));
    await send(hb({ clusterName: 'other-cluster' }));
    await send(hb({ timestamp: Date.now() - 600_000 })); // past MAX_CLOCK_SKEW_MS
    // A leave "from b", replayed from well within the clock-skew window (so only "older than b's newest
    // heartbeat" can stop it), must not remove b.
    await send(hb({ kind: 'leave', member: b.self, timestamp: Date.now() - 20_000 }));
    sock.close();
    await until(async () => (await metricsOf(a)).heartbeatsDropped.malformed >= 21, 3000, 'a to drop the garbage datagrams');
    const m = await metricsOf(a);
    assert.ok(m.heartbeatsDropped.auth >= 1, JSON.stringify(m.heartbeatsDropped));
    assert.ok(m.heartbeatsDropped.foreign >= 1, JSON.stringify(m.heartbeatsDropped));
    assert.ok(m.heartbeatsDropped.stale >= 2, JSON.stringify(m.heartbeatsDropped));
  });

  await t.test('both members are still up, still members of each other, still answering', async () => {
    assert.equal(a.exited || b.exited, false);
    assert.deepEqual(await a.memberRoutes(), ['b']);
    assert.deepEqual(await b.memberRoutes(), ['a']);
    assert.equal(a.messages.some((m) => m.event === 'member-removed' || m.event === 'member-suspected'), false);
    const r = await a.command({ cmd: 'request', route: 'b', type: 'echo', body: 'still here' });
    assert.equal(r.body, 'still here');
    const e = await a.command({ cmd: 'request', route: 'b', type: 'fail', body: '' });
    assert.equal(e.code, 'ERR_REMOTE');
    assert.deepEqual(e.remote, { code: 'ERR_TEST', message: 'handler failed on purpose' });
  });
});
