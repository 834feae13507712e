/**
 * The deterministic simulator in CI: the real replication protocol (managers, store adapter, route
 * binder, codec) over a simulated network and clock, a bounded number of seeds per mode, every
 * history checked against DESIGN.md "Promises under faults"; and a seed replays exactly.
 * More seeds: `npm run simulate -- --mode backup --seeds 10000`; one seed's trace: `--seed N`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSchedule, type SimResult } from './world.js';
import { REGRESSIONS } from './regressions.js';
import { CI_FEATURES, LEGACY } from './features.js';

const ciLegacy = (mode: 'backup' | 'delta') => LEGACY.filter((f) => CI_FEATURES[mode].includes(f));

// 150 per mode keeps this file near 90 s on an idle 2-core machine with every CI oracle and nemesis on
// (each schedule now also probes every session at every member once quiet, and some pause 60 s).
const SEEDS = Number(process.env.SIM_SEEDS ?? 150);

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

  test(`${mode} mode: ${SEEDS} simulated fault schedules keep every promise (and the regression seeds)`, { timeout: 10 * 60_000 }, async () => {
    const failing: SimResult[] = [];
    let ops = 0;
    const coverage: Record<string, number> = {};
    const seeds = Array.from({ length: SEEDS }, (_, i) => i + 1);
    // The regression seeds replay the schedules that found their bug: those had no principal index.
    const runs = [...seeds.map((seed) => ({ seed, mode, features: CI_FEATURES[mode] })), ...REGRESSIONS[mode].map((x) => ({ seed: x.seed, mode, features: x.features ?? ciLegacy(mode), principals: x.principals ?? false }))];
    for (const run of runs) {
      const r = await runSchedule(run);
      ops += r.ops;
      for (const [k, v] of Object.entries(r.coverage)) coverage[k] = (coverage[k] ?? 0) + v;
      if (r.violations.length > 0 || r.errors.length > 0) failing.push(r);
    }
    // A run that injected nothing and raced nothing proves nothing.
    assert.ok(ops > SEEDS * 20, `clients made requests (${ops})`);
    assert.ok((coverage['concurrent requests to one session at two members'] ?? 0) > 0, 'concurrent requests happened');
    assert.ok(Object.keys(coverage).filter((k) => k.startsWith('fault: ')).length >= 4, `faults of every kind ran: ${JSON.stringify(coverage)}`);
    assert.ok((coverage['log out everywhere (destroySessions) that destroyed a session'] ?? 0) > 0, 'clients logged out everywhere');
    if (CI_FEATURES[mode].includes('availability')) assert.ok((coverage['availability probes (reads at every member once quiet)'] ?? 0) > 0, 'the availability oracle probed');
    assert.ok((coverage.takeovers ?? 0) > 0, 'sessions were taken over (the route binder ran)');
    assert.equal(failing.length, 0, `${failing.length} of ${runs.length} schedules broke a promise:\n${describeFailures(failing)}`);
  });
}

test('delta mode, a rolling upgrade: members of the previous release (no packed state pages) serve whole copies to newer joiners, and no promise breaks', async () => {
  const coverage: Record<string, number> = {};
  const failing: SimResult[] = [];
  for (let seed = 1; seed <= 60; seed++) {
    // n1 and n2 run the previous release; joiners and restarts of n3 transfer from them.
    const r = await runSchedule({ seed, mode: 'delta', members: 3, olderRelease: ['n1', 'n2'], features: ciLegacy('delta') });
    for (const [k, v] of Object.entries(r.coverage)) coverage[k] = (coverage[k] ?? 0) + v;
    if (r.violations.length > 0 || r.errors.length > 0) failing.push(r);
  }
  assert.ok((coverage['state transfer page of whole copies (from an older release)'] ?? 0) > 0, `a newer member fell back to whole copies: ${JSON.stringify(coverage)}`);
  assert.ok((coverage['state transfer page of packed copies'] ?? 0) > 0, 'newer members exchanged packed pages among themselves');
  assert.equal(failing.length, 0, `${failing.length} of 60 schedules broke a promise:\n${describeFailures(failing)}`);
});
