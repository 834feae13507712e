/**
 * `npm run mutate -- [--seeds N] [--start S] [--only id,id] [--modes backup,delta] [--jobs J]`: applies each
 * deliberate bug of mutants.ts to a scratch copy of src/ (never to the working tree), runs the
 * simulator's sweep in each mode the bug touches (the mode's regression seeds first, each as it was
 * found, as `npm run simulate` does, unless `--no-regressions` or `--start` past 1), then up to N seeds with every oracle and nemesis
 * (features.ts; those that find open defects of src/ too, whose failing seeds are set aside by
 * running them on the unmutated code), and reports for each mutant and mode the seed that killed it (a
 * seed that also fails on the unmutated code does not count) or that it survived, and the time. Exits
 * non-zero if any survived.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { MUTANTS, type Mutant, type Patch } from './mutants.js';
import { ALL_FEATURES } from './features.js';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
/** Sweeps running now, and the scratch trees: ended and removed on SIGINT/SIGTERM too. */
const running = new Set<ChildProcess>();
const scratch = new Set<string>();
function cleanUp(): void {
  for (const c of running) c.kill('SIGKILL');
  for (const t of scratch) rmSync(t, { recursive: true, force: true });
  scratch.clear();
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUp();
    process.exit(130);
  });
}

export interface MutantOutcome {
  id: string;
  mode: 'backup' | 'delta';
  killed: boolean;
  seed?: number;
  /** Killed by a regression seed (replayed before the sweep), not by a seed of the sweep. */
  regression?: boolean;
  promise?: string;
  oracle?: string;
  what?: string;
  seedsRun: number;
  ms: number;
  /** Seeds that failed on the unmutated code too (not counted as kills). */
  cleanFailures: number[];
}

export interface MutateOptions {
  /** The last seed swept. */
  seeds: number;
  /** The first seed swept (1): a sweep continued past seeds a mutant survived. */
  start?: number;
  only?: readonly string[];
  modes?: readonly ('backup' | 'delta')[];
  jobs?: number;
  /** Replay the mode's regression seeds before the sweep (true; only when the sweep starts at 1). */
  regressions?: boolean;
  /**
   * Wall-clock ms one seed may run before its sweep counts as hung (a kill: a hung run is a failure).
   * Per seed, not per sweep: a sweep slowed by a loaded machine is not a hang.
   */
  timeoutMs?: number;
  log?: (line: string) => void;
}

/** A scratch copy of what the simulator needs: src/, test/sim/, package.json, tsconfig, node_modules (linked). */
function scratchTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ksc-mutant-'));
  cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true });
  cpSync(join(ROOT, 'test/sim'), join(dir, 'test/sim'), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json']) cpSync(join(ROOT, f), join(dir, f));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  scratch.add(dir);
  return dir;
}

/** Every patch of `m`, its own first. */
export function patchesOf(m: Mutant): Patch[] {
  return [{ file: m.file, find: m.find, replace: m.replace }, ...(m.also ?? [])];
}

/** Applies patch `p` of mutant `id` to `text`, which must contain its `find` exactly once. */
export function applyPatch(id: string, p: Patch, text: string): string {
  const at = text.indexOf(p.find);
  if (at < 0 || text.indexOf(p.find, at + 1) >= 0) {
    throw new Error(`mutant ${id}: its text occurs ${at < 0 ? 'nowhere' : 'more than once'} in src/replication/${p.file}; update mutants.ts`);
  }
  return text.slice(0, at) + p.replace + text.slice(at + p.find.length);
}

interface SweepResult {
  killed: boolean;
  seed?: number;
  regression?: boolean;
  promise?: string | number;
  oracle?: string;
  what?: string;
  seedsRun: number;
  hung?: boolean;
}

/**
 * Runs mutant-run.ts in `tree`; kills the child (by pid) when a seed runs past `timeoutMs`.
 * `regressions`: 'all' replays the mode's regression seeds first, a number that one alone (no sweep).
 */
