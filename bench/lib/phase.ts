/**
 * The building blocks the scenarios share: a load phase with its CPU accounting, starting a variant,
 * and stopping what a scenario started however it ends.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  allProcessesCpu,
  cpuOf,
  machineBusySeconds,
  reapedChildrenCpuSeconds,
  rssBytes,
  topConsumers,
  type BenchProcess,
} from './processes.js';
import { WORK_DIR, collectGarbage, startApp, startCluster, startLoad, startRedis, type AppProcess } from './servers.js';
import type { ProfileWindow } from './profile.js';
import { round } from './stats.js';
import { clusterEnv, log, settings } from './context.js';
import type { LoadOptions, LoadResult } from '../load.js';

export interface PhaseResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  failed: number;
  cpuSeconds: number;
  cpuSecondsPer1000: number;
  /** Cores the autocannon process used meanwhile (it competes for the same cores). */
  loadClientCores: number;
  /** Cores used meanwhile by processes that are not the bench's (another workload skews the figures). */
  otherCores: number;
  cpuSecondsByProcess: Record<string, number>;
  /** The other processes that used the most CPU meanwhile (the runner, its load client and the variant excluded). */
  neighbours: { pid: number; cpu: number; command: string }[];
}

/** A process whose CPU time a phase accounts. */
export interface Named {
  name: string;
  pid: number;
}

/** Phase intervals for the profile summaries (monotonic µs, the clock V8 profiles use). */
export const windows: ProfileWindow[] = [];
/** Now on the clock V8 profiles use (monotonic µs). */
export const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * Runs one load phase and reads the CPU time of `procs` around it (OS accounting, all threads).
 * `apart` are processes of the bench's own that are neither the variant nor noise (a delay proxy):
 * their CPU is reported separately and not counted as other processes'.
 */
export async function phase(
  label: string,
  procs: Named[],
  options: Omit<LoadOptions, 'out'>,
  apart: Named[] = [],
): Promise<PhaseResult & { load: LoadResult; apartCpuSeconds: Record<string, number> }> {
  const pids = procs.map((p) => p.pid);
  const last = new Map<number, number>();
  const each0 = procs.map((p) => cpuOf([p.pid]));
  const apart0 = apart.map((p) => cpuOf([p.pid]));
  const before = cpuOf(pids, last);
  const machineBefore = machineBusySeconds();
  const children0 = reapedChildrenCpuSeconds();
  const selfCpu0 = process.cpuUsage();
  const everyone = allProcessesCpu();
  const t0 = performance.now();
  const load = startLoad(options);
  const startUs = monotonicUs();
  const r = await load.result;
  windows.push({ label, startUs, endUs: monotonicUs() });
  const cpu = cpuOf(pids, last) - before;
  const each = procs.map((p, i) => [p.name, round(cpuOf([p.pid], last) - each0[i], 2)] as const);
  const apartCpu = apart.map((p, i) => [p.name, round(cpuOf([p.pid]) - apart0[i], 2)] as const);
  const machineCpu = machineBusySeconds() - machineBefore;
  const wallSeconds = (performance.now() - t0) / 1000;
  // The load client exited and was reaped: its whole CPU time (start-up included) is in our children's.
  const loadClientCpu = reapedChildrenCpuSeconds() - children0;
  const selfCpu = process.cpuUsage(selfCpu0);
  const apartSum = apartCpu.reduce((a, [, c]) => a + c, 0);
  const others = Math.max(0, machineCpu - cpu - apartSum - loadClientCpu - (selfCpu.user + selfCpu.system) / 1e6);
  const neighbours = topConsumers(everyone, allProcessesCpu(), new Set([...pids, ...apart.map((p) => p.pid), process.pid, load.proc.pid]));
  return {
    rps: r.rps,
    p50Ms: r.latencyMs.p50,
    p99Ms: r.latencyMs.p99,
    requests: r.requests,
    failed: r.non2xx + r.errors,
    cpuSeconds: round(cpu, 2),
    cpuSecondsPer1000: round(cpu / Math.max(1, r.ok / 1000), 4),
    loadClientCores: round(r.clientCpuSeconds / r.durationS, 2),
    otherCores: round(others / wallSeconds, 2),
    cpuSecondsByProcess: Object.fromEntries(each),
    neighbours,
    load: r,
    apartCpuSeconds: Object.fromEntries(apartCpu),
  };
}

