/**
 * Starting what a bench variant runs: a redis-server of its own, bench/app.ts processes (one per
 * member), the sticky proxy and the autocannon client; and reading a member's status and metrics.
 */
import { readFileSync, mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { startProcess, stopProcess, type BenchProcess } from './processes.js';
import type { LoadOptions, LoadResult } from '../load.js';
import { freePort, freeUdpPort, randomGroup } from '../../test/helpers/ports.js';

export const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));
/** Scratch files (cookies, load results, profiles); git-ignored. */
export const WORK_DIR = join(BENCH_DIR, '.work');
const APP = join(BENCH_DIR, 'app.ts');
const LOAD = join(BENCH_DIR, 'load.ts');
const PROXY = join(BENCH_DIR, 'sticky-proxy.ts');
const DELAY_PROXY = join(BENCH_DIR, 'delay-proxy.ts');

/** Set by the runner: when defined, app processes write V8 CPU profiles into this folder. */
export const profiling: { dir: string | undefined; names: Map<number, string> } = { dir: undefined, names: new Map() };

// The same port and group helpers as the tests: loopback only, a group of its own per cluster.
export { freePort, freeUdpPort, randomGroup };

export interface RedisServer {
  proc: BenchProcess;
  port: number;
}

/** A redis-server of the bench's own on a free loopback port, no persistence. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const proc = startProcess('redis-server', 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes',
  ]);
  await proc.waitForLine(/Ready to accept connections/, 15_000);
  return { proc, port };
}

export interface AppProcess {
  name: string;
  proc: BenchProcess;
  port: number;
  url: string;
}

/** Starts bench/app.ts with `env` and waits until it serves HTTP. */
export async function startApp(name: string, env: Record<string, string>): Promise<AppProcess> {
  const flags = ['--expose-gc'];
  if (profiling.dir !== undefined) {
    mkdirSync(profiling.dir, { recursive: true });
    // Default names (CPU.<date>.<time>.<pid>.<thread>.<seq>): tsx's loader thread writes one too.
    flags.push('--cpu-prof', '--cpu-prof-dir', profiling.dir);
  }
  const heap: Record<string, string> = profiling.dir !== undefined ? { HEAP_PROFILE_DIR: profiling.dir } : {};
  const proc = startProcess(name, process.execPath, [...flags, '--import', 'tsx', APP], { LOG_LEVEL: 'warn', ...heap, ...env });
  profiling.names.set(proc.pid, name);
  const line = await proc.waitForLine(/"event":"listening"/, 60_000);
  const { port } = JSON.parse(line) as { port: number };
  return { name, proc, port, url: `http://127.0.0.1:${port}` };
}

export interface Cluster {
  members: AppProcess[];
  env: Record<string, string>;
  /** The environment of one member beside `env` (its receiver port and advertised address). */
  memberEnv: (route: string) => Record<string, string>;
}

/**
 * Starts `n` cluster members node1..nodeN of one mode on a multicast group of their own and waits
 * until each sees all of them (delta: and finished its state transfer). `track` gets each process.
 */
export async function startCluster(
  n: number,
  mode: 'backup' | 'delta',
  extraEnv: Record<string, string> = {},
  track: (p: BenchProcess) => void = () => {},
  memberEnv: (route: string) => Record<string, string> = () => ({}),
): Promise<Cluster> {
  const env = {
    STORE: 'cluster',
    MODE: mode,
    ACK: 'sync',
    MCAST_ADDRESS: randomGroup(),
    MCAST_PORT: String(await freeUdpPort()),
    CLUSTER_NAME: `bench-${process.pid}-${Date.now()}`,
    ...extraEnv,
  };
  const start = async (i: number) => {
    const m = await startApp(`node${i}`, { ...env, ...memberEnv(`node${i}`), ROUTE: `node${i}` });
    track(m.proc);
    return m;
  };
  // Delta: node1 starts first and alone, so it is the oldest member the others transfer from.
  const members: AppProcess[] = [];
  if (mode === 'delta') {
    members.push(await start(1));
    await members[0].proc.waitForLine(/"event":"ready"/, 60_000);
    members.push(...(await Promise.all(Array.from({ length: n - 1 }, (_, i) => start(i + 2)))));
  } else {
    members.push(...(await Promise.all(Array.from({ length: n }, (_, i) => start(i + 1)))));
  }
  await waitForMembers(members, n);
  if (mode === 'delta') await Promise.all(members.map((m) => m.proc.waitForLine(/"event":"ready"/, 60_000)));
  return { members, env, memberEnv };
}

/** Adds member `route` to a running cluster (same group and settings). */
export async function addMember(cluster: Cluster, route: string): Promise<AppProcess> {
  const m = await startApp(route, { ...cluster.env, ...cluster.memberEnv(route), ROUTE: route });
  cluster.members.push(m);
  return m;
}

export interface MemberStatus {
  route: string;
  members: { route: string }[];
  /** `unprotected`: sessions held here with one live copy (re-protection pending). */
  sessions: { primary: number; backup: number; unprotected?: number };
}

