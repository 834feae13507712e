/**
 * Protocol version 2's compact write: every SessionDelta body packs and unpacks to the same bytes,
 * through a long sequence on one connection (the slot table's state at both ends), and is much smaller.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { compactCopy, compactDelta } from '../../src/codec/compact-delta.js';
import { messages, type SessionDeltaMessage } from '../../src/codec/messages.js';

const now = 1_765_000_000_000;

function delta(i: number, base: string, over: Partial<SessionDeltaMessage> = {}): SessionDeltaMessage {
  return {
    base,
    owner: 'node1',
    epoch: 1,
    version: i + 2,
    baseVersion: i + 1,
    expire: now + 3_600_000 + i * 37,
    maxAge: 3_600_000,
    set: [
      { key: 'views', value: randomBytes(3) },
      { key: 'lastSeen', value: randomBytes(9) },
    ],
    removed: i % 5 === 0 ? ['cart'] : [],
    createdAt: now - 5000,
    principal: '',
    ...over,
  };
}

test('compact deltas unpack to the same bytes through 5,000 writes of 1,500 sessions (slots evicted and reused), owners and metadata varying', () => {
  const sender = compactDelta.state();
  const receiver = compactDelta.state();
  let full = 0;
  let compact = 0;
  for (let i = 0; i < 5000; i++) {
    const base = `s${i < 2500 ? (i * 7919) % 1500 : i % 600}`.padEnd(25, 'x');
    const d = delta(i, base, {
      ...(i % 11 === 0 ? { owner: 'node3' } : {}),
      ...(i % 13 === 0 ? { maxAge: -1 } : {}),
      ...(i % 17 === 0 ? { principal: `user${i}`, epoch: 2 ** 40 + i } : {}),
      ...(i % 19 === 0 ? { expire: now - i } : {}),
    });
    const body = messages.delta.encode(d);
    const packed = compactDelta.pack(body, sender, 'node1');
    full += body.length;
    // Not packed (it would not be shorter): it travels as is, and neither end's table changes.
    if (packed === undefined) {
      compact += body.length;
      continue;
    }
    assert.deepEqual(compactDelta.unpack(packed, receiver, 'node1'), body, `write ${i}`);
    compact += packed.length;
  }
  assert.ok(compact < full, `compact ${compact} of ${full} bytes`);
});

test('a write of a session written before on the connection: 53 bytes of metadata become at most 7', () => {
  const sender = compactDelta.state();
  const base = randomBytes(19).toString('base64url').slice(0, 25);
  compactDelta.pack(messages.delta.encode(delta(0, base)), sender, 'node1');
  const d = delta(1, base, { removed: [] });
  const body = messages.delta.encode(d);
  const changes = 1 + (1 + 5 + 1 + 3) + (1 + 8 + 1 + 9) + 1; // the set array and the removed array, as Avro
  const packed = compactDelta.pack(body, sender, 'node1')!;
  assert.ok(body.length - changes >= 50, `${body.length - changes} bytes of metadata in version 1`);
  assert.ok(packed.length - changes <= 7, `${packed.length - changes} bytes of metadata`);
});

test('garbage does not unpack, and a body that is not a delta is not packed', () => {
  assert.throws(() => compactDelta.unpack(Buffer.from([2, 18]), compactDelta.state(), 'node1'), /empty slot/);
  assert.throws(() => compactDelta.unpack(Buffer.from([0x40]), compactDelta.state(), 'node1'), /bad flags/);
  assert.equal(compactDelta.pack(randomBytes(3), compactDelta.state(), 'node1'), undefined);
});

test('copies and deltas share the slot table: a session copied to a member is written to it by slot from the first write', () => {
  const sender = compactDelta.state();
  const receiver = compactDelta.state();
  for (let i = 0; i < 300; i++) {
    const base = `c${i}`.padEnd(25, 'y');
    const copy = messages.copy.encode({ base, owner: 'node2', epoch: 3, version: 1, expire: now + i, maxAge: 60_000, entries: [{ key: 'user', value: randomBytes(20) }], createdAt: now, principal: i % 2 === 0 ? 'p' : '' });
    const packedCopy = compactCopy.pack(copy, sender, 'node2')!;
    assert.deepEqual(compactCopy.unpack(packedCopy, receiver, 'node2'), copy);
    const body = messages.delta.encode(delta(i, base, { owner: 'node2', epoch: 3, maxAge: 60_000, createdAt: now, principal: i % 2 === 0 ? 'p' : '' }));
    const packed = compactDelta.pack(body, sender, 'node2')!;
    assert.deepEqual(compactDelta.unpack(packed, receiver, 'node2'), body);
    assert.ok(packed.length <= body.length - 40, `write ${i}: ${packed.length} of ${body.length} bytes`);
  }
});

test('a body the compact form would not shorten travels as is, and leaves the table as it was (both ends stay in step)', () => {
  const sender = compactDelta.state();
  const receiver = compactDelta.state();
  // A first copy with many new keys: each costs a marker more than in Avro, so it is not packed.
  const entries = Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, value: randomBytes(2) }));
  const copy = messages.copy.encode({ base: 'q'.repeat(25), owner: 'node9', epoch: 1, version: 1, expire: now, maxAge: 1, entries, createdAt: now, principal: '' });
  assert.equal(compactCopy.pack(copy, sender, 'node1'), undefined);
  assert.deepEqual([sender.keys.length, sender.byBase.size, sender.next], [0, 0, 0]);
  // The next write packs against the same table on both ends.
  const body = messages.delta.encode(delta(1, 'q'.repeat(25)));
  const packed = compactDelta.pack(body, sender, 'node1')!;
  assert.deepEqual(compactDelta.unpack(packed, receiver, 'node1'), body);
});
