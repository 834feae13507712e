/** Failover: SIGKILL the member taking the load behind the sticky proxy; failed requests and the latency of the first second after. */
import { clusterEnv, commandFor, log, settings } from './lib/context.js';
import { cookiesFile, monotonicUs, windows, withProcesses } from './lib/phase.js';
import { login, metrics, sleep, startCluster, startLoad, startProxy } from './lib/servers.js';
import { quantile, round } from './lib/stats.js';

export default async function failover(): Promise<Record<string, unknown>> {
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
    const killedUs = monotonicUs();
    node1.proc.kill('SIGKILL');
    // The survivors' profiles (node1 writes none: SIGKILL) over the second after the kill.
    await sleep(1000);
    windows.push({ label: 'failover first second', startUs: killedUs, endUs: monotonicUs() });
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
