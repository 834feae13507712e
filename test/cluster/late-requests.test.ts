/**
 * A request that arrives after its sender gave up on it is refused unrun (`late-requests.ts`, protocol
 * version 3). The estimate alone, the envelope that carries the send time, a frozen receiver, and the
 * case that made it necessary: a request held by a one-way cut (two network namespaces, nftables),
 * read by the peer seconds after its sender reported it failed (the simulator's delta seeds 26085 and
 * 31371: a destroyed session's copy read at the heal). That test needs root, iproute2 and nftables;
 * with REQUIRE_SYSTEM_TESTS=1 (CI) their absence is a failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnvelopeReader, EnvelopeWriter } from '../../src/cluster/envelope-codec.js';
import { MAX_RATE_ERROR, SenderClock, WINDOW_MS } from '../../src/cluster/late-requests.js';
import type { ClusterChannel, MemberInfo } from '../../src/cluster/index.js';
import { MemberSet, channelHarness, channelOptions, randomMulticast, waitForEvent, waitForFullMesh } from '../helpers/cluster-harness.js';
import type { MemberProcess } from '../helpers/cluster-harness.js';
import { BridgeNetwork, namespacesAvailable } from '../helpers/netns.js';
import type { NetnsHost } from '../helpers/netns.js';
import { dropTcpFrom, heal, nftUnavailable } from '../chaos/partition.js';

test('the sender clock: offset from the fastest request, never late on the first, late only past the deadline', () => {
  const c = new SenderClock();
  // Sender's clock reads 1000 less than ours; delays 5, 2 and 9 ms.
  assert.equal(c.arrive(100, 200, 1105), 0, 'the first request sets the offset');
  assert.ok(c.arrive(200, 200, 1202) <= 0);
  assert.ok(c.arrive(300, 200, 1309) <= 0, 'slower than the fastest, still in time');
  // Sent at 400 with 200 to wait: its sender gives up at 600 (its clock), 1600 on ours (+2 ms delay).
  assert.ok(c.lateBy(400, 200, 1590) <= 0, 'before the deadline');
  const late = c.lateBy(400, 200, 1900);
  assert.ok(late > 290 && late <= 298, `about 298 ms late less the rate allowance: ${late}`);
  // The estimate never puts the sender ahead of the truth: a request delayed just under its wait passes.
  assert.ok(c.lateBy(500, 200, 1500 + 2 + 199) <= 0);
});

test('the sender clock keeps the estimate from before a partition, and allows for the clocks\' rates', () => {
  const c = new SenderClock();
  for (let t = 0; t < 5000; t += 250) c.arrive(t, 300, t + 1000 + 1);
  // Nothing for 60 s (a partition), then what it held: sent at 4900, read at 65 s on our clock.
  const held = c.arrive(4900, 300, 66_000);
  assert.ok(held > 59_000, `held request refused: ${held}`);
  // The window turned on that sample, yet the next held one is judged on the old estimate still.
  assert.ok(c.arrive(4950, 300, 66_001) > 59_000);
  // Fresh requests after the heal are in time.
  assert.ok(c.arrive(65_000, 300, 66_003) <= 0);
  // A sender clock 0.5 % slower than ours, 15 s after the last fresh sample: no false refusals.
  const slow = new SenderClock();
  for (let t = 0; t <= WINDOW_MS; t += 100) slow.arrive(t * 0.995, 100, t + 1);
  const t = WINDOW_MS + 15_000;
  assert.ok(slow.lateBy(t * 0.995, 100, t + 1) <= 0, `drift ${0.005} under the allowance ${MAX_RATE_ERROR}`);
});

test('version 3 carries a request\'s send time and wait; version 2 neither writes nor reads it', () => {
  let now = 5000.4;
  const w = new EnvelopeWriter({ route: () => 'a', monotonic: () => now });
  const r = new EnvelopeReader({ route: () => 'a' });
  w.version = 3;
  r.version = 3;
  const a = r.decode(w.encode({ kind: 'request', id: 1, type: 'session.copy', body: Buffer.from('x'), deadline: 5300 }));
  assert.deepEqual(a.sent, { at: 5000, leftMs: 300 });
  now = 5100;
  const b = r.decode(w.encode({ kind: 'request', id: 2, type: 'app.type', body: Buffer.from('y'), deadline: 5050 }));
  assert.deepEqual(b.sent, { at: 5100, leftMs: 0 }, 'written after its deadline: nothing left to wait');
  assert.equal(r.decode(w.encode({ kind: 'reply', id: 1, type: '', body: Buffer.from('ok') })).sent, undefined);
  const w2 = new EnvelopeWriter({ route: () => 'a' });
  w2.version = 2;
  const bytes = w.encode({ kind: 'request', id: 3, type: 'session.copy', body: Buffer.from('z'), deadline: 6000 });
  const v2 = w2.encode({ kind: 'request', id: 3, type: 'session.copy', body: Buffer.from('z'), deadline: 6000 });
  assert.ok(bytes.length > v2.length, 'version 2 leaves the send time out');
  const r2 = new EnvelopeReader({ route: () => 'a' });
  r2.version = 2;
  assert.equal(r2.decode(v2).sent, undefined);
  const r3 = new EnvelopeReader({ route: () => 'a' });
  r3.version = 2;
  assert.throws(() => r3.decode(bytes), /malformed compact envelope: bad head byte/);
});

/** An in-process channel `a` and a member process `b` on loopback multicast, each seeing the other. */
async function channelAndProcess(t: Parameters<typeof channelHarness>[0]) {
  const group = randomMulticast();
  const set = new MemberSet();
  t.after(() => set.cleanup());
  const a: ClusterChannel = channelHarness(t)(channelOptions('a', { multicast: group }));
  await a.start();
  const added = waitForEvent<[MemberInfo]>(a, 'member-added', (m) => m.route === 'b', 15_000);
  const b = await set.start({ route: 'b', multicast: group });
  await added;
  await b.waitEvent('member-added', 'a', 5000);
  return { a, b, bId: a.members().find((m) => m.route === 'b')!.id };
}

