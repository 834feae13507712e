import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { HeartbeatError } from '../../src/errors.js';
import { decodeHeartbeat, encodeHeartbeat, heartbeatDropReason } from '../../src/cluster/heartbeat.js';
import type { Heartbeat } from '../../src/cluster/heartbeat.js';
import { deriveClusterKeys } from '../../src/cluster/keys.js';

const keys = deriveClusterKeys('a-very-long-cluster-secret');
const now = 1_700_000_000_000;
const hb: Heartbeat = {
  clusterName: 'shop',
  member: { id: 'AAAAAAAAAAAAAAAAAAAAAA', route: 'node1', host: '127.0.0.1', port: 4001, startTime: now - 5000 },
  protocolVersion: 1,
  timestamp: now,
  kind: 'alive',
};
const check = { key: keys.heartbeatMac, clusterName: 'shop', protocol: { min: 1, max: 1 }, now, maxAgeMs: 3000 };

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof HeartbeatError);
    return heartbeatDropReason(err);
  }
  return 'accepted';
}

test('a heartbeat round-trips with every field', () => {
  assert.deepEqual(decodeHeartbeat(encodeHeartbeat(hb, keys.heartbeatMac), check), hb);
  const leave = { ...hb, kind: 'leave' as const };
  assert.deepEqual(decodeHeartbeat(encodeHeartbeat(leave, keys.heartbeatMac), check), leave);
});

test('stale, future, foreign, malformed and wrongly signed heartbeats are told apart', () => {
  const enc = (h: Heartbeat, key = keys.heartbeatMac) => encodeHeartbeat(h, key);
  assert.equal(reason(() => decodeHeartbeat(enc({ ...hb, timestamp: now - 3001 }), check)), 'stale');
  assert.equal(reason(() => decodeHeartbeat(enc({ ...hb, timestamp: now + 3001 }), check)), 'stale');
  assert.equal(reason(() => decodeHeartbeat(enc({ ...hb, clusterName: 'other' }), check)), 'foreign');
  assert.equal(reason(() => decodeHeartbeat(enc({ ...hb, protocolVersion: 2 }), check)), 'version');
  assert.equal(reason(() => decodeHeartbeat(enc(hb, deriveClusterKeys('another-secret-of-16+').heartbeatMac), check)), 'auth');
  assert.equal(reason(() => decodeHeartbeat(randomBytes(80), check)), 'malformed');
  assert.equal(reason(() => decodeHeartbeat(Buffer.alloc(0), check)), 'malformed');
  const good = enc(hb);
  assert.equal(reason(() => decodeHeartbeat(good.subarray(0, good.length - 20), check)), 'malformed');
  const tampered = Buffer.from(good);
  tampered[tampered.indexOf('node1') + 4] = '2'.charCodeAt(0); // node1 -> node2
  assert.equal(reason(() => decodeHeartbeat(tampered, check)), 'auth');
  assert.equal(reason(() => decodeHeartbeat(enc({ ...hb, member: { ...hb.member, route: 'bad.route' } }), check)), 'malformed');
  assert.equal(reason(() => decodeHeartbeat(enc({ ...hb, member: { ...hb.member, port: 0 } }), check)), 'malformed');
});

test('a forged timestamp does not count as stale: the MAC is checked first', () => {
  const forged = encodeHeartbeat({ ...hb, timestamp: 0 }, deriveClusterKeys('another-secret-of-16+').heartbeatMac);
  assert.equal(reason(() => decodeHeartbeat(forged, check)), 'auth');
});

test('secret rotation: a heartbeat signed with any accepted secret counts, one signed with no accepted secret does not', () => {
  const older = deriveClusterKeys('the-old-cluster-secret-0123').heartbeatMac;
  const newer = deriveClusterKeys('the-new-cluster-secret-4567').heartbeatMac;
  const both = { ...check, key: [newer, older] };
  assert.deepEqual(decodeHeartbeat(encodeHeartbeat(hb, older), both), hb);
  assert.deepEqual(decodeHeartbeat(encodeHeartbeat(hb, newer), both), hb);
  assert.equal(reason(() => decodeHeartbeat(encodeHeartbeat(hb, keys.heartbeatMac), both)), 'auth');
});
