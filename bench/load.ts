/**
 * The load generator, run by the runner as its own process: autocannon's programmatic API, cycling
 * round-robin through the pre-created sessions' cookies (`setupRequest`). Options come as JSON in
 * argv[2]; the result is written as JSON to `out`. Prints `{"event":"started","t":<epoch ms>}` when
 * the first requests go out.
 *
 * `followCookies` updates a session's cookie from each response's Set-Cookie, as a browser would
 * (the failover phase needs it: the member that takes a session over rewrites its id).
 * `timeline` records [epoch ms at completion, latency ms, status (0 = error)] for every request.
 * `rate` sends that many requests per second, evenly paced (lib/paced.ts) instead of autocannon's
 * closed loop. SIGTERM stops the load early and still writes the result.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { quantile, round } from './lib/stats.js';
import { paced } from './lib/paced.js';

export interface LoadOptions {
  url: string;
  method: 'GET' | 'POST';
  path: string;
  /** JSON file: an array of Cookie header values, one per session. */
  cookiesFile: string;
  connections: number;
  /** Seconds; or `amount` requests. */
  duration?: number;
  amount?: number;
  /** Requests per second, paced (a moderate, non-saturating load; lib/paced.ts); unset: autocannon, as fast as answered. */
  rate?: number;
  /** Seconds before a request counts as timed out. */
  timeout?: number;
  followCookies?: boolean;
  timeline?: boolean;
  out: string;
}

export interface LoadResult {
  requests: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationS: number;
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; mean: number; max: number };
  statusCodes: Record<string, number>;
  /** CPU time the load client itself used (it shares the machine with the app). */
  clientCpuSeconds: number;
  startedAt: number;
  finishedAt: number;
  timeline?: [t: number, latencyMs: number, status: number][];
}

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
  const cookies = JSON.parse(readFileSync(opts.cookiesFile, 'utf8')) as string[];
  if (cookies.length === 0) throw new Error('load: no cookies');
  let next = 0;
  const latencies: number[] = [];
  const timeline: [number, number, number][] = [];
  const statusCodes: Record<string, number> = {};
  let errors = 0;
  let timeouts = 0;

  const updateCookie = (i: number, setCookie: unknown) => {
    const headers = Array.isArray(setCookie) ? (setCookie as string[]) : typeof setCookie === 'string' ? [setCookie] : [];
    if (headers.length === 0) return;
    const jar = new Map(cookies[i].split('; ').map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)] as const));
    for (const h of headers) {
      const pair = h.split(';', 1)[0];
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    cookies[i] = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  };

  const started = Date.now();
  const cpu0 = process.cpuUsage();
  process.stdout.write(JSON.stringify({ event: 'started', t: started }) + '\n');
  const request: autocannon.Request = {
    method: opts.method,
    path: opts.path,
    setupRequest: (req, context) => {
      const i = next++ % cookies.length;
      (context as { i?: number }).i = i;
      return { ...req, headers: { ...req.headers, cookie: cookies[i] } };
    },
  };
  if (opts.followCookies === true) {
    request.onResponse = (_status, _body, context, headers) => {
      const i = (context as { i?: number }).i;
      if (i === undefined || headers === undefined) return;
      for (const k of Object.keys(headers)) if (k.toLowerCase() === 'set-cookie') updateCookie(i, headers[k]);
    };
  }
  /** The moderate-rate load (lib/paced.ts) in place of autocannon's. */
  const pacedLoad = () =>
    paced(
      {
        url: opts.url,
        method: opts.method,
        path: opts.path,
        rate: opts.rate!,
        connections: opts.connections,
        durationS: opts.duration ?? 10,
        timeoutMs: (opts.timeout ?? 10) * 1000,
        cookie: (i) => cookies[i % cookies.length],
      },
      {
        done: (i, latencyMs, status, setCookie) => {
          if (status === 0) {
            errors += 1;
            if (opts.timeline === true) timeline.push([Date.now(), 0, 0]);
            return;
          }
          latencies.push(latencyMs);
          statusCodes[status] = (statusCodes[status] ?? 0) + 1;
          if (opts.timeline === true) timeline.push([Date.now(), round(latencyMs), status]);
          if (opts.followCookies === true) updateCookie(i % cookies.length, setCookie);
        },
        stop: new Promise<void>((resolve) => process.once('SIGTERM', () => resolve())),
      },
    );
  const durationS = opts.rate !== undefined ? await pacedLoad() : (await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        pipelining: 1,
        timeout: opts.timeout ?? 10,
        ...(opts.amount !== undefined ? { amount: opts.amount } : { duration: opts.duration ?? 10 }),
        requests: [request],
      },
      (err: unknown, res: autocannon.Result) => (err !== null && err !== undefined ? reject(err instanceof Error ? err : new Error(JSON.stringify(err))) : resolve(res)),
    );
    // SIGTERM ends the load early (the runner stops it when what it waited for happened): the
    // result is still written.
    process.once('SIGTERM', () => instance.stop());
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      latencies.push(responseTime);
      statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1;
      if (opts.timeline === true) timeline.push([Date.now(), round(responseTime), statusCode]);
    });
    instance.on('reqError', (err: Error) => {
      errors += 1;
      if (/timed out/.test(err.message)) timeouts += 1;
      if (opts.timeline === true) timeline.push([Date.now(), 0, 0]);
    });
  })).duration;
  const cpu = process.cpuUsage(cpu0);
  const sorted = Float64Array.from(latencies).sort();
  const ok = Object.entries(statusCodes).reduce((n, [code, c]) => (code.startsWith('2') ? n + c : n), 0);
  const out: LoadResult = {
    requests: latencies.length,
    ok,
    non2xx: latencies.length - ok,
    errors,
    timeouts,
    durationS,
    rps: round(ok / durationS),
    latencyMs: {
      p50: round(quantile(sorted, 0.5)),
      p90: round(quantile(sorted, 0.9)),
      p99: round(quantile(sorted, 0.99)),
      mean: round(latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length)),
      max: round(sorted.length > 0 ? sorted[sorted.length - 1] : 0),
    },
    statusCodes,
    clientCpuSeconds: round((cpu.user + cpu.system) / 1e6),
    startedAt: started,
    finishedAt: Date.now(),
    ...(opts.timeline === true ? { timeline } : {}),
  };
  writeFileSync(opts.out, JSON.stringify(out));
}

main().catch((err: unknown) => {
  process.stderr.write(`load: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