function sweep(tree: string, mode: string, start: number, seeds: number, timeoutMs: number, regressions: 'all' | 'none' | number = 'none'): Promise<SweepResult> {
  const features = ALL_FEATURES.join(',');
  const args = ['--mode', mode, '--start', String(start), '--seeds', String(seeds), '--features', features, '--regressions', String(regressions)];
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(tree, 'test/sim/mutant-run.ts'), ...args], {
      cwd: tree,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    let out = '';
    let err = '';
    let hung = false;
    let lastSeed = start - 1;
    const watch = () =>
      setTimeout(() => {
        hung = true;
        child.kill('SIGKILL');
      }, timeoutMs);
    let timer = watch();
    // mutant-run prints a line per seed (and regression seed) done: each restarts the watch.
    let lines = 0;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const done = out.split(' done\n').length - 1;
      if (done > lines) {
        lines = done;
        lastSeed = start - 1 + (out.match(/^seed \d+ done$/gm)?.length ?? 0);
        clearTimeout(timer);
        timer = watch();
      }
    });
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('exit', (code) => {
      running.delete(child);
      clearTimeout(timer);
      if (hung) return done({ killed: true, hung: true, seed: lastSeed + 1, seedsRun: lastSeed + 1 - start, oracle: 'hung', what: `seed ${lastSeed + 1} did not finish within ${timeoutMs} ms` });
      const last = out.trim().split('\n').pop() ?? '';
      try {
        done(JSON.parse(last) as SweepResult);
      } catch {
        // The mutant crashed the simulator itself (a throw at import, an infinite recursion): caught.
        if (code !== 0) done({ killed: true, seedsRun: 0, oracle: 'crash', what: err.trim().split('\n').slice(-3).join(' | ') });
        else fail(new Error(`mutant-run printed no result: ${out.slice(-500)} ${err.slice(-500)}`));
      }
    });
  });
}

export async function runMutants(o: MutateOptions): Promise<MutantOutcome[]> {
  const log = o.log ?? (() => undefined);
  // `only`: mutant ids, each optionally with one mode (`id:delta`).
  const wanted = (o.only ?? []).map((x) => x.split(':') as [string, string?]);
  const picked = (id: string, mode: string) => o.only === undefined || wanted.some(([w, m]) => w === id && (m === undefined || m === mode));
  const chosen = MUTANTS.filter((m) => o.only === undefined || wanted.some(([w]) => w === m.id));
  const unknown = wanted.map(([id]) => id).filter((id) => !MUTANTS.some((m) => m.id === id));
  if (unknown.length > 0) throw new Error(`unknown mutant(s) ${unknown.join(', ')}; known: ${MUTANTS.map((m) => m.id).join(', ')}`);
  // Every patch must apply before anything runs.
  for (const m of chosen) for (const p of patchesOf(m)) applyPatch(m.id, p, readFileSync(join(ROOT, 'src/replication', p.file), 'utf8'));
  const tasks = chosen.flatMap((m) => m.modes.filter((mode) => (o.modes === undefined || o.modes.includes(mode)) && picked(m.id, mode)).map((mode) => ({ m, mode })));
  const clean = scratchTree();
  const cleanVerdict = new Map<string, boolean>();
  const timeoutMs = o.timeoutMs ?? 5 * 60_000;
  const results: MutantOutcome[] = [];
  const jobs = Math.max(1, o.jobs ?? 1);
  const trees: string[] = [];
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: Math.min(jobs, tasks.length) }, async () => {
        const tree = scratchTree();
        trees.push(tree);
        while (next < tasks.length) {
          const { m, mode } = tasks[next++];
          // Patches of one file apply in turn; every file is put back afterwards.
          const originals = new Map<string, string>();
          for (const p of patchesOf(m)) {
            const file = join(tree, 'src/replication', p.file);
            if (!originals.has(file)) originals.set(file, readFileSync(file, 'utf8'));
            writeFileSync(file, applyPatch(m.id, p, readFileSync(file, 'utf8')));
          }
          const t0 = Date.now();
          const outcome: MutantOutcome = { id: m.id, mode, killed: false, seedsRun: 0, ms: 0, cleanFailures: [] };
          try {
            let start = o.start ?? 1;
            let regressions: 'all' | 'none' = o.regressions !== false && start === 1 ? 'all' : 'none';
            while (start <= o.seeds) {
              const r = await sweep(tree, mode, start, o.seeds, timeoutMs, regressions);
              regressions = 'none';
              outcome.seedsRun = r.regression === true ? 0 : (r.seed ?? o.seeds) - (o.start ?? 1) + 1;
              if (!r.killed) break;
              if (r.seed !== undefined) {
                // The same seed on the unmutated code: a failure there is not this mutant's doing.
                const key = `${mode}:${r.regression === true ? 'r' : ''}${r.seed}`;
                if (!cleanVerdict.has(key)) {
                  const onClean = r.regression === true ? await sweep(clean, mode, 1, 0, timeoutMs, r.seed) : await sweep(clean, mode, r.seed, r.seed, timeoutMs);
                  cleanVerdict.set(key, !onClean.killed);
                }
                if (!cleanVerdict.get(key)) {
                  outcome.cleanFailures.push(r.seed);
                  if (r.regression !== true) start = r.seed + 1; // a regression seed: the sweep goes on from start
                  continue;
                }
              }
              Object.assign(outcome, { killed: true, seed: r.seed, regression: r.regression === true, promise: String(r.promise ?? '-'), oracle: r.oracle, what: r.what });
              break;
            }
          } finally {
            for (const [file, text] of originals) writeFileSync(file, text);
          }
          outcome.ms = Date.now() - t0;
          results.push(outcome);
          log(formatOutcome(outcome));
        }
      }),
    );
  } finally {
    for (const t of [clean, ...trees]) {
      rmSync(t, { recursive: true, force: true });
      scratch.delete(t);
    }
  }
  const order = (x: MutantOutcome) => tasks.findIndex((t) => t.m.id === x.id && t.mode === x.mode);
  return results.sort((a, b) => order(a) - order(b));
}