/**
 * `phase`, repeated (up to `settings.noiseRetries` times) while other processes on the machine used
 * more than `settings.noiseCores` cores meanwhile; keeps the quietest attempt. A shared machine's
 * other work would otherwise skew one variant against another.
 */
export async function quietPhase(
  label: string,
  procs: Named[],
  options: Omit<LoadOptions, 'out'>,
  apart: Named[] = [],
): ReturnType<typeof phase> {
  let best = await phase(label, procs, options, apart);
  for (let i = 0; i < settings.noiseRetries && best.otherCores > settings.noiseCores; i++) {
    log(`  ${label}: other processes used ${best.otherCores} cores meanwhile (${best.neighbours.map((x) => `${x.cpu} s ${x.command}`).join('; ')}); measuring again`);
    const again = await phase(label, procs, options, apart);
    if (again.otherCores < best.otherCores) best = again;
  }
  return best;
}

/** A phase's figures without the load client's raw result (kept out of results.json). */
export const strip = ({ load: _load, apartCpuSeconds: _apart, ...rest }: Awaited<ReturnType<typeof phase>>): PhaseResult => rest;

/** Writes the Cookie headers of logged-in sessions where the load client reads them. */
export function cookiesFile(name: string, cookies: string[]): string {
  const file = join(WORK_DIR, `cookies-${name}-${process.pid}.json`);
  writeFileSync(file, JSON.stringify(cookies));
  return file;
}

/** Stops the given processes (by pid) when `body` ends, however it ends. */
export async function withProcesses<T>(body: (track: (...p: BenchProcess[]) => void) => Promise<T>): Promise<T> {
  const procs: BenchProcess[] = [];
  try {
    return await body((...p) => procs.push(...p));
  } finally {
    await Promise.all(
      procs.map(async (p) => {
        if (!p.alive) return;
        p.kill('SIGTERM');
        const t = setTimeout(() => p.kill('SIGKILL'), 3000);
        await p.exited;
        clearTimeout(t);
      }),
    );
  }
}

export type Variant = 'memory' | 'redis' | 'backup' | 'delta';

export const named = (m: AppProcess): Named => ({ name: m.name, pid: m.proc.pid });

/** Starts one variant; resolves with the URL that takes the load and the processes to account. */
export async function startVariant(
  variant: Variant,
  track: (...p: BenchProcess[]) => void,
): Promise<{ url: string; procs: Named[]; members: AppProcess[]; redis?: BenchProcess }> {
  if (variant === 'memory') {
    const app = await startApp('memory', { STORE: 'memory' });
    track(app.proc);
    return { url: app.url, procs: [named(app)], members: [app] };
  }
  if (variant === 'redis') {
    const redis = await startRedis();
    track(redis.proc);
    const app = await startApp('redis', { STORE: 'redis', REDIS_PORT: String(redis.port) });
    track(app.proc);
    return { url: app.url, procs: [named(app), { name: 'redis-server', pid: redis.proc.pid }], members: [app], redis: redis.proc };
  }
  const n = variant === 'backup' ? 4 : 3;
  const cluster = await startCluster(n, variant, clusterEnv, track);
  return { url: cluster.members[0].url, procs: cluster.members.map(named), members: cluster.members };
}

/** RSS and JS heap + Buffers of each app after a full GC (the apps run with --expose-gc). */
export async function steadyMemory(members: AppProcess[]): Promise<{ rss: number[]; heap: number[] }> {
  const heap = await Promise.all(members.map((m) => collectGarbage(m.url)));
  return { rss: members.map((m) => rssBytes(m.proc.pid)), heap };
}

/** Bytes grown for `sessions` sessions, as MiB per 10,000 sessions. */
export const per10k = (bytes: number, sessions: number) => round(bytes / (sessions / 10_000) / (1024 * 1024), 2);
