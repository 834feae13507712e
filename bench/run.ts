/**
 * The bench runner, as pino keeps its benchmarks: one file per scenario (bench/<name>.bench.ts, each
 * exporting its measurement), this runner apart. `npm run bench` (full, ~20 min on 2 cores) or
 * `npm run bench -- --quick` (~5 min). It runs the chosen scenarios, then writes bench/results.json
 * (figures, and the ratios of lib/ratios.ts) and the tables of bench/README.md.
 *
 * Options:
 *   --quick                 short phases (3 s), smaller fills
 *   --only a,b              scenarios: throughput, bytes, codec, failover, transfer, memory, rtt, reprotect,
 *                           backups, tombstones
 *   --profile               app processes run with --cpu-prof and allocation sampling; the top self-time
 *                           functions per phase and the top allocation sites are printed (results.json
 *                           and README.md are not rewritten: the profilers skew figures)
 *   --report                only rewrite README.md's tables from results.json (no measuring)
 *   --no-schema             cluster variants without the bench's Avro sessionSchema
 *   --connections N         autocannon connections in the throughput phases (default 32)
 *   --variants a,b          throughput and rtt only for some of memory, redis, backup, delta (others
 *                           kept from the previous results.json)
 *
 * Every process started is killed by its pid when a scenario ends, on error and on Ctrl-C.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { installCleanup, stopAll } from './lib/processes.js';
import { WORK_DIR, profiling } from './lib/servers.js';
import { formatSummary, summarizeDir } from './lib/profile.js';
import { formatHeapSummary, summarizeHeapDir } from './lib/heap-profile.js';
import { machine, versions } from './lib/machine.js';
import { round } from './lib/stats.js';
import { renderReadme } from './lib/report.js';
import { README, RESULTS, args, log, only, previousSections, quick, settings, type Results, type Section } from './lib/context.js';
import { windows } from './lib/phase.js';
import { ratios } from './lib/ratios.js';

/** Each scenario's module, loaded only when it runs. */
const scenarios: Record<Section, () => Promise<{ default: () => Promise<Record<string, unknown>> }>> = {
  throughput: () => import('./throughput.bench.js'),
  bytes: () => import('./bytes.bench.js'),
  codec: () => import('./codec.bench.js'),
  failover: () => import('./failover.bench.js'),
  transfer: () => import('./transfer.bench.js'),
  memory: () => import('./memory.bench.js'),
  rtt: () => import('./rtt.bench.js'),
  reprotect: () => import('./reprotect.bench.js'),
  backups: () => import('./backups.bench.js'),
  tombstones: () => import('./tombstones.bench.js'),
};

function rewriteReadme(results: Results): void {
  writeFileSync(README, renderReadme(existsSync(README) ? readFileSync(README, 'utf8') : undefined, results));
}

async function main(): Promise<void> {
  if (args.report === true) {
    const results = JSON.parse(readFileSync(RESULTS, 'utf8')) as Results;
    // Ratios are recomputed, so a change of lib/ratios.ts shows without measuring again.
    results.ratios = ratios(results.sections, (results.settings as { sessionSchema?: boolean } | undefined)?.sessionSchema !== false);
    writeFileSync(RESULTS, JSON.stringify(results, null, 2) + '\n');
    rewriteReadme(results);
    log(`rewrote the ratios of ${RESULTS} and the tables of ${README}`);
    return;
  }
  installCleanup();
  mkdirSync(WORK_DIR, { recursive: true });
  if (args.profile === true) {
    profiling.dir = join(WORK_DIR, 'profiles');
    rmSync(profiling.dir, { recursive: true, force: true });
  }
  const sections: Results['sections'] = { ...previousSections };
  const started = Date.now();
  const loadAverage = loadavg();
  // A scenario that fails keeps its previous figures and is named in results.json; the others'
  // figures of a long run are not lost to it.
  const failed: Record<string, string> = {};
  try {
    for (const section of only) {
      const t0 = Date.now();
      try {
        const { default: measure } = await scenarios[section]();
        sections[section] = { ...(await measure()), measuredAt: new Date().toISOString(), quick, sessionSchema: settings.sessionSchema };
        log(`${section} done in ${Math.round((Date.now() - t0) / 1000)} s`);
      } catch (err) {
        failed[section] = err instanceof Error ? err.message : String(err);
        log(`${section} FAILED after ${Math.round((Date.now() - t0) / 1000)} s (its previous figures are kept): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        await stopAll();
      }
    }
  } finally {
    await stopAll();
    for (const f of readdirSync(WORK_DIR)) if (f.startsWith('cookies-') && f.endsWith(`-${process.pid}.json`)) rmSync(join(WORK_DIR, f));
  }
  const durationSeconds = Math.round((Date.now() - started) / 1000);
  const results: Results = {
    date: new Date().toISOString(),
    command: `npm run bench --${process.argv.slice(2).length > 0 ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
    durationSeconds,
    loadAverageAtStart: loadAverage.map((x) => round(x, 2)),
    machine: machine(),
    versions: versions(),
    settings,
    ...(Object.keys(failed).length > 0 ? { failedSections: failed } : {}),
    sections,
    ratios: ratios(sections, settings.sessionSchema),
  };
  if (profiling.dir === undefined) {
    writeFileSync(RESULTS, JSON.stringify(results, null, 2) + '\n');
    rewriteReadme(results);
    log(`wrote ${RESULTS} and the tables of ${README} in ${durationSeconds} s`);
    log(`ratios: ${JSON.stringify(results.ratios)}`);
    if (Object.keys(failed).length > 0) process.exitCode = 1;
    return;
  }
  log(`profiled run (figures skewed by the profiler): results.json and README.md left as they were`);
  const text = [...summarizeDir(profiling.dir, profiling.names, windows).map(formatSummary), ...summarizeHeapDir(profiling.dir, profiling.names).map(formatHeapSummary)].join('\n\n');
  writeFileSync(join(WORK_DIR, 'profile-summary.txt'), text + '\n');
  process.stdout.write(text + '\n');
  log(`profile summary in ${join(WORK_DIR, 'profile-summary.txt')}`);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await stopAll();
  process.exit(1);
});
