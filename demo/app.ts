/**
 * One member of the demo cluster: a small Koa app with a login form, a welcome page and a cart,
 * whose sessions are replicated by koa-session-cluster. Configured by environment:
 *
 * | variable | default | |
 * | --- | --- | --- |
 * | `PORT` | `0` (any free port) | HTTP port |
 * | `HOST` | `127.0.0.1` | HTTP address |
 * | `ROUTE` | `node1` | this member's route (the session id suffix it owns) |
 * | `MODE` | `backup` | `backup` or `delta` |
 * | `ACK` | `sync` | `sync` or `async` |
 * | `CLUSTER_SECRET` | required | shared by every member, at least 16 bytes |
 * | `MCAST_ADDRESS`, `MCAST_PORT` | `228.0.0.4`, `45564` | heartbeat group |
 * | `MCAST_INTERFACE` | `127.0.0.1` | interface for heartbeats (never the default one) |
 * | `RECEIVER_PORT` | `0` (any free port) | cluster TCP port, announced in heartbeats |
 * | `EXPECTED_MEMBERS` | unset | the cluster's size (the `expectedMembers` option; `npm run demo` sets it) |
 * | `COOKIE_KEYS` | derived from `CLUSTER_SECRET` | comma-separated keys signing the cookie |
 * | `LOG_LEVEL` | `info` | pino level |
 * | `DASHBOARD` | `1` | `0` turns the status page (`/cluster/dashboard`) off |
 * | `REPROTECT_RATE` | `5000` | sessions per second copied after a member is lost (the `reprotectRate` option) |
 *
 * Prints `{"event":"listening","route":...,"port":...,"pid":...}` once it serves. SIGTERM or SIGINT:
 * stop accepting requests, leave the cluster gracefully (sessions handed off), exit.
 */
import { createServer } from 'node:http';
import Koa, { type Context } from 'koa';
import Router from '@koa/router';
import session from 'koa-session';
import type { ServedBy } from './pages.js';
import { COOKIE, MAX_BODY_BYTES, SESSION_MAX_AGE, cookieKeys, demoCluster, isLoopback, logger, route, runMember, servedBy as served } from './member.js';
import { DemoActions, type DemoAnswer, type DemoSession } from './actions.js';

const env = process.env;
const cluster = demoCluster();

const app = new Koa();
app.keys = cookieKeys();
app.silent = true;
app.on('error', (err: Error & { status?: number }, ctx?: Context) => {
  if ((err.status ?? 500) >= 500) logger.error({ err, path: ctx?.path }, 'request failed');
});

const cookie = { key: COOKIE, signed: true, httpOnly: true, sameSite: 'lax' } as const;

/** The member that serves this request, for the pages and `/me`. */
function servedBy(): ServedBy {
  return served(cluster, server);
}

/** A form post answers with a redirect to the page (post/redirect/get); anything else with JSON. */
function isForm(ctx: Context): boolean {
  return ctx.is('application/x-www-form-urlencoded') === 'application/x-www-form-urlencoded';
}

/** Reads a JSON or urlencoded body of at most MAX_BODY_BYTES. */
async function readBody(ctx: Context): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) ctx.throw(413, `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (isForm(ctx)) return Object.fromEntries(new URLSearchParams(text));
  if (text.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    ctx.throw(400, 'expected a JSON body');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) ctx.throw(400, 'expected a JSON object');
  return parsed as Record<string, unknown>;
}

/** koa-session's session, as the demo's actions use it. */
function sessionOf(ctx: Context): DemoSession {
  return {
    values: () => ctx.session ?? undefined,
    id: () => ctx.session?.externalKey,
    // koa-session 7 has Session#regenerate; there is no ctx.regenerateSession.
    regenerate: async () => {
      if (!ctx.session!.isNew) await ctx.session!.regenerate();
    },
    destroy: () => {
      ctx.session = null;
      return Promise.resolve();
    },
  };
}

/** Answers what an action returned. */
function answer(ctx: Context, a: DemoAnswer): void {
  if ('redirect' in a) {
    ctx.redirect(a.redirect);
    ctx.status = 303; // post/redirect/get: the browser loads the page with a GET, so a reload never re-posts
  } else if ('html' in a) {
    ctx.type = 'html';
    ctx.status = a.status;
    ctx.body = a.html;
  } else if ('json' in a) {
    ctx.status = a.status;
    ctx.body = a.json;
  } else ctx.throw(a.status, a.text);
}

const actions = new DemoActions(cluster, logger, servedBy);
const router = new Router();
router.get('/', async (ctx) => answer(ctx, await actions.page(sessionOf(ctx))));
router.get('/sessions', async (ctx) => answer(ctx, await actions.sessions(sessionOf(ctx))));
// Log out everywhere but here: every other session of this user ends, on every member.
router.post('/sessions/revoke-others', async (ctx) => {
  await readBody(ctx);
  answer(ctx, await actions.revokeOthers(sessionOf(ctx), isForm(ctx)));
});
router.post('/login', async (ctx) => answer(ctx, await actions.login(sessionOf(ctx), await readBody(ctx), isForm(ctx))));
router.get('/me', (ctx) => answer(ctx, actions.me(sessionOf(ctx))));
router.post('/cart', async (ctx) => {
  // Not logged in is a 401 whatever the body.
  if (actions.user(sessionOf(ctx)) === undefined) return ctx.throw(401, 'log in first');
  answer(ctx, actions.cart(sessionOf(ctx), await readBody(ctx), isForm(ctx)));
});
router.post('/logout', async (ctx) => {
  await readBody(ctx);
  answer(ctx, await actions.logout(sessionOf(ctx), isForm(ctx)));
});
router.get('/favicon.ico', (ctx) => {
  ctx.status = 204;
});

app.use(async (ctx, next) => {
  ctx.set('x-served-by', route);
  // Pages change with every failover: a reload must reach a member, never a cache.
  ctx.set('cache-control', 'no-store');
  await next();
});
/** The demo listens on loopback; a connection from anywhere else does not see the cluster's page. */
function fromLoopback(ctx: Context): boolean {
  return isLoopback(ctx.req.socket.remoteAddress);
}

// Before the session: status requests make no sessions. The status page (/cluster/dashboard) shows
// member addresses and session counts: a real application puts its own operator check here.
app.use(cluster.statusRouter({ dashboard: env.DASHBOARD !== '0', authorize: fromLoopback }).routes());
app.use(cluster.routeBinder(cookie)); // before koa-session, with the same cookie settings
app.use(session({ ...cookie, store: cluster.store, genid: cluster.genid, maxAge: SESSION_MAX_AGE }, app));
app.use(router.routes());
app.use(router.allowedMethods());

const server = createServer(app.callback());

await runMember(cluster, server);
