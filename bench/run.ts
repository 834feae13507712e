/**
 * The bench runner: `npm run bench` (full, ~10-15 min on 2 cores) or `npm run bench -- --quick`
 * (~3 min). Measures the same Koa app (bench/app.ts) with a plain memory store, koa-redis against a
 * redis-server it starts, and koa-session-cluster in backup (4 members) and delta (3 members) mode,
 * under autocannon load from a separate process (bench/load.ts), and writes bench/results.json and
 * the tables of bench/README.md.
 *
 * Options:
 *   --quick                 short phases (3 s), smaller fills
 *   --only a,b              sections: throughput, bytes, codec, failover, transfer, memory
 *   --profile               app processes run with --cpu-prof; top self-time functions are printed
 *                           (results.json and README.md are not rewritten: the profiler skews figures)
 *   --report                only rewrite README.md's tables from results.json (no measuring)
 *   --no-schema             cluster variants without the bench's Avro sessionSchema
 *   --connections N         autocannon connections in the throughput phases (default 32)
 *   --variants a,b          throughput only for some of memory, redis, backup, delta (others kept
 *                           from the previous results.json)
 *
 * Every process started is killed by its pid when a variant ends, on error and on Ctrl-C.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import {
  allProcessesCpu,
  cpuOf,
  installCleanup,
  machineBusySeconds,
  reapedChildrenCpuSeconds,
  rssBytes,
  stopAll,
  topConsumers,
  type BenchProcess,
} from './lib/processes.js';
import {
  BENCH_DIR,
  WORK_DIR,
  addMember,
  collectGarbage,
  fill,
  login,
  metrics,
  profiling,
  sleep,
  startApp,
  startCluster,
  startLoad,
  startProxy,
  startRedis,
  status,
  waitFor,
  type AppProcess,
} from './lib/servers.js';
import { formatSummary, summarizeDir, type ProfileWindow } from './lib/profile.js';
import { machine, versions } from './lib/machine.js';
import { quantile, round } from './lib/stats.js';
import { renderReadme } from './lib/report.js';
import { benchSessionSchema, sessionFor } from './session.js';
import type { LoadOptions, LoadResult } from './load.js';

const SECTIONS = ['throughput', 'bytes', 'codec', 'failover', 'transfer', 'memory'] as const;
type Section = (typeof SECTIONS)[number];

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'no-schema': { type: 'boolean', default: false },
    connections: { type: 'string' },
    variants: { type: 'string' },
    report: { type: 'boolean', default: false },
  },
  strict: true,
});

const quick = args.quick === true;
const settings = {
  quick,
  sessions: 1000,
  connections: Number(args.connections ?? 32),
  warmupSeconds: quick ? 1 : 3,
  phaseSeconds: quick ? 3 : 10,
  bytesSessions: 100,
  bytesWrites: quick ? 300 : 2000,
  bytesConnections: 4,
  failoverBeforeSeconds: quick ? 2 : 5,
  failoverAfterSeconds: quick ? 3 : 5,
  transferSessions: 100_000,
  memorySessions: quick ? 50_000 : 100_000,
  sessionSchema: args['no-schema'] !== true,
  /** A throughput phase is measured again when other processes used more cores than this. */
  noiseCores: 0.25,
  noiseRetries: quick ? 1 : 2,
};
const only: Section[] =
  args.only === undefined
    ? [...SECTIONS]
    : args.only.split(',').map((s) => {
        if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only ${s}: expected some of ${SECTIONS.join(', ')}`);
        return s as Section;
      });
const flags = [quick ? '--quick' : '', settings.sessionSchema ? '' : '--no-schema'].filter((f) => f !== '').join(' ');
/** The command that re-measures one section with the settings of this run. */
const commandFor = (section: Section) => `npm run bench -- ${flags.length > 0 ? `${flags} ` : ''}--only ${section}`;
const clusterEnv: Record<string, string> = settings.sessionSchema ? { SESSION_SCHEMA: '1' } : {};

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// Phases

interface PhaseResult {
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
interface Named {
  name: string;
  pid: number;
}

/** Phase intervals for the profile summaries (monotonic µs, the clock V8 profiles use). */
const windows: ProfileWindow[] = [];
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** Runs one load phase and reads the CPU time of `procs` around it (OS accounting, all threads). */
async function phase(label: string, procs: Named[], options: Omit<LoadOptions, 'out'>): Promise<PhaseResult & { load: LoadResult }> {
  const pids = procs.map((p) => p.pid);
  const last = new Map<number, number>();
  const each0 = procs.map((p) => cpuOf([p.pid]));
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
  const machineCpu = machineBusySeconds() - machineBefore;
  const wallSeconds = (performance.now() - t0) / 1000;
  // The load client exited and was reaped: its whole CPU time (start-up included) is in our children's.
  const loadClientCpu = reapedChildrenCpuSeconds() - children0;
  const selfCpu = process.cpuUsage(selfCpu0);
  const others = Math.max(0, machineCpu - cpu - loadClientCpu - (selfCpu.user + selfCpu.system) / 1e6);
  const neighbours = topConsumers(everyone, allProcessesCpu(), new Set([...pids, process.pid, load.proc.pid]));
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
  };
}

/**
 * `phase`, repeated (up to `settings.noiseRetries` times) while other processes on the machine used
 * more than `settings.noiseCores` cores meanwhile; keeps the quietest attempt. A shared machine's
 * other work would otherwise skew one variant against another.
 */
async function quietPhase(label: string, procs: Named[], options: Omit<LoadOptions, 'out'>): Promise<PhaseResult & { load: LoadResult }> {
  let best = await phase(label, procs, options);
  for (let i = 0; i < settings.noiseRetries && best.otherCores > settings.noiseCores; i++) {
    log(`  ${label}: other processes used ${best.otherCores} cores meanwhile (${best.neighbours.map((x) => `${x.cpu} s ${x.command}`).join('; ')}); measuring again`);
    const again = await phase(label, procs, options);
    if (again.otherCores < best.otherCores) best = again;
  }
  return best;
}

const strip = ({ load: _load, ...rest }: PhaseResult & { load: LoadResult }): PhaseResult => rest;

function cookiesFile(name: string, cookies: string[]): string {
  const file = join(WORK_DIR, `cookies-${name}-${process.pid}.json`);
  writeFileSync(file, JSON.stringify(cookies));
  return file;
}

/** Stops the given processes (by pid) when `body` ends, however it ends. */
async function withProcesses<T>(body: (track: (...p: BenchProcess[]) => void) => Promise<T>): Promise<T> {
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

type Variant = 'memory' | 'redis' | 'backup' | 'delta';

/** Starts one variant; resolves with the URL that takes the load and the processes to account. */
async function startVariant(
  variant: Variant,
  track: (...p: BenchProcess[]) => void,
): Promise<{ url: string; procs: Named[]; members: AppProcess[]; redis?: BenchProcess }> {
  const named = (m: AppProcess): Named => ({ name: m.name, pid: m.proc.pid });
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

// ---------------------------------------------------------------------------------------------
// Sections

async function throughput(): Promise<Record<string, unknown>> {
  const all = ['memory', 'redis', 'backup', 'delta'] as const;
  const chosen = args.variants === undefined ? all : all.filter((v) => args.variants!.split(',').includes(v));
  // Variants not measured this time keep their previous figures.
  const out: Record<string, unknown> = { ...(previousSections.throughput ?? {}) };
  for (const variant of chosen) {
    log(`throughput: ${variant}`);
    out[variant] = await withProcesses(async (track) => {
      const v = await startVariant(variant, track);
      const cookies = cookiesFile(variant, await login(v.url, settings.sessions));
      const base = { url: v.url, cookiesFile: cookies, connections: settings.connections };
      await startLoad({ ...base, method: 'POST', path: '/write', duration: settings.warmupSeconds }).result;
      await startLoad({ ...base, method: 'GET', path: '/read', duration: settings.warmupSeconds }).result;
      const write = await quietPhase(`${variant} writes`, v.procs, { ...base, method: 'POST', path: '/write', duration: settings.phaseSeconds });
      const read = await quietPhase(`${variant} reads`, v.procs, { ...base, method: 'GET', path: '/read', duration: settings.phaseSeconds });
      log(
        `  ${variant}: writes ${write.rps}/s p99 ${write.p99Ms} ms, ${write.cpuSecondsPer1000} CPU s/1k; ` +
          `reads ${read.rps}/s p99 ${read.p99Ms} ms, ${read.cpuSecondsPer1000} CPU s/1k; other load ${write.otherCores}/${read.otherCores} cores`,
      );
      return {
        processes: v.procs.length,
        loadOn: variant === 'backup' || variant === 'delta' ? 'node1' : 'the app',
        write: strip(write),
        read: strip(read),
        measuredAt: new Date().toISOString(),
        quick,
      };
    });
  }
  return { ...out, command: commandFor('throughput') };
}

async function bytesPerWrite(): Promise<Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = { backup: {}, delta: {} };
  for (const mode of ['backup', 'delta'] as const) {
    for (const n of [2, 4, 8]) {
      log(`bytes: ${mode}, ${n} members`);
      out[mode][String(n)] = await withProcesses(async (track) => {
        const cluster = await startCluster(n, mode, clusterEnv, track);
        const node1 = cluster.members[0];
        const cookies = cookiesFile(`bytes-${mode}-${n}`, await login(node1.url, settings.bytesSessions, 8));
        const snapshot = async () => Promise.all(cluster.members.map((m) => metrics(m.url)));
        const sum = (s: Record<string, number>[], k: string) => s.reduce((a, m) => a + (m[k] ?? 0), 0);
        // Background traffic (membership, liveness) measured over an idle second, subtracted below.
        const idle0 = await snapshot();
        const ti0 = performance.now();
        await sleep(1000);
        const idle1 = await snapshot();
        const idlePerMs = (sum(idle1, 'koa_session_cluster_bytes_sent_total') - sum(idle0, 'koa_session_cluster_bytes_sent_total')) / (performance.now() - ti0);
        const idleMsgsPerMs = (sum(idle1, 'koa_session_cluster_messages_sent_total') - sum(idle0, 'koa_session_cluster_messages_sent_total')) / (performance.now() - ti0);
        const m0 = await snapshot();
        const t0 = performance.now();
        const r = await startLoad({
          url: node1.url,
          cookiesFile: cookies,
          connections: settings.bytesConnections,
          method: 'POST',
          path: '/write',
          amount: settings.bytesWrites,
        }).result;
        const m1 = await snapshot();
        const ms = performance.now() - t0;
        const writes = (m1[0].koa_session_cluster_writes_total ?? 0) - (m0[0].koa_session_cluster_writes_total ?? 0) || r.ok;
        const bytes = sum(m1, 'koa_session_cluster_bytes_sent_total') - sum(m0, 'koa_session_cluster_bytes_sent_total') - idlePerMs * ms;
        const msgs = sum(m1, 'koa_session_cluster_messages_sent_total') - sum(m0, 'koa_session_cluster_messages_sent_total') - idleMsgsPerMs * ms;
        const result = {
          writes,
          failed: r.non2xx + r.errors,
          bytesPerWrite: round(bytes / Math.max(1, writes), 1),
          messagesPerWrite: round(msgs / Math.max(1, writes), 2),
          idleBytesPerSecond: round(idlePerMs * 1000, 0),
        };
        log(`  ${mode} N=${n}: ${result.bytesPerWrite} B/write, ${result.messagesPerWrite} messages/write`);
        return result;
      });
    }
  }
  return { command: commandFor('bytes'), note: 'sum over every member of koa_session_cluster_bytes_sent_total (writes, acknowledgements, any other cluster traffic), idle background subtracted, divided by writes', ...out };
}

async function codec(): Promise<Record<string, unknown>> {
  log('codec: Avro vs JSON');
  const { createSessionCodec } = await import('../src/codec/index.js');
  const session = { ...sessionFor(42), views: 17, lastSeen: Date.now() };
  const change = { views: session.views, lastSeen: session.lastSeen };
  const plain = createSessionCodec({ types: [], maxSessionBytes: 1 << 20 });
  const schema = createSessionCodec({ types: [], maxSessionBytes: 1 << 20, sessionSchema: benchSessionSchema });
  const json = Buffer.byteLength(JSON.stringify(session));
  const jsonChange = Buffer.byteLength(JSON.stringify(change));
  const result = {
    command: commandFor('codec'),
    session: 'bench/session.ts sessionFor(42) after 17 writes',
    jsonBytes: json,
    avroBytes: plain.encodeSession(session).length,
    avroSchemaBytes: schema.encodeSession(session).length,
    changeJsonBytes: jsonChange,
    changeAvroBytes: plain.encodeEntries(change).length,
    changeAvroSchemaBytes: schema.encodeEntries(change).length,
  };
  log(`  JSON ${json} B, Avro ${result.avroBytes} B, Avro with sessionSchema ${result.avroSchemaBytes} B`);
  return {
    ...result,
    avroVsJson: round(result.avroBytes / json, 3),
    avroSchemaVsJson: round(result.avroSchemaBytes / json, 3),
  };
}

async function failover(): Promise<Record<string, unknown>> {
  log('failover: 4 members, backup, SIGKILL node1 under load');
  return withProcesses(async (track) => {
    const cluster = await startCluster(4, 'backup', clusterEnv, track);
    const [node1] = cluster.members;
    const proxy = await startProxy(cluster.members);
    track(proxy.proc);
    const cookies = cookiesFile('failover', await login(node1.url, settings.sessions));
    await startLoad({ url: proxy.url, cookiesFile: cookies, connections: settings.connections, method: 'POST', path: '/write', duration: settings.warmupSeconds }).result;
    const load = startLoad({
      url: proxy.url,
      cookiesFile: cookies,
      connections: settings.connections,
      method: 'POST',
      path: '/write',
      duration: settings.failoverBeforeSeconds + settings.failoverAfterSeconds,
      timeout: 10,
      followCookies: true,
      timeline: true,
    });
    await load.started;
    await sleep(settings.failoverBeforeSeconds * 1000);
    const killedAt = Date.now();
    node1.proc.kill('SIGKILL');
    const r = await load.result;
    const proxyStats = (await (await fetch(`${proxy.url}/__proxy/stats`)).json()) as Record<string, number>;
    const survivors = cluster.members.slice(1);
    const takeovers = (await Promise.all(survivors.map((m) => metrics(m.url)))).reduce((a, m) => a + (m.koa_session_cluster_takeovers_total ?? 0), 0);
    const timeline = r.timeline ?? [];
    const ok = (e: [number, number, number]) => e[2] >= 200 && e[2] < 300;
    const before = timeline.filter((e) => e[0] < killedAt && ok(e)).map((e) => e[1]).sort((a, b) => a - b);
    // Requests in flight at the kill or sent within the first second after it.
    const firstSecond = timeline.filter((e) => e[0] >= killedAt && e[0] - e[1] <= killedAt + 1000);
    const firstOk = firstSecond.filter(ok).map((e) => e[1]).sort((a, b) => a - b);
    const after = timeline.filter((e) => e[0] >= killedAt);
    const result = {
      command: commandFor('failover'),
      setup: `4 members, backup, ack sync; load (${settings.connections} connections, POST /write) through bench/sticky-proxy.ts onto node1; SIGKILL node1 after ${settings.failoverBeforeSeconds} s`,
      requests: r.requests + r.errors,
      failedRequests: r.non2xx + r.errors,
      failedAfterKill: after.filter((e) => !ok(e)).length,
      statusCodes: r.statusCodes,
      errors: r.errors,
      p99BeforeMs: round(quantile(before, 0.99), 2),
      p99FirstSecondMs: round(quantile(firstOk, 0.99), 2),
      maxFirstSecondMs: round(firstOk.length > 0 ? firstOk[firstOk.length - 1] : 0, 2),
      requestsFirstSecond: firstSecond.length,
      proxyRetries: proxyStats.retries ?? 0,
      takeovers,
    };
    log(`  failed ${result.failedRequests}, p99 first second ${result.p99FirstSecondMs} ms (before: ${result.p99BeforeMs} ms), takeovers ${takeovers}`);
    return result;
  });
}

/** RSS and JS heap + Buffers of each app after a full GC (the apps run with --expose-gc). */
async function steadyMemory(members: AppProcess[]): Promise<{ rss: number[]; heap: number[] }> {
  const heap = await Promise.all(members.map((m) => collectGarbage(m.url)));
  return { rss: members.map((m) => rssBytes(m.proc.pid)), heap };
}

const per10k = (bytes: number, sessions: number) => round(bytes / (sessions / 10_000) / (1024 * 1024), 2);

async function transfer(): Promise<Record<string, unknown>> {
  const n = settings.transferSessions;
  log(`transfer: 3 delta members holding ${n} sessions, a 4th joins`);
  return withProcesses(async (track) => {
    const cluster = await startCluster(3, 'delta', clusterEnv, track);
    const mem0 = await steadyMemory(cluster.members);
    const filled = await fill(cluster.members[0].url, n);
    const mem1 = await steadyMemory(cluster.members);
    log(`  filled ${n} sessions in ${Math.round(filled.ms)} ms`);
    const joinStarted = performance.now();
    const joiner = await addMember(cluster, 'node4');
    track(joiner.proc);
    const listening = performance.now();
    let firstBatch: number | undefined;
    await waitFor(
      `node4 to hold ${n} sessions`,
      async () => {
        const s = await status(joiner.url);
        const held = s.sessions.primary + s.sessions.backup;
        if (held > 0 && firstBatch === undefined) firstBatch = performance.now();
        return held >= n;
      },
      600_000,
      50,
    );
    const done = performance.now();
    const readyLine = await joiner.proc.waitForLine(/"event":"ready"/, 600_000);
    const readyMs = (JSON.parse(readyLine) as { readyMs: number }).readyMs;
    const received = (await metrics(joiner.url)).koa_session_cluster_bytes_received_total ?? 0;
    const joinerMem = await steadyMemory([joiner]);
    const seconds = readyMs / 1000;
    const result = {
      command: commandFor('transfer'),
      sessions: n,
      fillSessionsPerSecond: round(n / (filled.ms / 1000), 0),
      processStartSeconds: round((listening - joinStarted) / 1000, 2),
      seconds: round(seconds, 2),
      secondsListeningToAllHeld: round((done - listening) / 1000, 2),
      secondsFirstBatchToAllHeld: round((done - (firstBatch ?? listening)) / 1000, 2),
      bytesReceived: received,
      mbPerSecond: round(received / 1e6 / seconds, 2),
      sessionsPerSecond: round(n / seconds, 0),
      rssPer10kMiB: {
        writer: per10k(mem1.rss[0] - mem0.rss[0], n),
        replica: per10k(mem1.rss[1] - mem0.rss[1], n),
        joiner: per10k(joinerMem.rss[0] - mem0.rss[1], n),
      },
      heapPer10kMiB: {
        writer: per10k(mem1.heap[0] - mem0.heap[0], n),
        replica: per10k(mem1.heap[1] - mem0.heap[1], n),
        joiner: per10k(joinerMem.heap[0] - mem0.heap[1], n),
      },
    };
    log(`  ${result.seconds} s from cluster.start() to ready (${result.secondsListeningToAllHeld} s listening to all held), ${result.mbPerSecond} MB/s, ${result.sessionsPerSecond} sessions/s`);
    return result;
  });
}

async function memory(): Promise<Record<string, unknown>> {
  const n = settings.memorySessions;
  const out: Record<string, unknown> = { command: commandFor('memory'), sessions: n };
  log(`memory: RSS per 10k sessions (${n} created)`);
  out.memory = await withProcesses(async (track) => {
    const v = await startVariant('memory', track);
    const m0 = await steadyMemory(v.members);
    await fill(v.url, n);
    const m1 = await steadyMemory(v.members);
    return { appPer10kMiB: per10k(m1.rss[0] - m0.rss[0], n), heapPer10kMiB: per10k(m1.heap[0] - m0.heap[0], n) };
  });
  out.redis = await withProcesses(async (track) => {
    const v = await startVariant('redis', track);
    const redisPid = v.redis!.pid;
    const r0 = rssBytes(redisPid);
    await fill(v.url, n);
    await sleep(200);
    return { redisServerPer10kMiB: per10k(rssBytes(redisPid) - r0, n) };
  });
  out.backup = await withProcesses(async (track) => {
    const v = await startVariant('backup', track);
    const m0 = await steadyMemory(v.members);
    await fill(v.url, n);
    const m1 = await steadyMemory(v.members);
    const growth = m1.rss.map((r, i) => r - m0.rss[i]);
    const heap = m1.heap.map((r, i) => r - m0.heap[i]);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    return {
      primaryPer10kMiB: per10k(growth[0], n),
      backupsPer10kMiB: per10k(sum(growth.slice(1)), n),
      clusterPer10kMiB: per10k(sum(growth), n),
      heap: { primaryPer10kMiB: per10k(heap[0], n), backupsPer10kMiB: per10k(sum(heap.slice(1)), n) },
    };
  });
  log(`  ${JSON.stringify(out)}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Results

const RESULTS = join(BENCH_DIR, 'results.json');
const README = join(BENCH_DIR, 'README.md');

type Results = Record<string, unknown> & { sections: Partial<Record<Section, Record<string, unknown>>> };

/** Sections of the last run; a run of some sections keeps the others' figures. */
const previousSections: Results['sections'] = existsSync(RESULTS)
  ? ((JSON.parse(readFileSync(RESULTS, 'utf8')) as Results).sections ?? {})
  : {};

function ratios(s: Results['sections']): Record<string, number | null> {
  const t = s.throughput as Record<string, { write: PhaseResult; read: PhaseResult }> | undefined;
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? null : round(a / b, 3));
  const c = s.codec as { avroVsJson: number; avroSchemaVsJson: number } | undefined;
  return {
    write_rps_vs_redis: ratio(t?.backup?.write.rps, t?.redis?.write.rps),
    read_rps_vs_redis: ratio(t?.backup?.read.rps, t?.redis?.read.rps),
    cpu_per_write_vs_redis: ratio(t?.backup?.write.cpuSecondsPer1000, t?.redis?.write.cpuSecondsPer1000),
    avro_vs_json_bytes: c === undefined ? null : settings.sessionSchema ? c.avroSchemaVsJson : c.avroVsJson,
    failover_failed_requests: (s.failover as { failedRequests?: number } | undefined)?.failedRequests ?? null,
    delta_write_rps_vs_redis: ratio(t?.delta?.write.rps, t?.redis?.write.rps),
    delta_read_rps_vs_redis: ratio(t?.delta?.read.rps, t?.redis?.read.rps),
    delta_cpu_per_write_vs_redis: ratio(t?.delta?.write.cpuSecondsPer1000, t?.redis?.write.cpuSecondsPer1000),
    cpu_per_read_vs_redis: ratio(t?.backup?.read.cpuSecondsPer1000, t?.redis?.read.cpuSecondsPer1000),
  };
}

async function main(): Promise<void> {
  if (args.report === true) {
    const results = JSON.parse(readFileSync(RESULTS, 'utf8')) as Results;
    writeFileSync(README, renderReadme(existsSync(README) ? readFileSync(README, 'utf8') : undefined, results));
    log(`rewrote the tables of ${README} from ${RESULTS}`);
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
  const runners: Record<Section, () => Promise<Record<string, unknown>>> = { throughput, bytes: bytesPerWrite, codec, failover, transfer, memory };
  try {
    for (const section of only) {
      const t0 = Date.now();
      sections[section] = { ...(await runners[section]()), measuredAt: new Date().toISOString(), quick, sessionSchema: settings.sessionSchema };
      log(`${section} done in ${Math.round((Date.now() - t0) / 1000)} s`);
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
    sections,
    ratios: ratios(sections),
  };
  if (profiling.dir === undefined) {
    writeFileSync(RESULTS, JSON.stringify(results, null, 2) + '\n');
    writeFileSync(README, renderReadme(existsSync(README) ? readFileSync(README, 'utf8') : undefined, results));
    log(`wrote ${RESULTS} and the tables of ${README} in ${durationSeconds} s`);
  } else log(`profiled run (figures skewed by the profiler): results.json and README.md left as they were`);
  if (profiling.dir === undefined) log(`ratios: ${JSON.stringify(results.ratios)}`);
  if (profiling.dir !== undefined) {
    const text = summarizeDir(profiling.dir, profiling.names, windows).map(formatSummary).join('\n\n');
    writeFileSync(join(WORK_DIR, 'profile-summary.txt'), text + '\n');
    process.stdout.write(text + '\n');
    log(`profile summary in ${join(WORK_DIR, 'profile-summary.txt')}`);
  }
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await stopAll();
  process.exit(1);
});
