/**
 * Request/acknowledgement under load between two member processes: every reply correct, in
 * bounded time, with and without encryption.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemberSet, randomMulticast, waitForFullMesh } from '../helpers/cluster-harness.js';

for (const encrypt of [false, true]) {
  test(`5,000 requests with 64 in flight all get their own reply (encrypt: ${encrypt})`, async (t) => {
    const set = new MemberSet();
    t.after(() => set.cleanup());
    const multicast = randomMulticast();
    const [a, b] = await Promise.all([set.start({ route: 'a', multicast, encrypt }), set.start({ route: 'b', multicast, encrypt })]);
    await waitForFullMesh([a, b], 5000);
    const r = await a.command({ cmd: 'load', route: 'b', count: 5000, concurrency: 64, size: 1024 }, 60_000);
    t.diagnostic(`${r.ok as number} replies in ${(r.elapsedMs as number).toFixed(0)} ms (${Math.round((5000 / (r.elapsedMs as number)) * 1000)} req/s)`);
    assert.deepEqual(r.errors, []);
    assert.equal(r.ok, 5000);
    assert.ok((r.elapsedMs as number) < 30_000, `took ${r.elapsedMs as number} ms`);
    const m = (await a.command({ cmd: 'metrics' })).metrics as { requestLatencyMs: { count: number }; requestsTimedOut: number };
    assert.equal(m.requestLatencyMs.count, 5000);
    assert.equal(m.requestsTimedOut, 0);
    assert.equal(a.messages.some((x) => x.event === 'member-suspected'), false, 'load never made a member suspect');
  });
}
