/**
 * Protocol version ranges (hashicorp/memberlist's ProtocolMin/Max): members talk in the highest
 * version both speak, per connection; only a member with no version in common is refused, and that
 * is logged, counted and listed on the status. In-process channels over real loopback sockets and
 * multicast; the compact envelope of version 2 is checked byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { ClusterChannel } from '../../src/cluster/index.js';
import { EnvelopeReader, EnvelopeWriter, MESSAGE_TYPE_CODES } from '../../src/cluster/envelope-codec.js';
import { encodeEnvelope, highestCommon, parseRange } from '../../src/cluster/messages.js';
import type { Envelope } from '../../src/cluster/messages.js';
import { channelHarness, channelOptions, freePort, randomMulticast, until } from '../helpers/cluster-harness.js';

const harness = channelHarness;

/** A pino logger whose lines are kept. */
function capturingLogger(lines: string[]) {
  return pino(
    { level: 'warn' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
}

test('highestCommon and the hello range: the highest version both speak, or none', () => {
  assert.equal(highestCommon({ min: 1, max: 2 }, { min: 1, max: 1 }), 1);
  assert.equal(highestCommon({ min: 1, max: 2 }, { min: 1, max: 3 }), 2);
  assert.equal(highestCommon({ min: 2, max: 3 }, { min: 1, max: 1 }), undefined);
  assert.deepEqual(parseRange('', 1), { min: 1, max: 1 }); // release 0.1.0 sends no range
  assert.deepEqual(parseRange('v1-2', 1), { min: 1, max: 2 });
  assert.deepEqual(parseRange('v3-1', 1), { min: 1, max: 1 });
});

test('the compact envelope of version 2 round-trips every kind, with ids, type codes and repeated reply bodies', () => {
  const w = new EnvelopeWriter({ route: () => 'a' });
  const r = new EnvelopeReader({ route: () => 'a' });
  w.version = 2;
  r.version = 2;
  const ack = Buffer.from([0, 2, 10, 110, 111, 100, 101, 49]);
  const sent: Envelope[] = [
    { kind: 'request', id: 1, type: 'session.delta', body: randomBytes(60) },
    { kind: 'request', id: 2, type: 'app.custom-type', body: Buffer.alloc(0) },
    { kind: 'reply', id: 1, type: '', body: ack },
    { kind: 'reply', id: 2, type: '', body: ack },
    { kind: 'reply', id: 3, type: '', body: Buffer.from([1]) },
    { kind: 'ping', id: 900_000, type: '', body: Buffer.alloc(0) },
    { kind: 'pong', id: 4, type: '', body: Buffer.alloc(0) },
    { kind: 'error', id: 5, type: '', body: randomBytes(30) },
    { kind: 'leave', id: 6, type: '', body: Buffer.alloc(0) },
  ];
  const bytes = sent.map((e) => w.encode(e));
  assert.deepEqual(bytes.map((b) => r.decode(b)), sent);
  // A delta's envelope: head, id, type code (1 byte each), then the body as is; 17 bytes in version 1.
  assert.equal(bytes[0].length - 60, 3);
  assert.equal(encodeEnvelope(sent[0]).length - 60, 17);
  // The second identical acknowledgement is two bytes: head and id.
  assert.equal(bytes[3].length, 2);
  assert.equal(MESSAGE_TYPE_CODES.indexOf('session.delta'), 0);
  const fresh = new EnvelopeReader({ route: () => '' });
  fresh.version = 2;
  assert.throws(() => fresh.decode(Buffer.from([0x13, 0])), /malformed compact envelope/); // a repeat with nothing before
});

for (const membership of ['multicast', 'static'] as const) {
  test(`ranges that overlap talk in the highest common version; [2,2] and [1,1] refuse each other, and say so (${membership})`, async (t) => {
    const make = harness(t);
    const multicast = randomMulticast('127.0.0.1', { frequency: 200, dropTime: 1500 });
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const all = ports.map((p) => `127.0.0.1:${p}`);
    const logs: string[] = [];
    const opts = (route: string, i: number, protocol: { min: number; max: number }) =>
      channelOptions(route, membership === 'multicast' ? { multicast, frequency: 200, dropTime: 1500 } : { static: all, frequency: 200, dropTime: 1500 }, {
        protocol,
        receiver: { host: '127.0.0.1', port: ports[i] },
        ...(route === 'new' ? { logger: capturingLogger(logs) } : {}),
      });
    const both = make(opts('both', 0, { min: 1, max: 2 })); // this release
    const old = make(opts('old', 1, { min: 1, max: 1 })); // speaks as release 0.1.0 does
    const next = make(opts('next', 2, { min: 1, max: 3 })); // a later release that still speaks 1
    const neu = make(opts('new', 3, { min: 2, max: 2 })); // a release that dropped version 1
    for (const c of [both, old, next, neu]) c.handle('echo', (_f, body) => body);
    await Promise.all([both, old, next, neu].map((c) => c.start()));
    const routes = (c: ClusterChannel) => c.members().map((m) => m.route).sort().join(',');
    await until(() => routes(both) === 'new,next,old' && routes(old) === 'both,next' && routes(next) === 'both,new,old' && routes(neu) === 'both,next', 8000, 'memberships');
    const versionTo = (c: ClusterChannel, route: string) => c.protocolStatus!().peers.find((p) => p.route === route)?.version;
    await until(() => versionTo(both, 'old') !== undefined && versionTo(both, 'next') !== undefined && versionTo(next, 'new') !== undefined, 3000, 'connections');
    assert.equal(versionTo(both, 'old'), 1);
    assert.equal(versionTo(old, 'both'), 1);
    assert.equal(versionTo(both, 'next'), 2);
    assert.equal(versionTo(next, 'both'), 2);
    assert.equal(versionTo(next, 'new'), 2);
    // Requests work in each version.
    for (const [from, to] of [[both, old], [old, both], [both, next], [next, neu], [neu, both]] as const) {
      const body = randomBytes(50);
      assert.deepEqual(await from.request(to.self.id, 'echo', body), body);
    }
    // [2,2] and [1,1] have none in common: each refuses the other, counts it, lists it, logs it.
    await until(() => neu.protocolStatus!().incompatible.some((p) => p.route === 'old') && old.protocolStatus!().incompatible.some((p) => p.route === 'new'), 5000, 'the refusals listed');
    const listed = neu.protocolStatus!().incompatible.find((p) => p.route === 'old')!;
    assert.deepEqual(listed.versions, { min: 1, max: 1 });
    assert.deepEqual(neu.protocolStatus!().versions, { min: 2, max: 2 });
    const counted = (c: ClusterChannel) => (c.metrics().framesRejected.version ?? 0) + (c.metrics().heartbeatsDropped.version ?? 0);
    assert.ok(counted(neu) > 0 && counted(old) > 0, `refusals counted: ${counted(neu)} ${counted(old)}`);
    assert.ok(logs.some((l) => /protocol version/.test(l) && /1-1/.test(l)), logs.join('\n'));
    // Nobody else was refused.
    for (const c of [both, next]) assert.deepEqual(c.protocolStatus!().incompatible, []);
  });
}
