/**
 * One sweep of `npm run mutate`, run in a scratch copy of the tree whose src/replication carries one
 * deliberate bug: seeds `--start`.. up to `--seeds` of one mode, stopping at the first that breaks a
 * promise. Prints `seed N done` after each seed, then one JSON line: `{ killed, seed, promise, oracle, what, seedsRun }`.
 */
import { parseArgs } from 'node:util';
import { runSchedule } from './world.js';
import type { Feature } from './features.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'backup' },
    start: { type: 'string', default: '1' },
    seeds: { type: 'string', default: '300' },
    features: { type: 'string', default: '' },
  },
});
const mode = values.mode === 'delta' ? 'delta' : 'backup';
const features = values.features.split(',').filter((s) => s !== '') as Feature[];
const start = Number(values.start);
const end = Number(values.seeds);
let out: Record<string, unknown> = { killed: false, seedsRun: 0 };
for (let seed = start; seed <= end; seed++) {
  const r = await runSchedule({ seed, mode, features });
  out.seedsRun = seed - start + 1;
  // For mutate.ts's watch: a seed that never ends is a hang, a slow machine is not.
  console.log(`seed ${seed} done`);
  const v = r.violations[0];
  if (v !== undefined || r.errors.length > 0) {
    out = { killed: true, seed, seedsRun: seed - start + 1, promise: v?.promise ?? 'error', oracle: v?.oracle ?? (v === undefined ? 'crash' : 'history'), what: v?.what ?? r.errors[0].split('\n')[0] };
    break;
  }
}
console.log(JSON.stringify(out));
