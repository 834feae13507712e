/**
 * One sweep of `npm run mutate`, run in a scratch copy of the tree whose src/replication carries one
 * deliberate bug: seeds `--start`.. up to `--seeds` of one mode, stopping at the first that breaks a
 * promise. `--regressions all` replays the mode's regression seeds first (each as it was found, as a
 * sweep of `npm run simulate` does), `--regressions N` that one seed alone and nothing else. Prints
 * `seed N done` after each seed, then one JSON line: `{ killed, seed, regression, promise, oracle, what, seedsRun }`.
 */
import { parseArgs } from 'node:util';
import { runSchedule } from './world.js';
import type { Feature } from './features.js';
import { REGRESSIONS, regressionSchedule } from './regressions.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'backup' },
    start: { type: 'string', default: '1' },
    seeds: { type: 'string', default: '300' },
    features: { type: 'string', default: '' },
    regressions: { type: 'string', default: 'none' },
  },
});
const mode = values.mode === 'delta' ? 'delta' : 'backup';
const features = values.features.split(',').filter((s) => s !== '') as Feature[];
const start = Number(values.start);
const end = Number(values.seeds);
type Result = Awaited<ReturnType<typeof runSchedule>>;
/** The verdict a failing schedule gives, or undefined when it passed. */
function verdict(r: Result, seed: number, seedsRun: number, regression: boolean): Record<string, unknown> | undefined {
  const v = r.violations[0];
  if (v === undefined && r.errors.length === 0) return undefined;
  return { killed: true, seed, regression, seedsRun, promise: v?.promise ?? 'error', oracle: v?.oracle ?? (v === undefined ? 'crash' : 'history'), what: v?.what ?? r.errors[0].split('\n')[0] };
}

let out: Record<string, unknown> = { killed: false, seedsRun: 0 };
const only = values.regressions === 'all' || values.regressions === 'none' ? undefined : Number(values.regressions);
const replayed = values.regressions === 'none' ? [] : REGRESSIONS[mode].filter((x) => only === undefined || x.seed === only);
if (only !== undefined && replayed.length === 0) throw new Error(`no regression seed ${only} in ${mode} mode`);
for (const x of replayed) {
  // As `npm run simulate` replays it: the features and principals it was found with.
  const r = await runSchedule({ mode, ...regressionSchedule(x, features) });
  console.log(`regression ${x.seed} done`);
  const v = verdict(r, x.seed, 0, true);
  if (v !== undefined) {
    out = v;
    break;
  }
}
for (let seed = start; out.killed !== true && only === undefined && seed <= end; seed++) {
  const r = await runSchedule({ seed, mode, features });
  out.seedsRun = seed - start + 1;
  // For mutate.ts's watch: a seed that never ends is a hang, a slow machine is not.
  console.log(`seed ${seed} done`);
  const v = verdict(r, seed, seed - start + 1, false);
  if (v !== undefined) out = v;
}
console.log(JSON.stringify(out));
