/**
 * The realistic network (issue 14, item 3): bench/delay-proxy.ts, its own process, adds a one-way
 * delay between the app and redis-server and between cluster members (never between the load client
 * and the app). At a moderate, non-saturating rate, compares p50 and p99 of reads and writes: with
 * koa-redis a read pays one round trip to redis-server and a write two (GET, then SET); with the
 * cluster a read pays none and a write one (to the backup).
 *
 * The proxy's delay is calibrated first (sub-millisecond sleeps overshoot): configured so that the
 * measured round trip through it, to an echo server, is `2 × rttDelayMs` above the direct one.
 */
import { args, clusterEnv, commandFor, log, previousSections, settings } from './lib/context.js';
import { cookiesFile, named, phase, withProcesses, type Named, type Variant } from './lib/phase.js';
import { startEcho, roundTrips } from './lib/rtt-probe.js';
import { freePort, login, startApp, startCluster, startDelayProxy, startLoad, startRedis, type DelayRoute } from './lib/servers.js';
import type { BenchProcess } from './lib/processes.js';
import { quantile, round } from './lib/stats.js';

/** The loopback address the delay proxy listens on: "the network" (every 127/8 address is lo's). */
const NET = '127.0.0.2';
const PROBES = 2000;

/** The added round trip through a proxy with one-way `delayMs`, against `echoPort` direct. */
async function addedRtt(echoPort: number, delayMs: number): Promise<{ direct: number; through: number; added: number }> {
  const proxy = await startDelayProxy(delayMs, [{ listen: `${NET}:0`, target: `127.0.0.1:${echoPort}` }]);
  try {
    const direct = await roundTrips('127.0.0.1', echoPort, PROBES);
    const through = await roundTrips(NET, proxy.ports[0], PROBES);
    return { direct: direct.p50Ms, through: through.p50Ms, added: round(through.p50Ms - direct.p50Ms, 3) };
  } finally {
    proxy.proc.kill('SIGKILL');
    await proxy.proc.exited;
  }
}

/** The one-way delay to configure so that the added round trip is `2 × target` (two corrections at most). */
async function calibrate(echoPort: number): Promise<{ configuredMs: number; addedRttMs: number }> {
  const target = 2 * settings.rttDelayMs;
  let configured = settings.rttDelayMs;
  let m = await addedRtt(echoPort, configured);
  for (let i = 0; i < 2 && Math.abs(m.added - target) > 0.05; i++) {
    configured = Math.max(0, round(configured - (m.added - target) / 2, 3));
    m = await addedRtt(echoPort, configured);
  }
  log(`  delay proxy: configured ${configured} ms one way, measured +${m.added} ms per round trip (target +${target})`);
  return { configuredMs: configured, addedRttMs: m.added };
}

/** A variant running behind the proxy: where the load goes and whose CPU it costs. */
interface Target {
  variant: Variant;
  url: string;
  procs: Named[];
  cookies?: string;
}

/**
 * Starts every chosen variant at once, with one delay proxy for all their network: an echo route (to
 * measure the added round trip again), redis-server's, and one per member (each member listens on
 * 127.0.0.1:P and advertises NET, where the proxy listens on the same port P). Idle variants cost
 * next to nothing, so the phases can take turns between them.
 */
async function startAll(variants: readonly Variant[], delayMs: number, echoPort: number, track: (...p: BenchProcess[]) => void) {
  const redis = variants.includes('redis') ? await startRedis() : undefined;
  if (redis !== undefined) track(redis.proc);
  const sizes = { backup: 4, delta: 3 } as const;
  const memberPorts = new Map<Variant, number[]>();
  for (const v of variants) if (v === 'backup' || v === 'delta') memberPorts.set(v, await Promise.all(Array.from({ length: sizes[v] }, () => freePort())));
  const routes: DelayRoute[] = [{ listen: `${NET}:0`, target: `127.0.0.1:${echoPort}` }];
  if (redis !== undefined) routes.push({ listen: `${NET}:0`, target: `127.0.0.1:${redis.port}` });
  for (const ports of memberPorts.values()) for (const p of ports) routes.push({ listen: `${NET}:${p}`, target: `127.0.0.1:${p}` });
  const proxy = await startDelayProxy(delayMs, routes);
  track(proxy.proc);
  const targets: Target[] = [];
  for (const variant of variants) {
    if (variant === 'memory') {
      const app = await startApp('memory', { STORE: 'memory' });
      track(app.proc);
      targets.push({ variant, url: app.url, procs: [named(app)] });
    } else if (variant === 'redis') {
      const app = await startApp('redis', { STORE: 'redis', REDIS_HOST: NET, REDIS_PORT: String(proxy.ports[1]) });
      track(app.proc);
      targets.push({ variant, url: app.url, procs: [named(app), { name: 'redis-server', pid: redis!.proc.pid }] });
    } else {
      const ports = memberPorts.get(variant)!;
      const portOf = (route: string) => ports[Number(route.slice('node'.length)) - 1];
      const cluster = await startCluster(sizes[variant], variant, clusterEnv, track, (route) => ({ RECEIVER_PORT: String(portOf(route)), ADVERTISE: NET }));
      targets.push({ variant, url: cluster.members[0].url, procs: cluster.members.map(named) });
    }
  }
  return { targets, proxy: proxy.proc, echoPort: proxy.ports[0] };
}

