/**
 * The one Koa app every bench variant runs: koa-session 7 with signed cookies and an external store
 * chosen by `STORE`:
 *
 * - `memory`: a plain in-process Map (the upper bound: no serialisation, no network);
 * - `redis`: koa-redis against the redis-server at `REDIS_PORT`;
 * - `cluster`: koa-session-cluster, `MODE` backup or delta, on loopback multicast `MCAST_ADDRESS:MCAST_PORT`.
 *
 * The realistic-network bench puts bench/delay-proxy.ts in between: `REDIS_HOST` (default 127.0.0.1)
 * is where koa-redis dials; a member listens on `RECEIVER_PORT` (default 0, any) and advertises
 * `ADVERTISE` (another loopback address, where the proxy listens on the same port), so every other
 * member reaches it through the proxy.
 *
 * Routes: `POST /login?u=N` (creates the session), `POST /write` (read-modify-write: `views + 1`,
 * `lastSeen`), `GET /read` (read-only). Both answer 401 when the session is gone, so a lost session
 * counts as a failed request. `/bench/*` are bench-only helpers: fill the store directly, report memory.
 * Prints `{"event":"listening",...}` when it serves; exits at once on SIGTERM (so `--cpu-prof` is written;
 * with `HEAP_PROFILE_DIR`, after writing its allocation samples there).
 */
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import Koa, { type Middleware } from 'koa';
import session from 'koa-session';
import { benchSessionSchema, sessionFor } from './session.js';

/** The store interface koa-session calls, as every variant implements it. */
interface Store {
  get(key: string, maxAge: number | 'session' | undefined, data: { rolling: boolean; ctx?: unknown }): Promise<unknown>;
  set(key: string, sess: Record<string, unknown>, maxAge: number | 'session' | undefined, data: { rolling: boolean; changed: boolean; ctx?: unknown }): Promise<void>;
  destroy(key: string, data: { ctx?: unknown }): Promise<void>;
}

const env = process.env;
const MAX_AGE = 24 * 60 * 60 * 1000;
const kind = env.STORE ?? 'memory';

/** The plain memory store: keeps the object koa-session hands over (koa-session copies it on load). */
function memoryStore(): Store {
  const map = new Map<string, { sess: Record<string, unknown>; expire: number }>();
  return {
    get(key) {
      const e = map.get(key);
      if (e === undefined) return Promise.resolve(undefined);
      if (e.expire < Date.now()) {
        map.delete(key);
        return Promise.resolve(undefined);
      }
      return Promise.resolve(e.sess);
    },
    set(key, sess, maxAge) {
      map.set(key, { sess, expire: Date.now() + (typeof maxAge === 'number' ? maxAge : MAX_AGE) });
      return Promise.resolve();
    },
    destroy(key) {
      map.delete(key);
      return Promise.resolve();
    },
  };
}

interface Variant {
  store: Store;
  genid: () => string;
  before: Middleware[];
  ready: () => Promise<Record<string, unknown>>;
  whenReady?: () => Promise<void>;
}

async function makeVariant(): Promise<Variant> {
  if (kind === 'memory') return { store: memoryStore(), genid: randomUUID, before: [], ready: () => Promise.resolve({}) };
  if (kind === 'redis') {
    const { default: redisStore } = await import('koa-redis');
    const store = redisStore({ host: env.REDIS_HOST ?? '127.0.0.1', port: Number(env.REDIS_PORT) });
    return { store: store, genid: randomUUID, before: [], ready: () => Promise.resolve({}) };
  }
  if (kind !== 'cluster') throw new Error(`STORE=${kind}: expected memory, redis or cluster`);
  const { createSessionCluster } = await import('../src/index.js');
  const { pino } = await import('pino');
  const route = env.ROUTE ?? 'node1';
  const cluster = createSessionCluster({
    route,
    mode: env.MODE === 'delta' ? 'delta' : 'backup',
    ack: env.ACK === 'async' ? 'async' : 'sync',
    secret: env.CLUSTER_SECRET ?? 'bench-secret-0123456789abcdef',
    clusterName: env.CLUSTER_NAME ?? 'bench',
    membership: {
      multicast: {
        address: env.MCAST_ADDRESS ?? '239.1.2.3',
        port: Number(env.MCAST_PORT ?? 45564),
        interface: '127.0.0.1',
        frequency: Number(env.MCAST_FREQUENCY ?? 250),
        dropTime: Number(env.MCAST_DROP ?? 2000),
      },
    },
    receiver: { host: '127.0.0.1', port: Number(env.RECEIVER_PORT ?? 0), ...(env.ADVERTISE !== undefined ? { advertise: env.ADVERTISE } : {}) },
    ...(env.SESSION_SCHEMA === '1' ? { sessionSchema: benchSessionSchema } : {}),
    // The bench's setup fills the store as fast as the loop goes (`/bench/fill`): load shedding would
    // refuse its own sessions. Measured as before, unless a scenario asks for it.
    maxEventLoopDelay: Number(env.MAX_EVENT_LOOP_DELAY ?? 0),
    ...(env.BACKUPS !== undefined ? { backups: Number(env.BACKUPS) } : {}),
    logger: pino({ level: env.LOG_LEVEL ?? 'warn', base: { member: route } }),
  });
  await cluster.start();
  return {
    store: cluster.store,
    genid: cluster.genid,
    before: [cluster.statusRouter().routes() as Middleware, cluster.routeBinder()],
    ready: () => Promise.resolve({ receiver: cluster.members().find((m) => m.self)?.port, route }),
    whenReady: () => cluster.ready(),
  };
}

