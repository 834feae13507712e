/**
 * The deterministic simulator in CI: the real replication protocol (managers, store adapter, route
 * binder, codec) over a simulated network and clock, a bounded number of seeds per mode, every
 * history checked against DESIGN.md "Promises under faults"; and a seed replays exactly.
 * More seeds: `npm run simulate -- --mode backup --seeds 10000`; one seed's trace: `--seed N`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSchedule, type SimResult } from './world.js';

const SEEDS = Number(process.env.SIM_SEEDS ?? 300);

/**
 * Seeds of 1..300 that still break a promise on this protocol, each an open bug (issue 12's note has
 * the trace reading). They are listed so that CI fails on any new failure, and also when one of these
 * passes again (then it is fixed: move it to a regression test and out of this list). Replay one with
 * `npm run simulate -- --mode <mode> --seed N`.
 */
const KNOWN_FAILING: Record<'backup' | 'delta', number[]> = {
  // Promise 1: n2 takes the session from n3 (its owner at epoch 5), and n3 serves it again at epoch 7.
  backup: [80],
  // Promise 1: on a member that restarted (n1#2), a read returns a value older than a write it
  // acknowledged 1.7 s before.
  delta: [112],
};

function describeFailures(failing: SimResult[]): string {
  return failing
    .slice(0, 10)
    .map((r) => {
      const v = r.violations[0];
      const what = v === undefined ? `error: ${r.errors[0].split('\n')[0]}` : `promise ${v.promise}: ${v.what}`;
      return `seed ${r.seed} (${r.mode}): ${what}\n  replay: npm run simulate -- --mode ${r.mode} --seed ${r.seed}`;
    })
    .join('\n');
}

test('the checker finds nothing against a linearizable store, and finds each promise it is shown broken', async () => {
  for (let seed = 1; seed <= 40; seed++) {
    const r = await runSchedule({ seed, mode: seed % 2 === 0 ? 'backup' : 'delta', reference: 'none' });
    assert.deepEqual(r.violations.map((v) => `seed ${seed}: promise ${v.promise}: ${v.what}`), [], 'a false alarm against a correct store');
  }
  const broken = [
    ['lose-writes', 1],
    ['resurrect', 2],
    ['forget-sessions', 3],
    ['phantom', 4],
  ] as const;
  for (const [fault, promise] of broken) {
    let found = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const r = await runSchedule({ seed, mode: 'backup', reference: fault });
      if (r.violations.some((v) => v.promise === promise)) found++;
    }
    assert.ok(found >= 5, `a store that breaks promise ${promise} (${fault}) was caught in only ${found} of 10 seeds`);
  }
});

for (const mode of ['backup', 'delta'] as const) {
  test(`${mode} mode: a seed replays exactly (same trace hash twice)`, async () => {
    const a = await runSchedule({ seed: 7, mode });
    const b = await runSchedule({ seed: 7, mode });
    assert.ok(a.events > 100, `the schedule ran (${a.events} events)`);
    assert.equal(a.hash, b.hash, 'two runs of one seed gave different traces: something reads real time or Math.random');
    assert.equal(a.events, b.events);
    const c = await runSchedule({ seed: 8, mode });
    assert.notEqual(a.hash, c.hash, 'different seeds must give different schedules');
  });

  test(`${mode} mode: ${SEEDS} simulated fault schedules keep every promise`, { timeout: 10 * 60_000 }, async () => {
    const failing: SimResult[] = [];
    let ops = 0;
    const coverage: Record<string, number> = {};
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = await runSchedule({ seed, mode });
      ops += r.ops;
      for (const [k, v] of Object.entries(r.coverage)) coverage[k] = (coverage[k] ?? 0) + v;
      if (r.violations.length > 0 || r.errors.length > 0) failing.push(r);
    }
    // A run that injected nothing and raced nothing proves nothing.
    assert.ok(ops > SEEDS * 20, `clients made requests (${ops})`);
    assert.ok((coverage['concurrent requests to one session at two members'] ?? 0) > 0, 'concurrent requests happened');
    assert.ok(Object.keys(coverage).filter((k) => k.startsWith('fault: ')).length >= 4, `faults of every kind ran: ${JSON.stringify(coverage)}`);
    const known = SEEDS === 300 ? KNOWN_FAILING[mode] : [];
    const unexpected = failing.filter((r) => !known.includes(r.seed));
    assert.equal(unexpected.length, 0, `${unexpected.length} of ${SEEDS} seeds broke a promise:\n${describeFailures(unexpected)}`);
    const fixed = known.filter((seed) => !failing.some((r) => r.seed === seed));
    assert.deepEqual(fixed, [], `known-failing seeds now pass: make each a regression test and take it off KNOWN_FAILING`);
  });
}