const noted = (m: MemberProcess) => m.messages.filter((x) => x.type === 'noted').map((x) => x.body);
const refusedLate = async (m: MemberProcess) => ((await m.command({ cmd: 'metrics' })).metrics as { requestsRefusedLate: number }).requestsRefusedLate;

test('a frozen receiver reads a request its sender gave up on and refuses it unrun', async (t) => {
  const { a, b, bId } = await channelAndProcess(t);
  for (const x of ['one', 'two']) assert.equal((await a.request(bId, 'note', Buffer.from(x))).toString(), x);
  process.kill(b.pid, 'SIGSTOP');
  try {
    await assert.rejects(a.request(bId, 'note', Buffer.from('while frozen'), { timeoutMs: 300 }), { code: 'ERR_REQUEST_TIMEOUT' });
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    process.kill(b.pid, 'SIGCONT');
  }
  assert.equal((await a.request(bId, 'note', Buffer.from('after'))).toString(), 'after');
  assert.deepEqual(noted(b), ['one', 'two', 'after'], 'the request read after its deadline did not run');
  assert.equal(await refusedLate(b), 1);
  assert.equal(a.metrics().requestsRefusedLate, 0);
});

test('a request held by a one-way cut reaches the peer after the heal and is refused unrun', async (t) => {
  if (!namespacesAvailable(t, 'the held-request test')) return;
  const noNft = nftUnavailable();
  if (noNft !== undefined) {
    if (process.env.REQUIRE_SYSTEM_TESTS === '1') throw new Error(`REQUIRE_SYSTEM_TESTS=1 but ${noNft}`);
    t.skip(noNft);
    return;
  }
  const net = BridgeNetwork.create(2, { prefix: '10.203', tag: 'l' });
  const set = new MemberSet();
  t.after(async () => {
    await set.cleanup();
    net.destroy();
  });
  const group = randomMulticast();
  const [h1, h2] = net.hosts as [NetnsHost, NetnsHost];
  const [m1, m2] = (await Promise.all(
    net.hosts.map((h, i) => set.start({ route: `host${i + 1}`, multicast: { ...group, interface: h.address }, receiver: { host: h.address, port: 4000 } }, h.exec)),
  )) as [MemberProcess, MemberProcess];
  await waitForFullMesh([m1, m2], 5000);
  for (const body of ['before the cut', 'and again']) {
    const r = await m1.command({ cmd: 'request', route: 'host2', type: 'note', body });
    assert.equal(r.ok, true, JSON.stringify(r));
  }
  dropTcpFrom(h2, h1);
  let healed = false;
  try {
    const held = await m1.command({ cmd: 'request', route: 'host2', type: 'note', body: 'held by the cut', timeoutMs: 800 });
    assert.equal(held.code, 'ERR_REQUEST_TIMEOUT', JSON.stringify(held));
    heal([h2]);
    healed = true;
  } finally {
    if (!healed) heal([h2]);
  }
  // TCP's retransmission backoff after ~1 s of loss sends again within a few seconds: the held request
  // is read then, on the same connection (nothing reset it).
  const deadline = Date.now() + 15_000;
  while ((await refusedLate(m2)) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.equal(await refusedLate(m2), 1, 'host2 read the held request and refused it');
  assert.deepEqual(noted(m2), ['before the cut', 'and again'], 'host2 never ran the request host1 gave up on');
  const after = await m1.command({ cmd: 'request', route: 'host2', type: 'note', body: 'after the heal' });
  assert.equal(after.ok, true, JSON.stringify(after));
  assert.equal(noted(m2).at(-1), 'after the heal');
  for (const m of [m1, m2]) assert.deepEqual(m.messages.filter((x) => x.event === 'member-removed'), [], `${m.route} removed nobody`);
});