export async function status(url: string): Promise<MemberStatus> {
  const res = await fetch(`${url}/cluster/status`, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as MemberStatus;
}

/** `/cluster/metrics` as name → value (samples with labels are summed). */
export async function metrics(url: string): Promise<Record<string, number>> {
  const res = await fetch(`${url}/cluster/metrics`, { signal: AbortSignal.timeout(10_000) });
  const out: Record<string, number> = {};
  for (const line of (await res.text()).split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m === null) continue;
    out[m[1]] = (out[m[1]] ?? 0) + Number(m[3]);
  }
  return out;
}

/** Polls until `check` is truthy; throws after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : JSON.stringify(err);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last !== undefined ? `: ${last}` : ''}`);
    await sleep(intervalMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until every member sees exactly `n` live members. */
export async function waitForMembers(members: AppProcess[], n: number, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    `${members.map((m) => m.name).join(',')} to see ${n} members`,
    async () => (await Promise.all(members.map((m) => status(m.url)))).every((s) => s.members.length === n),
    timeoutMs,
  );
}

/** Logs in `count` users (POST /login?u=i), `concurrency` at a time; returns their Cookie headers. */
export async function login(url: string, count: number, concurrency = 16): Promise<string[]> {
  const cookies: string[] = new Array<string>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const res = await fetch(`${url}/login?u=${i}`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`login ${i} at ${url}: HTTP ${res.status}`);
      cookies[i] = res.headers
        .getSetCookie()
        .map((c) => c.split(';', 1)[0])
        .join('; ');
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return cookies;
}

/** Fills a member's store with `n` sessions directly (bench/app.ts `POST /bench/fill`). */
export async function fill(url: string, n: number): Promise<{ created: number; ms: number; retries: number }> {
  const res = await fetch(`${url}/bench/fill?n=${n}&concurrency=64`, { method: 'POST', signal: AbortSignal.timeout(600_000) });
  if (res.status !== 200) throw new Error(`fill at ${url}: HTTP ${res.status}`);
  return (await res.json()) as { created: number; ms: number; retries: number };
}

/**
 * Runs a full GC in the app (it runs with --expose-gc), so a reading after it is steady; resolves
 * with the JS heap in use plus memory outside it (Buffers), in bytes.
 */
export async function collectGarbage(url: string): Promise<number> {
  const res = await fetch(`${url}/bench/memory`, { signal: AbortSignal.timeout(30_000) });
  const m = (await res.json()) as { heapUsed: number; external: number };
  return m.heapUsed + m.external;
}

export interface RunningLoad {
  proc: BenchProcess;
  /** Epoch ms when the load client sent its first requests. */
  started: Promise<number>;
  result: Promise<LoadResult>;
}

let loads = 0;

/** Starts bench/load.ts (autocannon) as its own process. */
export function startLoad(options: Omit<LoadOptions, 'out'>): RunningLoad {
  const out = join(WORK_DIR, `load-${process.pid}-${++loads}.json`);
  const proc = startProcess(`load${loads}`, process.execPath, ['--import', 'tsx', LOAD, JSON.stringify({ ...options, out })]);
  const started = proc.waitForLine(/"event":"started"/, 60_000).then((l) => (JSON.parse(l) as { t: number }).t);
  const result = proc.exited.then(() => {
    if (proc.child.exitCode !== 0) throw new Error(`load client failed (exit ${proc.child.exitCode}):\n${proc.lines.slice(-20).join('\n')}`);
    const r = JSON.parse(readFileSync(out, 'utf8')) as LoadResult;
    rmSync(out, { force: true });
    return r;
  });
  return { proc, started, result };
}

/** Starts the sticky proxy in front of `members`. */
export async function startProxy(members: AppProcess[]): Promise<{ proc: BenchProcess; url: string }> {
  const config = { upstreams: members.map((m) => ({ route: m.name, port: m.port })), failTimeoutMs: 1000 };
  const proc = startProcess('sticky-proxy', process.execPath, ['--import', 'tsx', PROXY, JSON.stringify(config)]);
  const line = await proc.waitForLine(/"event":"listening"/, 60_000);
  return { proc, url: `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}` };
}

/** A route of the delay proxy: it listens on `listen` (`host:port`, port 0 for any) and forwards to `target`. */
export interface DelayRoute {
  listen: string;
  target: string;
}

/** Starts bench/delay-proxy.ts; resolves with the port it bound for each route, in order. */
export async function startDelayProxy(delayMs: number, routes: DelayRoute[]): Promise<{ proc: BenchProcess; ports: number[] }> {
  const proc = startProcess('delay-proxy', process.execPath, ['--import', 'tsx', DELAY_PROXY, JSON.stringify({ delayMs, routes })]);
  const line = await proc.waitForLine(/"event":"listening"/, 60_000);
  return { proc, ports: (JSON.parse(line) as { ports: number[] }).ports };
}

export { stopProcess };
