/**
 * The chaos run's member as a Fastify app with @fastify/session through `cluster.fastifySession`
 * (`npm run chaos -- --framework fastify`): the same routes and answers as member.ts, the Koa one,
 * whose header says what the counter and the log lines are for.
 *
 * `x-chaos-handled: 0` until the route handler starts: on a 503 from the route binder or from loading
 * the session, nothing was written or removed.
 */
import { createServer, type Server } from 'node:http';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { parseSessionId, shortId } from '../../src/replication/session-id.js';
import { CHAOS_COOKIE, chaosCluster, logger, maxAge, route, serveMember, type Counter } from './member-cluster.js';

const cluster = chaosCluster();
let server: Server | undefined;
const app = Fastify({ serverFactory: (handler) => (server = createServer(handler)) });

type Sess = Record<string, unknown> & { sessionId: string; regenerate(): Promise<void>; destroy(): Promise<void> };
const sess = (req: FastifyRequest) => (req as unknown as { session: Sess }).session;
const handled = new WeakSet<FastifyRequest>();
const served = new WeakMap<FastifyRequest, string>();

app.addHook('onRequest', (_req, reply, done) => {
  void reply.header('x-chaos-handled', '0');
  done();
});
app.addHook('onResponse', (req, reply, done) => {
  logger.info({ req: req.headers['x-chaos-req'], path: req.url, status: reply.statusCode, handled: handled.has(req), ms: Math.round(reply.elapsedTime), served: served.get(req) }, 'chaos request');
  done();
});
const status = cluster.statusHandler();
for (const url of ['/cluster', '/cluster/*']) {
  app.get(url, (req, reply) => {
    reply.hijack();
    status(req.raw, reply.raw);
  });
}

/** The answer of a route that reads the session as it is. */
function answer(req: FastifyRequest, extra: Record<string, unknown>): Record<string, unknown> {
  const s = sess(req);
  const loggedIn = typeof s.login === 'string';
  const id = parseSessionId(s.sessionId);
  if (loggedIn && id !== undefined) served.set(req, shortId(id.base));
  return { route, loggedIn, login: s.login ?? null, base: loggedIn ? (id?.base ?? null) : null, ...extra };
}

await app.register(async (site) => {
  await site.register(cluster.fastifySession, { cookieName: CHAOS_COOKIE, secret: 'chaos-cookie-key-of-at-least-32-characters', cookie: { maxAge, secure: false }, rolling: false, saveUninitialized: false });
  site.addHook('preHandler', (req: FastifyRequest, reply: FastifyReply, done) => {
    handled.add(req);
    void reply.header('x-chaos-handled', '1');
    done();
  });
  const w = (req: FastifyRequest) => String(req.headers['x-chaos-req']);
  site.post('/login', (req) => {
    const s = sess(req);
    const body = req.body as { user?: string; token?: string };
    s.user = String(body.user);
    s.login = String(body.token);
    s.c = { n: 0, w: w(req) } satisfies Counter;
    served.set(req, 'new');
    return { route, loggedIn: true, login: s.login, c: s.c };
  });
  site.post('/incr', (req) => {
    const s = sess(req);
    if (typeof s.login !== 'string') return answer(req, {});
    const prev = s.c as Counter;
    s.c = { n: prev.n + 1, w: w(req) } satisfies Counter;
    return answer(req, { prev, c: s.c });
  });
  site.get('/get', (req) => answer(req, { c: typeof sess(req).login === 'string' ? sess(req).c : null }));
  site.post('/regenerate', async (req) => {
    const s = sess(req);
    if (typeof s.login !== 'string') return answer(req, {});
    const prev = s.c as Counter;
    const { user, login } = s;
    await s.regenerate(); // the old id is destroyed here; the data goes to a new id
    Object.assign(sess(req), { user, login, c: { n: prev.n, w: w(req) } satisfies Counter });
    served.set(req, 'regenerated');
    return { route, loggedIn: true, login, prev, c: sess(req).c };
  });
  site.post('/revoke-others', async (req) => {
    const s = sess(req);
    if (typeof s.login !== 'string') return answer(req, { destroyed: null });
    return answer(req, { destroyed: await cluster.destroySessions(String(s.user), { except: s.sessionId }) });
  });
  site.post('/logout', async (req) => {
    const s = sess(req);
    const loggedIn = typeof s.login === 'string';
    const out = answer(req, { destroyed: loggedIn ? s.login : null });
    if (loggedIn) await s.destroy();
    return out;
  });
});
app.setErrorHandler((err: Error & { status?: number; statusCode?: number; code?: string; headers?: Record<string, string> }, _req, reply) => {
  logger.warn({ code: err.code, msg: err.message }, 'request failed');
  for (const [k, v] of Object.entries(err.headers ?? {})) void reply.header(k, v);
  const status = err.statusCode ?? err.status;
  return reply.code(typeof status === 'number' && status >= 400 ? status : 500).send({ error: err.code ?? err.name, message: err.message });
});
await app.ready();
await serveMember(cluster, server!);
