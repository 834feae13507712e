/**
 * One member of the demo cluster, as a Fastify app: the same pages and JSON as the Koa member
 * (app.ts, whose header lists the environment; demo/actions.ts does the work), with @fastify/session
 * through `cluster.fastifySession` and the status page through `cluster.statusHandler()`.
 * `npm run demo -- --framework fastify` starts these.
 */
import { createServer, type Server } from 'node:http';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { SessionUnavailableError } from '../src/index.js';
import { COOKIE, MAX_BODY_BYTES, SESSION_MAX_AGE, cookieKeys, demoCluster, isLoopback, logger, route, runMember, servedBy } from './member.js';
import { DemoActions, type DemoAnswer, type DemoSession } from './actions.js';

const env = process.env;
const cluster = demoCluster();
let server: Server | undefined;
// runMember listens and stops the Node server; Fastify builds its routes on it.
const app = Fastify({ bodyLimit: MAX_BODY_BYTES, serverFactory: (handler) => (server = createServer(handler)) });
const actions = new DemoActions(cluster, logger, () => servedBy(cluster, server!));

type FastifySession = Record<string, unknown> & { sessionId: string; regenerate(): Promise<void>; destroy(): Promise<void> };

/** @fastify/session's session, as the demo's actions use it. */
function sessionOf(req: FastifyRequest): DemoSession {
  const s = () => (req as unknown as { session: FastifySession | null }).session ?? undefined;
  return {
    values: s,
    id: () => s()?.sessionId,
    regenerate: () => s()!.regenerate(),
    destroy: () => s()!.destroy(),
  };
}

const isForm = (req: FastifyRequest) => (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
const body = (req: FastifyRequest) => (typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : {});

function answer(reply: FastifyReply, a: DemoAnswer): FastifyReply {
  if ('redirect' in a) return reply.redirect(a.redirect, 303);
  if ('html' in a) return reply.code(a.status).type('text/html; charset=utf-8').send(a.html);
  if ('json' in a) return reply.code(a.status).send(a.json);
  return reply.code(a.status).type('text/plain; charset=utf-8').send(a.text);
}

// HTML forms post urlencoded bodies (JSON is built in).
app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, text, done) => {
  done(null, Object.fromEntries(new URLSearchParams(String(text))));
});
app.addHook('onRequest', async (_req, reply) => {
  reply.header('x-served-by', route);
  // Pages change with every failover: a reload must reach a member, never a cache.
  reply.header('cache-control', 'no-store');
});
// The status page's routes, before the session: status requests make no sessions. Loopback only.
const status = cluster.statusHandler({ dashboard: env.DASHBOARD !== '0', authorize: (ctx) => isLoopback(ctx.req.socket.remoteAddress) });
// No session plugin in this context: the site's is registered in its own, below.
for (const url of ['/cluster', '/cluster/*']) {
  app.get(url, (req, reply) => {
    reply.hijack();
    status(req.raw, reply.raw);
  });
}
await app.register(async (site) => {
  await site.register(cluster.fastifySession, {
    cookieName: COOKIE,
    secret: cookieKeys(),
    cookie: { maxAge: SESSION_MAX_AGE, httpOnly: true, sameSite: 'lax', secure: false },
    saveUninitialized: false,
  });
  site.get('/', async (req, reply) => answer(reply, await actions.page(sessionOf(req))));
  site.get('/sessions', async (req, reply) => answer(reply, await actions.sessions(sessionOf(req))));
  site.post('/sessions/revoke-others', async (req, reply) => answer(reply, await actions.revokeOthers(sessionOf(req), isForm(req))));
  site.post('/login', async (req, reply) => answer(reply, await actions.login(sessionOf(req), body(req), isForm(req))));
  site.get('/me', (req, reply) => answer(reply, actions.me(sessionOf(req))));
  site.post('/cart', (req, reply) => answer(reply, actions.cart(sessionOf(req), body(req), isForm(req))));
  site.post('/logout', async (req, reply) => answer(reply, await actions.logout(sessionOf(req), isForm(req))));
  site.get('/favicon.ico', (_req, reply) => reply.code(204).send());
});
app.setErrorHandler((err: Error & { statusCode?: number; status?: number }, _req, reply) => {
  const status = err instanceof SessionUnavailableError ? 503 : (err.statusCode ?? err.status ?? 500);
  if (status >= 500 && status !== 503) logger.error({ err }, 'request failed');
  if (err instanceof SessionUnavailableError) void reply.header('Retry-After', '1');
  return reply.code(status).type('text/plain; charset=utf-8').send(status === 503 ? 'session temporarily unavailable, retry' : status >= 500 ? 'Internal Server Error' : err.message);
});
await app.ready();

await runMember(cluster, server!);