// --profile: allocation sampling, written at SIGTERM (see lib/heap-sampling.ts).
const heapProfileDir = env.HEAP_PROFILE_DIR;
const heapSampling = heapProfileDir === undefined ? undefined : await import('./lib/heap-sampling.js');
await heapSampling?.startHeapSampling();

const startedAt = performance.now();
const variant = await makeVariant();
const app = new Koa();
app.keys = ['bench-cookie-key-1'];
app.silent = true;

/**
 * Creates `n` sessions straight through the store, `concurrency` at a time (bench setup only). A
 * write answered "unavailable" (503: the cluster cannot tell now, e.g. a member's heartbeat came late
 * on a loaded machine) is tried again after a pause, as a client honouring Retry-After would, up to
 * 5 times; the retries are counted.
 */
async function fill(n: number, concurrency: number): Promise<{ ms: number; retries: number }> {
  const started = performance.now();
  let next = 0;
  let retries = 0;
  const setWithRetry = async (id: string, data: Record<string, unknown>) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await variant.store.set(id, data, MAX_AGE, { rolling: false, changed: true });
      } catch (err) {
        if ((err as { status?: number }).status !== 503 || attempt >= 50) throw err; // 10 s: a busy machine can cost a member its lease for a moment
        retries++;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await setWithRetry(variant.genid(), { ...sessionFor(1_000_000 + i), _expire: Date.now() + MAX_AGE, _maxAge: MAX_AGE });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ms: performance.now() - started, retries };
}

app.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/bench/')) return next();
  if (ctx.path === '/bench/fill' && ctx.method === 'POST') {
    const n = Number(ctx.query.n ?? 1000);
    const { ms, retries } = await fill(n, Number(ctx.query.concurrency ?? 64));
    ctx.body = { created: n, ms, retries };
  } else if (ctx.path === '/bench/memory') {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc !== undefined) {
      gc();
      gc();
    }
    ctx.body = { ...process.memoryUsage(), gc: gc !== undefined };
  } else ctx.status = 404;
});
for (const mw of variant.before) app.use(mw);
app.use(session({ key: 'koa.sess', signed: true, maxAge: MAX_AGE, store: variant.store, genid: variant.genid }, app));
app.use((ctx) => {
  const s = ctx.session!;
  switch (`${ctx.method} ${ctx.path}`) {
    case 'POST /login':
      Object.assign(s, sessionFor(Number(ctx.query.u ?? 0)));
      ctx.body = { ok: true };
      return;
    case 'POST /write':
      if (s.user === undefined) {
        ctx.status = 401;
        return;
      }
      s.views = (s.views as number) + 1;
      s.lastSeen = Date.now();
      ctx.body = { views: s.views };
      return;
    case 'GET /read': {
      const user = s.user as { name: string } | undefined;
      if (user === undefined) {
        ctx.status = 401;
        return;
      }
      ctx.body = { name: user.name, views: s.views, items: (s.cart as unknown[]).length };
      return;
    }
    default:
      ctx.status = 404;
  }
});

const server = createServer(app.callback());
server.keepAliveTimeout = 10_000;
server.listen(Number(env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  void variant.ready().then((extra) => {
    process.stdout.write(JSON.stringify({ event: 'listening', store: kind, port, pid: process.pid, ...extra }) + '\n');
    // readyMs: from cluster.start() until ready() (delta: discovery plus the whole state transfer).
    void variant.whenReady?.().then(() =>
      process.stdout.write(JSON.stringify({ event: 'ready', readyMs: Math.round(performance.now() - startedAt) }) + '\n'),
    );
  });
});

const exit = () => {
  if (heapSampling === undefined || heapProfileDir === undefined) process.exit(0);
  else void heapSampling.writeHeapSampling(heapProfileDir).finally(() => process.exit(0));
};
process.on('SIGTERM', exit);
process.on('SIGINT', exit);