export function formatOutcome(r: MutantOutcome): string {
  const verdict = r.killed ? `killed at ${r.regression === true ? 'regression ' : ''}seed ${r.seed ?? '-'} (promise ${r.promise ?? '-'}${r.oracle !== undefined && r.oracle !== 'history' ? `, ${r.oracle}` : ''})` : `SURVIVED ${r.seedsRun} seeds`;
  const clean = r.cleanFailures.length > 0 ? `; seeds failing on clean code too: ${r.cleanFailures.join(' ')}` : '';
  return `${r.id.padEnd(32)} ${r.mode.padEnd(7)} ${verdict.padEnd(52)} ${(r.ms / 1000).toFixed(1).padStart(7)} s${clean}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string', default: '300' },
      start: { type: 'string', default: '1' },
      only: { type: 'string' },
      modes: { type: 'string' },
      jobs: { type: 'string', default: '1' },
      'no-regressions': { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
    },
  });
  if (values.list) {
    for (const m of MUTANTS) console.log(`${m.id.padEnd(32)} ${m.modes.join(',').padEnd(13)} promise ${m.promise.padEnd(11)} ${m.what}`);
    return;
  }
  const t0 = Date.now();
  console.log(`${'mutant'.padEnd(32)} ${'mode'.padEnd(7)} ${'result'.padEnd(52)} ${'time'.padStart(9)}`);
  const results = await runMutants({
    seeds: Number(values.seeds),
    start: Number(values.start),
    ...(values.only !== undefined ? { only: values.only.split(',') } : {}),
    ...(values.modes !== undefined ? { modes: values.modes.split(',') as ('backup' | 'delta')[] } : {}),
    jobs: Number(values.jobs),
    regressions: !values['no-regressions'],
    log: (l) => console.log(l),
  });
  const survived = results.filter((r) => !r.killed);
  console.log(`\n${results.length} sweeps of ${new Set(results.map((r) => r.id)).size} mutants in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${results.length - survived.length} killed, ${survived.length} survived${survived.length > 0 ? `: ${survived.map((r) => `${r.id} (${r.mode})`).join(', ')}` : ''}`);
  process.exitCode = survived.length > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
