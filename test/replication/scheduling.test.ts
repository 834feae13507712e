import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyLock } from '../../src/replication/key-lock.js';
import { RateQueue } from '../../src/replication/rate-queue.js';

test('KeyLock runs the holders of one key one at a time, in order, and different keys in parallel', async () => {
  const lock = new KeyLock();
  const events: string[] = [];
  // Gates the test opens itself: the order is the lock's, never a race of timers on a loaded machine.
  const gate = () => {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    return { open, opened };
  };
  const holdA1 = gate();
  const step = (key: string, name: string, until: Promise<void>) =>
    lock.run(key, async () => {
      events.push(`${name}+`);
      await until;
      events.push(`${name}-`);
    });
  const a1 = step('a', 'a1', holdA1.opened);
  const a2 = step('a', 'a2', Promise.resolve());
  // b1 runs to its end while a1 still holds key a: different keys do not wait for each other.
  await step('b', 'b1', Promise.resolve());
  assert.deepEqual(events, ['a1+', 'b1+', 'b1-'], 'a2 waits for a1; b1 did not');
  assert.equal(lock.busy('a'), true);
  holdA1.open();
  await Promise.all([a1, a2]);
  assert.deepEqual(events.filter((e) => e.startsWith('a')), ['a1+', 'a1-', 'a2+', 'a2-']);
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

test('KeyLock bounds its line: past maxWaiting callers are refused at once, and a caller gives up after its waitMs without running', async (t) => {
  // The lock's timers are unref()ed, as every timer of a member: keep this test's loop alive.
  const keepAlive = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keepAlive));
  const lock = new KeyLock({ maxWaiting: 2, busy: (key, why) => Object.assign(new Error(`${key}: ${why}`), { code: 'BUSY' }) });
  let open!: () => void;
  const held = lock.run('s', () => new Promise<void>((resolve) => (open = resolve)));
  await new Promise((resolve) => setImmediate(resolve)); // the holder runs: it waits no more
  const ran: string[] = [];
  const w1 = lock.run('s', () => Promise.resolve(void ran.push('w1')));
  const w2 = lock.run('s', () => Promise.resolve(void ran.push('w2')), 20);
  await assert.rejects(lock.run('s', () => Promise.resolve(void ran.push('w3'))), /2 callers already wait/);
  await assert.rejects(w2, /not free within 20 ms/);
  assert.equal(ran.length, 0, 'a caller that gave up never runs');
  const w4 = lock.run('s', () => Promise.resolve(void ran.push('w4')));
  open();
  await Promise.all([held, w1, w4]);
  assert.deepEqual(ran, ['w1', 'w4'], 'the rest keep their order; the refused turn passed at once');
  assert.equal(lock.busy('s'), false);
});
