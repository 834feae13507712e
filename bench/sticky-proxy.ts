/**
 * A tiny sticky load balancer for the failover bench, run as its own process: it sends each request
 * to the member named by the session cookie's route suffix (`koa.sess=<base>.<route>`) and, when that
 * member cannot be reached or drops the connection before answering, retries on the next member in
 * a per-session order, like nginx with `proxy_next_upstream error non_idempotent` and a short
 * `fail_timeout`. A response, whatever its status, is passed through unchanged (never retried).
 *
 * argv[2]: JSON `{ "upstreams": [{ "route": "node1", "port": 1234 }, ...], "failTimeoutMs": 1000 }`.
 * Prints `{"event":"listening","port":N}`. `GET /__proxy/stats` answers `{ requests, retries, failed }`.
 */
import { createServer, request, Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';

interface Upstream {
  route: string;
  port: number;
  downUntil: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as { upstreams: { route: string; port: number }[]; failTimeoutMs?: number };
const upstreams: Upstream[] = config.upstreams.map((u) => ({ ...u, downUntil: 0 }));
const failTimeoutMs = config.failTimeoutMs ?? 1000;
const agent = new Agent({ keepAlive: true, maxSockets: 256 });
const stats = { requests: 0, retries: 0, failed: 0 };

/** The session id in the cookie header, if any. */
function sessionId(cookie: string | undefined): string | undefined {
  if (cookie === undefined) return undefined;
  const m = /(?:^|;\s*)koa\.sess=([^;]*)/.exec(cookie);
  return m?.[1];
}

/** Upstreams to try, in order: the session's own member first, then the rest by a per-session hash. */
function candidates(id: string | undefined): Upstream[] {
  const dot = id?.lastIndexOf('.') ?? -1;
  const route = id !== undefined && dot >= 0 ? id.slice(dot + 1) : undefined;
  const base = id !== undefined && dot >= 0 ? id.slice(0, dot) : (id ?? String(Math.random()));
  const score = (u: Upstream) => createHash('sha1').update(`${base}/${u.route}`).digest().readUInt32BE(0);
  const now = Date.now();
  const ordered = [...upstreams].sort((a, b) => {
    if (a.route === route) return -1;
    if (b.route === route) return 1;
    return score(b) - score(a);
  });
  const up = ordered.filter((u) => u.downUntil <= now);
  // When every member is marked down, try them all anyway rather than fail at once.
  return up.length > 0 ? up : ordered;
}

function forward(u: Upstream, req: IncomingMessage, body: Buffer): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const upstream = request(
      { host: '127.0.0.1', port: u.port, method: req.method, path: req.url, headers: req.headers, agent },
      resolve,
    );
    upstream.on('error', reject);
    upstream.end(body);
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.url === '/__proxy/stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(stats));
    return;
  }
  stats.requests += 1;
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const tries = candidates(sessionId(req.headers.cookie));
  for (let i = 0; i < tries.length; i++) {
    const u = tries[i];
    try {
      const upstreamRes = await forward(u, req, body);
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      upstreamRes.pipe(res);
      return;
    } catch {
      // Connection refused or reset before any response: the member is gone; try the next one.
      u.downUntil = Date.now() + failTimeoutMs;
      if (i + 1 < tries.length) stats.retries += 1;
    }
  }
  stats.failed += 1;
  res.statusCode = 502;
  res.end('no member answered');
}

const server = createServer((req, res) => {
  handle(req, res).catch(() => {
    stats.failed += 1;
    if (!res.headersSent) res.statusCode = 502;
    res.end();
  });
});
server.keepAliveTimeout = 10_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(JSON.stringify({ event: 'listening', port, pid: process.pid }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
