import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FrameError } from '../../src/errors.js';
import { FrameSession, PREAMBLE_BYTES, TAG_BYTES, batchItemBytes, unbatch } from '../../src/cluster/frame-codec.js';
import { deriveClusterKeys } from '../../src/cluster/keys.js';

const keys = deriveClusterKeys('a-very-long-cluster-secret');
const MAX = 64 * 1024;

/** Two sessions that exchanged preambles, as a client and server would. */
function pair(opts: { encrypt?: boolean; serverKeys?: typeof keys; serverEncrypt?: boolean } = {}) {
  const client = new FrameSession({ keys, encrypt: opts.encrypt ?? false, role: 'client', maxFrameBytes: MAX });
  const server = new FrameSession({ keys: opts.serverKeys ?? keys, encrypt: opts.serverEncrypt ?? opts.encrypt ?? false, role: 'server', maxFrameBytes: MAX });
  assert.deepEqual(server.receive(client.preamble), []);
  assert.deepEqual(client.receive(server.preamble), []);
  return { client, server };
}

function rejects(fn: () => unknown, code: string) {
  assert.throws(fn, (err: unknown) => err instanceof FrameError && err.code === code);
}

for (const encrypt of [false, true]) {
  test(`frames round-trip both ways, split at every byte (encrypt: ${encrypt})`, () => {
    const { client, server } = pair({ encrypt });
    const msgs = [Buffer.from('one'), randomBytes(3000), Buffer.from([0])];
    const wire = Buffer.concat(msgs.map((m) => client.seal(m)));
    // Byte-by-byte delivery exercises every partial-header and partial-body path.
    const got: Buffer[] = [];
    for (let i = 0; i < wire.length; i++) got.push(...server.receive(wire.subarray(i, i + 1)));
    assert.deepEqual(got, msgs);
    const back = server.seal(Buffer.from('reply'));
    assert.deepEqual(client.receive(back), [Buffer.from('reply')]);
  });
}

test('with encrypt: true the payload is not visible on the wire', () => {
  const { client } = pair({ encrypt: true });
  const secret = Buffer.from('SESSION-CONTENT-SESSION-CONTENT');
  assert.equal(client.seal(secret).includes(secret), false);
});

test('a frame sealed with another secret fails authentication', () => {
  const other = deriveClusterKeys('another-cluster-secret-entirely');
  for (const encrypt of [false, true]) {
    const client = new FrameSession({ keys: other, encrypt, role: 'client', maxFrameBytes: MAX });
    const server = new FrameSession({ keys, encrypt, role: 'server', maxFrameBytes: MAX });
    server.receive(client.preamble);
    client.receive(server.preamble);
    rejects(() => server.receive(client.seal(Buffer.from('hello'))), 'ERR_FRAME_AUTH');
  }
});

test('a replayed, reordered or tampered frame fails authentication', () => {
  {
    const { client, server } = pair();
    const f1 = client.seal(Buffer.from('first'));
    assert.equal(server.receive(f1).length, 1);
    rejects(() => server.receive(f1), 'ERR_FRAME_AUTH'); // replay on the same connection
  }
  {
    const { client, server } = pair({ encrypt: true });
    const f1 = client.seal(Buffer.from('first'));
    const f2 = client.seal(Buffer.from('second'));
    rejects(() => server.receive(f2), 'ERR_FRAME_AUTH'); // reordered (or f1 dropped)
    void f1;
  }
  {
    const a = pair();
    const f = a.client.seal(Buffer.from('to connection a'));
    const b = pair();
    rejects(() => b.server.receive(f), 'ERR_FRAME_AUTH'); // replay onto another connection
  }
  {
    const { client, server } = pair();
    const f = client.seal(Buffer.from('tamper with me'));
    f[6] = f[6] ^ 1;
    rejects(() => server.receive(f), 'ERR_FRAME_AUTH');
  }
  {
    // A frame reflected back to its sender: directions have separate keys.
    const { client } = pair();
    const f = client.seal(Buffer.from('reflect'));
    rejects(() => client.receive(f), 'ERR_FRAME_AUTH');
  }
});

test('an oversize length prefix is refused before any of the frame is buffered', () => {
  const { server } = pair();
  const header = Buffer.alloc(4);
  header.writeUInt32BE(0xffff_ffff, 0);
  rejects(() => server.receive(header), 'ERR_FRAME_TOO_LARGE');
  const { client } = pair();
  rejects(() => client.seal(Buffer.alloc(MAX)), 'ERR_FRAME_TOO_LARGE');
  // Exactly at the limit is fine.
  const p = pair();
  assert.equal(p.server.receive(p.client.seal(Buffer.alloc(MAX - TAG_BYTES)))[0].length, MAX - TAG_BYTES);
});

test('garbage, a wrong preamble and short frames are malformed', () => {
  const s = () => new FrameSession({ keys, encrypt: false, role: 'server', maxFrameBytes: MAX });
  rejects(() => s().receive(Buffer.from('GET / HTTP/1.1\r\n\r\n')), 'ERR_FRAME_MALFORMED');
  rejects(() => s().receive(Buffer.from('KX')), 'ERR_FRAME_MALFORMED');
  const bad = Buffer.from(pair().client.preamble);
  bad[3] = 99; // wire version
  rejects(() => s().receive(bad), 'ERR_FRAME_MALFORMED');
  const { server } = pair();
  rejects(() => server.receive(Buffer.from([0, 0, 0, TAG_BYTES])), 'ERR_FRAME_MALFORMED');
  assert.equal(PREAMBLE_BYTES, 21);
});

