import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyLock } from '../../src/replication/key-lock.js';
import { RateQueue } from '../../src/replication/rate-queue.js';

test('KeyLock runs the holders of one key one at a time, in order, and different keys in parallel', async () => {
  const lock = new KeyLock();
  const events: string[] = [];
  const step = (key: string, name: string, ms: number) =>
    lock.run(key, async () => {
      events.push(`${name}+`);
      await new Promise((r) => setTimeout(r, ms));
      events.push(`${name}-`);
    });
  await Promise.all([step('a', 'a1', 30), step('a', 'a2', 1), step('b', 'b1', 5)]);
  assert.deepEqual(events.filter((e) => e.startsWith('a')), ['a1+', 'a1-', 'a2+', 'a2-']);
  assert.ok(events.indexOf('b1-') < events.indexOf('a1-'), 'b did not wait for a');
  assert.equal(lock.busy('a'), false);
  await assert.rejects(lock.run('a', () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(await lock.run('a', () => Promise.resolve(7)), 7, 'a failure releases the key');
});

test('RateQueue keeps to its rate and concurrency, replaces queued duplicates, and reports drained', async (t) => {
  // The queue's timers are unref()ed (they never hold a member open): keep this test's loop alive.
  const keepAlive = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keepAlive));
  let running = 0;
  let peak = 0;
  const done: string[] = [];
  const q = new RateQueue<string>({
    perSecond: 10,
    concurrency: 2,
    work: async (x) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      done.push(x);
    },
  });
  const started = Date.now();
  for (let i = 0; i < 15; i++) q.push(`k${i}`, `v${i}`);
  q.push('k14', 'v14b');
  await q.drained();
  assert.equal(done.length, 15);
  assert.ok(done.includes('v14b') && !done.includes('v14'));
  assert.ok(peak <= 2);
  assert.ok(Date.now() - started >= 900, 'the 11th item waited for the next second');
});