type Timeline = [t: number, latencyMs: number, status: number][];

/** p50, p90 and p99 of the successful requests of several phases' timelines. */
function percentiles(timelines: Timeline[]): { p50Ms: number; p90Ms: number; p99Ms: number; requests: number; failed: number } {
  const all = timelines.flat();
  const ok = all.filter((e) => e[2] >= 200 && e[2] < 300).map((e) => e[1]).sort((a, b) => a - b);
  return {
    p50Ms: round(quantile(ok, 0.5), 2),
    p90Ms: round(quantile(ok, 0.9), 2),
    p99Ms: round(quantile(ok, 0.99), 2),
    requests: all.length,
    failed: all.length - ok.length,
  };
}

export default async function rtt(): Promise<Record<string, unknown>> {
  const all = ['memory', 'redis', 'backup', 'delta'] as const;
  const chosen = args.variants === undefined ? (['memory', 'redis', 'backup'] as const) : all.filter((v) => args.variants!.split(',').includes(v));
  const rounds = settings.quick ? 2 : 5;
  const echo = await startEcho();
  try {
    log(`rtt: calibrating the delay proxy (${settings.rttDelayMs} ms each way)`);
    const calibration = await calibrate(echo.port);
    return await withProcesses(async (track) => {
      const { targets, proxy, echoPort } = await startAll(chosen, calibration.configuredMs, echo.port, track);
      const apart = [{ name: 'delay-proxy', pid: proxy.pid }];
      for (const t of targets) {
        t.cookies = cookiesFile(`rtt-${t.variant}`, await login(t.url, settings.sessions));
        const base = { url: t.url, cookiesFile: t.cookies, connections: settings.rttConnections, rate: settings.rttRate, duration: settings.warmupSeconds };
        await startLoad({ ...base, method: 'POST', path: '/write' }).result;
        await startLoad({ ...base, method: 'GET', path: '/read' }).result;
      }
      // The variants take turns, round after round, so a neighbour's burst of work on the shared
      // cores falls on all of them alike rather than on whichever ran at that moment.
      const kinds = [
        { kind: 'write', method: 'POST', path: '/write' },
        { kind: 'read', method: 'GET', path: '/read' },
      ] as const;
      const acc = new Map<string, { timelines: Timeline[]; ok: number; cpu: number; proxyCpu: number; otherCores: number[] }>();
      const seconds = Math.max(2, Math.round(settings.rttSeconds / rounds));
      log(`rtt: ${chosen.join(', ')} at ${settings.rttRate} requests/s, ${rounds} rounds of ${seconds} s per variant and kind`);
      for (let r = 0; r < rounds; r++) {
        for (const k of kinds) {
          for (const t of targets) {
            const key = `${t.variant} ${k.kind}`;
            const p = await phase(`${key}s (rtt)`, t.procs, { url: t.url, cookiesFile: t.cookies!, connections: settings.rttConnections, rate: settings.rttRate, method: k.method, path: k.path, duration: seconds, timeline: true }, apart);
            const a = acc.get(key) ?? { timelines: [], ok: 0, cpu: 0, proxyCpu: 0, otherCores: [] };
            a.timelines.push(p.load.timeline ?? []);
            a.ok += p.load.ok;
            a.cpu += p.cpuSeconds;
            a.proxyCpu += p.apartCpuSeconds['delay-proxy'] ?? 0;
            a.otherCores.push(p.otherCores);
            acc.set(key, a);
          }
        }
      }
      const out: Record<string, unknown> = { ...(previousSections.rtt ?? {}) };
      for (const t of targets) {
        const figures = (kind: string) => {
          const a = acc.get(`${t.variant} ${kind}`)!;
          return {
            ...percentiles(a.timelines),
            cpuSecondsPer1000: round(a.cpu / Math.max(1, a.ok / 1000), 4),
            proxyCpuSecondsPer1000: round(a.proxyCpu / Math.max(1, a.ok / 1000), 4),
            otherCores: round(a.otherCores.reduce((x, y) => x + y, 0) / a.otherCores.length, 2),
          };
        };
        out[t.variant] = { write: figures('write'), read: figures('read'), measuredAt: new Date().toISOString() };
        const v = out[t.variant] as { write: { p50Ms: number; p99Ms: number }; read: { p50Ms: number; p99Ms: number } };
        log(`  ${t.variant}: write p50 ${v.write.p50Ms} p99 ${v.write.p99Ms} ms; read p50 ${v.read.p50Ms} p99 ${v.read.p99Ms} ms`);
      }
      // The proxy's added round trip once more, now beside the variants' processes (idle).
      const direct = await roundTrips('127.0.0.1', echo.port, PROBES);
      const through = await roundTrips(NET, echoPort, PROBES);
      return {
        ...out,
        command: commandFor('rtt'),
        delayMs: settings.rttDelayMs,
        configuredDelayMs: calibration.configuredMs,
        addedRttMs: calibration.addedRttMs,
        addedRttAfterMs: round(through.p50Ms - direct.p50Ms, 3),
        rate: settings.rttRate,
        connections: settings.rttConnections,
        rounds,
        secondsPerPhase: seconds,
      };
    });
  } finally {
    echo.server.close();
  }
}
