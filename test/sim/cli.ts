/**
 * `npm run simulate -- --mode backup|delta --seeds N [--start S]`: runs seeds S..S+N-1, prints the
 * rate, the schedules and the coverage of interesting events; exits non-zero on any violation,
 * printing the seed, the promise and the trace tail.
 * `npm run simulate -- --mode backup --seed N`: replays one seed, printing its whole event trace.
 */
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { runSchedule, type SimResult } from './world.js';
import { DEFAULT_FEATURES, LATER_ORACLES, NEMESES, ORACLES, selectFeatures, type Feature } from './features.js';
import { REGRESSIONS, regressionSchedule } from './regressions.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'backup' },
    seeds: { type: 'string' },
    start: { type: 'string', default: '1' },
    seed: { type: 'string' },
    members: { type: 'string' },
    rounds: { type: 'string' },
    clients: { type: 'string' },
    'drop-time': { type: 'string' },
    ack: { type: 'string', default: 'sync' },
    'max-report': { type: 'string', default: '20' },
    quiet: { type: 'boolean', default: false },
    jobs: { type: 'string', default: '1' },
    // Replays a schedule found before sessions by user (the regression seeds) exactly.
    'no-principals': { type: 'boolean', default: false },
    backups: { type: 'string' },
    // Routes running the previous release (sim.test.ts's rolling upgrade: n1,n2 with --members 3).
    'older-release': { type: 'string' },
    'expected-members': { type: 'boolean', default: false },
    // Oracles and nemeses beyond the original ones (features.ts): all by default.
    enable: { type: 'string' },
    disable: { type: 'string' },
    'list-features': { type: 'boolean', default: false },
    // Skip the regression seeds a sweep runs first.
    'no-regressions': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  process.stdout.write(`npm run simulate -- [options]: the replication protocol in a deterministic simulation (test/sim/README.md).
  --mode backup|delta      (backup)
  --seeds N [--start S]    a sweep of seeds S..S+N-1 (after the regression seeds, unless --no-regressions)
  --seed N                 replay one seed, printing its whole trace
  --jobs N                 worker threads (same results as 1)
  --enable a,b / --disable a,b   oracles and nemeses (--list-features names them; all on by default)
  --members N  --rounds N  --clients N  --drop-time MS  --ack sync|async  --backups K  --expected-members
  --older-release n1,n2    routes running the previous release
  --no-principals          replay a seed found before sessions by user
  --max-report N  --quiet
`);
  process.exit(0);
}

if (values['list-features']) {
  for (const [k, v] of Object.entries({ ...ORACLES, ...LATER_ORACLES })) console.log(`oracle   ${k.padEnd(16)} ${v}`);
  for (const [k, v] of Object.entries(NEMESES)) console.log(`nemesis  ${k.padEnd(16)} ${v}`);
  process.exit(0);
}
let features: Feature[];
try {
  features = selectFeatures(DEFAULT_FEATURES, values.enable, values.disable);
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}

const mode: 'backup' | 'delta' | undefined = values.mode === 'delta' ? 'delta' : values.mode === 'backup' ? 'backup' : undefined;
if (mode === undefined) {
  console.error(`--mode must be backup or delta, not ${values.mode}`);
  process.exit(2);
}
const common = {
  mode,
  ack: values.ack === 'async' ? ('async' as const) : ('sync' as const),
  ...(values.members !== undefined ? { members: Number(values.members) } : {}),
  ...(values.rounds !== undefined ? { rounds: Number(values.rounds) } : {}),
  ...(values.clients !== undefined ? { clients: Number(values.clients) } : {}),
  ...(values['drop-time'] !== undefined ? { dropTime: Number(values['drop-time']) } : {}),
  ...(values['no-principals'] ? { principals: false } : {}),
  ...(values.backups !== undefined ? { backups: Number(values.backups) } : {}),
  ...(values['older-release'] !== undefined ? { olderRelease: values['older-release'].split(',') } : {}),
  ...(values['expected-members'] ? { expectedMembers: true } : {}),
  features,
};

function report(r: SimResult, tail: boolean): void {
  console.log(`seed ${r.seed} (${r.mode}): ${r.violations.length} violation(s), ${r.errors.length} error(s); trace ${r.hash}`);
  for (const e of r.errors.slice(0, 3)) console.log(`  error (would crash the member): ${e.split('\n').slice(0, 4).join(' | ')}`);
  console.log(`  schedule: ${r.schedule.join('; ')}`);
  const seen = new Set<string>();
  for (const v of r.violations) {
    const key = `${v.promise}:${v.base}`;
    if (seen.has(key)) continue;
    seen.add(key);
    console.log(`  promise ${v.promise}${v.oracle !== undefined ? ` (${v.oracle})` : ''} at ${((v.at - 1_800_000_000_000) / 1000).toFixed(3)}s: ${v.what}`);
  }
  if (tail && r.violations.length > 0) {
    console.log('  trace tail:');
    for (const l of r.traceTail.slice(-40)) console.log(`    ${l}`);
    console.log(`  replay: npm run simulate -- --mode ${r.mode} --seed ${r.seed}`);
  }
}

