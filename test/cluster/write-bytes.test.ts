/**
 * The bytes of one replicated write on the wire, acknowledgement included, in protocol versions 1 and
 * 2, computed with the code that writes them (frame sealing, envelope writer, body packers, session
 * codec): the bench's write (`views` and `lastSeen` changed, bench/app.ts) of a session whose backup
 * has it, each message alone in its frame (no batching: the worst case). The bench measures the same
 * between member processes, with other cluster traffic subtracted (bench/bytes.bench.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EnvelopeReader, EnvelopeWriter } from '../../src/cluster/envelope-codec.js';
import type { BodyPackers } from '../../src/cluster/envelope-codec.js';
import { FrameSession, unbatch } from '../../src/cluster/frame-codec.js';
import { deriveClusterKeys } from '../../src/cluster/keys.js';
import { compactCopy, compactDelta, createSessionCodec } from '../../src/codec/index.js';
import { messages } from '../../src/codec/messages.js';
import { benchSessionSchema, sessionFor } from '../../bench/session.js';

const packers: BodyPackers = new Map([
  ['session.delta', compactDelta],
  ['session.copy', compactCopy],
]);

function connection(version: number) {
  const keys = deriveClusterKeys('a-very-long-cluster-secret');
  const client = new FrameSession({ keys, encrypt: false, role: 'client', maxFrameBytes: 1 << 20 });
  const server = new FrameSession({ keys, encrypt: false, role: 'server', maxFrameBytes: 1 << 20 });
  server.receive(client.preamble);
  client.receive(server.preamble);
  const sides = [new EnvelopeWriter({ packers, route: () => 'node1' }), new EnvelopeReader({ packers, route: () => 'node1' })] as const;
  const back = [new EnvelopeWriter({ packers, route: () => 'node2' }), new EnvelopeReader({ packers, route: () => 'node2' })] as const;
  for (const s of [...sides, ...back]) s.version = version;
  return { client, server, out: sides[0], in: sides[1], backOut: back[0], backIn: back[1] };
}

test('one write of two changed keys and its acknowledgement: version 1 over 140 bytes, version 2 under 90, version 3 at most 6 more', () => {
  const codec = createSessionCodec({ types: [], sessionSchema: benchSessionSchema, maxSessionBytes: 1 << 20 });
  const now = Date.now();
  const base = randomBytes(18).toString('base64url');
  const data = sessionFor(7) as unknown as Record<string, unknown>;
  const result: Record<number, number> = {};
  for (const version of [1, 2, 3]) {
    const c = connection(version);
    let id = 0;
    const send = (type: string, body: Buffer): number => {
      // A request's deadline, written by version 3 only (a send time every 40 ms, as the writes below).
      const frame = c.client.sealBatch([c.out.encode({ kind: 'request', id: ++id, type, body, deadline: performance.now() + 1000 })]);
      const [got] = c.server.receive(frame);
      const e = c.in.decode(unbatch(got)[0]);
      assert.deepEqual([e.type, e.body], [type, body], 'the body arrives byte for byte');
      const ack = c.server.sealBatch([c.backOut.encode({ kind: 'reply', id, type: '', body: messages.applyReply.encode({ status: 'OK', epoch: 0, owner: '' }) })]);
      assert.deepEqual(c.backIn.decode(unbatch(c.client.receive(ack)[0])[0]).body, messages.applyReply.encode({ status: 'OK', epoch: 0, owner: '' }));
      return frame.length + ack.length;
    };
    // The backup got the session whole when it was created (login).
    const entries = Object.entries(data).map(([key, value]) => ({ key, value: codec.encodeEntries({ [key]: value }) }));
    send('session.copy', messages.copy.encode({ base, owner: 'node1', epoch: 1, version: 1, expire: now + 3_600_000, maxAge: 3_600_000, entries, createdAt: now, principal: '' }));
    let total = 0;
    const writes = 20;
    for (let i = 0; i < writes; i++) {
      const set = [
        { key: 'views', value: codec.encodeEntries({ views: i + 1 }) },
        { key: 'lastSeen', value: codec.encodeEntries({ lastSeen: now + i * 40 }) },
      ];
      const body = messages.delta.encode({ base, owner: 'node1', epoch: 1, version: i + 2, baseVersion: i + 1, expire: now + 3_600_000 + i * 40, maxAge: 3_600_000, set, removed: [], createdAt: now, principal: '' });
      total += send('session.delta', body);
    }
    result[version] = total / writes;
  }
  process.stdout.write(`bytes per write of two changed keys, acknowledgement included, one message per frame: version 1 ${result[1]}, version 2 ${result[2]}, version 3 ${result[3]}\n`);
  assert.ok(result[1] >= 140, `version 1: ${result[1]}`);
  assert.ok(result[2] <= 90, `version 2: ${result[2]}`);
  assert.ok(result[3] > result[2] && result[3] <= result[2] + 6, `version 3: ${result[3]}`);
});