test('a peer with another encrypt setting is refused with a clear message', () => {
  const client = new FrameSession({ keys, encrypt: true, role: 'client', maxFrameBytes: MAX });
  const server = new FrameSession({ keys, encrypt: false, role: 'server', maxFrameBytes: MAX });
  assert.throws(() => server.receive(client.preamble), /encrypt: true, this member encrypt: false/);
});

test('a truncated frame stays pending (the socket layer reports it at end of stream)', () => {
  const { client, server } = pair();
  const f = client.seal(Buffer.from('truncate me please'));
  assert.deepEqual(server.receive(f.subarray(0, f.length - 3)), []);
  assert.equal(server.pendingBytes, f.length - 3);
});

test('every use of the secret gets its own key', () => {
  const k = deriveClusterKeys('a-very-long-cluster-secret');
  assert.equal(new Set([k.heartbeatMac, k.frameMac, k.frameEnc].map((b) => b.toString('hex'))).size, 3);
  assert.deepEqual(deriveClusterKeys(Buffer.from('a-very-long-cluster-secret')), k);
});

test('with batches on both sides, one frame carries many messages under one tag; an older peer gets one per frame', () => {
  const { client, server } = pair();
  assert.equal(client.batched && server.batched, true, 'both offered batches');
  const msgs = [Buffer.from('a'), randomBytes(200), Buffer.alloc(0), randomBytes(20_000)];
  const frame = client.sealBatch(msgs);
  const single = msgs.reduce((n, m) => n + client.seal(m).length, 0);
  assert.ok(frame.length < single - 3 * (TAG_BYTES + 4) + 8, `one tag and length for the batch (${frame.length} vs ${single} bytes)`);
  // The single frames sealed above advanced the client's counter: a fresh pair checks the content.
  const fresh = pair();
  const got = fresh.server.receive(fresh.client.sealBatch(msgs));
  assert.equal(got.length, 1);
  assert.deepEqual(unbatch(got[0]), msgs);

  const old = new FrameSession({ keys, encrypt: false, role: 'client', maxFrameBytes: MAX, batch: false });
  const now = new FrameSession({ keys, encrypt: false, role: 'server', maxFrameBytes: MAX });
  now.receive(old.preamble);
  old.receive(now.preamble);
  assert.equal(now.batched, false, 'a peer without the flag gets no batches');
  assert.equal(old.batched, false);
});

test('a malformed batch (a length past the end, an endless varint) is a FrameError, never a crash', () => {
  for (const bad of [Buffer.from([5, 1, 2]), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80]), Buffer.from([0xff])]) {
    rejects(() => unbatch(bad), 'ERR_FRAME_MALFORMED');
  }
  assert.deepEqual(unbatch(Buffer.alloc(0)), []);
});

test('a batch item counts its length prefix: one byte up to 127, two up to 16,383, three beyond', () => {
  for (const n of [0, 1, 127, 128, 16_383, 16_384, 60_000]) {
    const m = Buffer.alloc(n);
    const { client } = pair();
    const sealed = client.sealBatch([m]);
    assert.equal(batchItemBytes(m), sealed.length - 4 - TAG_BYTES, `${n} bytes`);
  }
});

test('secret rotation: a member accepting [new, old] talks with one that knows only old, and one that knows only new', () => {
  const OLD = 'the-old-cluster-secret-0123';
  const NEW = 'the-new-cluster-secret-4567';
  const cases: [string[], string[], boolean][] = [
    [[OLD], [OLD, NEW], true], // first restart: new added second
    [[OLD, NEW], [NEW, OLD], true], // second: new moved first
    [[NEW, OLD], [NEW], true], // third: old dropped
    [[OLD], [NEW], false], // never: no common secret
  ];
  for (const encrypt of [false, true]) {
    for (const [a, b, talks] of cases) {
      for (const [clientSecrets, serverSecrets] of [[a, b], [b, a]]) {
        const client = new FrameSession({ keys: deriveClusterKeys(clientSecrets), encrypt, role: 'client', maxFrameBytes: MAX });
        const server = new FrameSession({ keys: deriveClusterKeys(serverSecrets), encrypt, role: 'server', maxFrameBytes: MAX });
        server.receive(client.preamble);
        client.receive(server.preamble);
        const hello = client.seal(Buffer.from('hello'));
        if (!talks) {
          rejects(() => server.receive(hello), 'ERR_FRAME_AUTH');
          continue;
        }
        assert.deepEqual(server.receive(hello), [Buffer.from('hello')], `${clientSecrets.join('+')} -> ${serverSecrets.join('+')}`);
        assert.deepEqual(client.receive(server.seal(Buffer.from('welcome'))), [Buffer.from('welcome')]);
        assert.deepEqual(server.receive(client.seal(Buffer.from('next'))), [Buffer.from('next')]);
      }
    }
  }
});