async function main(): Promise<void> {
  if (values.seed !== undefined) {
    const r = await runSchedule({ ...common, seed: Number(values.seed), traceAll: true, echo: (l) => console.log(l) });
    console.log('');
    report(r, false);
    console.log(`  coverage: ${JSON.stringify(r.coverage)}`);
    console.log(`  ${r.events} events, ${r.ops} client requests, ${(r.simMs / 1000).toFixed(1)} s simulated; globals read: Date.now ${r.globals.dateNow}, timers ${r.globals.timers}`);
    process.exitCode = r.violations.length > 0 || r.errors.length > 0 ? 1 : 0;
    return;
  }
  const n = Number(values.seeds ?? '100');
  const start = Number(values.start);
  const coverage: Record<string, number> = {};
  const byPromise: Record<string, number> = {};
  const failing: SimResult[] = [];
  let events = 0;
  let ops = 0;
  let simMs = 0;
  const t0 = process.hrtime.bigint();
  let lastPrint = t0;
  let completed = 0;
  const realTime = { dateNow: 0, timers: 0 };
  const take = (r: SimResult) => {
    completed++;
    events += r.events;
    ops += r.ops;
    simMs += r.simMs;
    realTime.dateNow += r.globals.dateNow;
    realTime.timers += r.globals.timers;
    for (const [k, v] of Object.entries(r.coverage)) coverage[k] = (coverage[k] ?? 0) + v;
    if (r.violations.length > 0 || r.errors.length > 0) {
      failing.push(r);
      if (r.errors.length > 0) byPromise.errors = (byPromise.errors ?? 0) + 1;
      for (const p of new Set(r.violations.map((v) => v.promise))) byPromise[p] = (byPromise[p] ?? 0) + 1;
    }
    const now = process.hrtime.bigint();
    if (!values.quiet && now - lastPrint > 5_000_000_000n) {
      lastPrint = now;
      const s = Number(now - t0) / 1e9;
      console.log(`  ${completed}/${n} seeds, ${(completed / s).toFixed(1)} schedules/s, ${failing.length} failing`);
    }
  };
  // The regression seeds are schedules of the default shape: only a sweep of that shape replays them.
  const shaped = ['members', 'rounds', 'clients', 'drop-time', 'backups', 'older-release'].some((k) => values[k as keyof typeof values] !== undefined) || values.ack !== 'sync' || values['expected-members'];
  if (!values['no-regressions'] && !shaped) {
    // The seeds that found a bug, replayed as found (LEGACY features, principals as recorded).
    const regressions = REGRESSIONS[mode!];
    let bad = 0;
    for (const x of regressions) {
      const r = await runSchedule({ ...common, ...regressionSchedule(x, features) });
      if (r.violations.length > 0 || r.errors.length > 0) {
        bad++;
        console.log(`regression seed ${x.seed} (${x.bug}) FAILS:`);
        report(r, true);
      }
    }
    console.log(`${mode}: ${regressions.length} regression seeds, ${bad} failing`);
    if (bad > 0) process.exitCode = 1;
  }
  const jobs = Math.max(1, Number(values.jobs));
  if (jobs === 1) {
    for (let seed = start; seed < start + n; seed++) take(await runSchedule({ ...common, seed }));
  } else {
    // Seeds are independent: each worker thread has its own globals and simulation.
    let next = start;
    await Promise.all(
      Array.from({ length: jobs }, () => {
        // tsx's loader is per thread: register it in the worker before loading the TypeScript entry.
        const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./worker.ts', import.meta.url).href)}); });`;
        const w = new Worker(boot, { eval: true, workerData: common });
        return new Promise<void>((resolve, reject) => {
          const feed = () => w.postMessage(next < start + n ? next++ : null);
          w.on('message', (r: SimResult) => {
            take(r);
            feed();
          });
          w.on('error', reject);
          w.on('exit', () => resolve());
          feed();
        });
      }),
    );
    failing.sort((a, b) => a.seed - b.seed);
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`\n${mode}: ${n} seeds (${start}..${start + n - 1}) in ${secs.toFixed(1)} s: ${(n / secs).toFixed(1)} schedules/s, ${Math.round(events / secs)} events/s`);
  console.log(`  ${ops} client requests, ${(simMs / 1000 / 3600).toFixed(2)} simulated hours`);
  // Reads of the process-wide clock and timers by the code under test, routed to the simulation by globals.ts.
  console.log(`  code under test read Date.now ${realTime.dateNow} times and set ${realTime.timers} global timers (0 once it uses the injected Clock only)`);
  console.log('  coverage:');
  for (const [k, v] of Object.entries(coverage).sort()) console.log(`    ${String(v).padStart(8)}  ${k}`);
  console.log(`  failing seeds: ${failing.length}; by promise: ${JSON.stringify(byPromise)}`);
  if (failing.length > 0) console.log(`  all failing: ${failing.map((r) => r.seed).join(' ')}`);
  const max = Number(values['max-report']);
  for (const r of failing.slice(0, max)) report(r, r === failing[0]);
  if (failing.length > 0) process.exitCode = 1;
}

await main();
