/**
 * FramedSocket over a real loopback TCP connection: the messages written in one turn leave as one
 * batched frame, arrive whole and in order, and an older peer (no batch flag) still understands us.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { FramedSocket } from '../../src/cluster/framed-socket.js';
import { deriveClusterKeys } from '../../src/cluster/keys.js';
import { LogLimiter } from '../../src/cluster/log-limiter.js';
import { createMetrics } from '../../src/cluster/metrics.js';
import type { Envelope } from '../../src/cluster/messages.js';
import type { ClusterMetrics } from '../../src/cluster/types.js';

const keys = deriveClusterKeys('a-very-long-cluster-secret');

interface End {
  framed: FramedSocket;
  metrics: ClusterMetrics;
  got: Envelope[];
  ready: Promise<void>;
}

function wrap(socket: Socket, role: 'client' | 'server', batch: boolean): End {
  const metrics = createMetrics();
  const got: Envelope[] = [];
  let ready!: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  const framed = new FramedSocket({
    socket,
    role,
    keys,
    encrypt: false,
    maxFrameBytes: 1 << 20,
    metrics,
    logger: pino({ level: 'silent' }),
    rejectLog: new LogLimiter(60_000),
    batch,
    onReady: () => ready(),
    onEnvelope: (e) => got.push(e),
    onClose: () => undefined,
  });
  return { framed, metrics, got, ready: readyP };
}

async function connectedPair(t: { after(fn: () => void): void }, batch: { client: boolean; server: boolean }) {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const clientSocket = connect(port, '127.0.0.1');
  const [serverSocket] = await accepted;
  const client = wrap(clientSocket, 'client', batch.client);
  const srv = wrap(serverSocket, 'server', batch.server);
  t.after(() => {
    clientSocket.destroy();
    serverSocket.destroy();
    server.close();
  });
  await Promise.all([client.ready, srv.ready]);
  return { client, server: srv };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), `timed out waiting for ${what}`);
}

const envelopes = (n: number): Envelope[] =>
  Array.from({ length: n }, (_, i) => ({ kind: 'request', id: i + 1, type: 'test.echo', body: Buffer.alloc(i % 7, i) }));

test('messages written in one turn leave as one frame, arrive whole and in order', async (t) => {
  const { client, server } = await connectedPair(t, { client: true, server: true });
  const sent = envelopes(50);
  for (const e of sent) client.framed.send(e);
  await until('50 messages', () => server.got.length === 50);
  const plain = (list: Envelope[]) => list.map((e) => ({ ...e }));
  assert.deepEqual(plain(server.got), sent);
  const batchedBytes = client.metrics.bytesSent - 19; // minus the preamble
  // The same 50 one per frame, to an older peer:
  const old = await connectedPair(t, { client: true, server: false });
  for (const e of sent) old.client.framed.send(e);
  await until('50 messages to the older peer', () => old.server.got.length === 50);
  assert.deepEqual(plain(old.server.got), sent, 'an older peer gets one message per frame, and understands them');
  const singleBytes = old.client.metrics.bytesSent - 19;
  assert.ok(batchedBytes < singleBytes - 49 * 16, `one tag for the batch: ${batchedBytes} bytes vs ${singleBytes} one per frame`);
  // And the other way round: the older side sends single frames, and we read them.
  for (const e of sent) old.server.framed.send({ ...e, kind: 'reply' });
  await until('50 replies from the older peer', () => old.client.got.length === 50);
  assert.deepEqual(old.client.got.map((e) => e.id), sent.map((e) => e.id));
});

test('a batch larger than a frame is split into several frames, in order', async (t) => {
  const { client, server } = await connectedPair(t, { client: true, server: true });
  const big = Array.from({ length: 5 }, (_, i): Envelope => ({ kind: 'request', id: i + 1, type: 'test.big', body: Buffer.alloc(300_000, i) }));
  for (const e of big) client.framed.send(e);
  await until('5 large messages', () => server.got.length === 5);
  assert.deepEqual(server.got.map((e) => [e.id, e.body.length, e.body[0]]), big.map((e) => [e.id, 300_000, e.id - 1]));
  assert.throws(() => client.framed.send({ kind: 'request', id: 9, type: 'test.huge', body: Buffer.alloc(2 << 20) }), /over the limit/);
});
