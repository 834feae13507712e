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
 * | `COOKIE_KEYS` | derived from `CLUSTER_SECRET` | comma-separated keys signing the cookie |
 * | `LOG_LEVEL` | `info` | pino level |
 * | `DASHBOARD` | `1` | `0` turns the status page (`/cluster/dashboard`) off |
 * | `REPROTECT_RATE` | `5000` | sessions per second copied after a member is lost (the `reprotectRate` option) |
 *
 * Prints `{"event":"listening","route":...,"port":...,"pid":...}` once it serves. SIGTERM or SIGINT:
 * stop accepting requests, leave the cluster gracefully (sessions handed off), exit.
 */
import { hkdfSync } from 'node:crypto';
import { createServer } from 'node:http';
import Koa, { type Context } from 'koa';
import Router from '@koa/router';
import session from 'koa-session';
import { pino } from 'pino';
// An application imports from 'koa-session-cluster'; the demo runs against the sources.
import { ClusterOptionsError, createSessionCluster, type SessionCluster } from '../src/index.js';
import { loginPage, welcomePage, type ServedBy, type SessionRow } from './pages.js';
import { User, userType } from './user.js';

/** nginx reads the cookie as `$cookie_sid`, and nginx variable names cannot contain a dot. */
const COOKIE = 'sid';
const MAX_BODY_BYTES = 16 * 1024;
const MAX_CART_ITEMS = 50;

const env = process.env;
const route = env.ROUTE ?? 'node1';
const logger = pino({ level: env.LOG_LEVEL ?? 'info', base: { member: route } });

let cluster: SessionCluster;
try {
  cluster = createSessionCluster({
    route,
    mode: (env.MODE ?? 'backup') as 'backup' | 'delta',
    ack: (env.ACK ?? 'sync') as 'sync' | 'async',
    secret: env.CLUSTER_SECRET as string,
    clusterName: 'koa-session-cluster-demo',
    membership: {
      multicast: {
        address: env.MCAST_ADDRESS ?? '228.0.0.4',
        port: Number(env.MCAST_PORT ?? 45564),
        interface: env.MCAST_INTERFACE ?? '127.0.0.1',
      },
    },
    receiver: { host: env.MCAST_INTERFACE ?? '127.0.0.1', port: Number(env.RECEIVER_PORT ?? 0) },
    types: [userType],
    // Slower re-protection makes a failover visible on the status page for a few seconds.
    ...(env.REPROTECT_RATE === undefined ? {} : { reprotectRate: Number(env.REPROTECT_RATE) }),
    logger,
    // Sessions by user: "Your sessions" lists them on every member, and logs the others out.
    principal: (s) => (s.user instanceof User ? s.user.username : undefined),
  });
} catch (err) {
  // A wrong variable is a one-line message naming the option, not a stack trace.
  if (!(err instanceof ClusterOptionsError)) throw err;
  process.stderr.write(`demo member ${route}: ${err.message}\n`);
  process.exit(1);
}

const app = new Koa();
// Members must share the cookie keys; deriving them from the shared secret means one less thing to
// configure, and HKDF with its own label keeps them independent of the cluster's own keys.
app.keys =
  env.COOKIE_KEYS !== undefined
    ? env.COOKIE_KEYS.split(',')
    : [Buffer.from(hkdfSync('sha256', env.CLUSTER_SECRET!, '', 'koa-session-cluster demo cookie', 32)).toString('base64url')];
app.silent = true;
app.on('error', (err: Error & { status?: number }, ctx?: Context) => {
  if ((err.status ?? 500) >= 500) logger.error({ err, path: ctx?.path }, 'request failed');
});

const cookie = { key: COOKIE, signed: true, httpOnly: true, sameSite: 'lax' } as const;

/** The member that serves this request, for the pages and `/me`. */
function servedBy(): ServedBy {
  const address = server.address();
  return {
    route,
    port: typeof address === 'object' && address !== null ? address.port : 0,
    pid: process.pid,
    mode: cluster.mode,
    members: cluster.members().map((m) => m.route).sort(),
  };
}

/** The logged-in user, if any. Only a `User` counts: anything else would be a replication bug. */
function currentUser(ctx: Context): User | undefined {
  const user = ctx.session?.user;
  if (user === undefined) return undefined;
  if (user instanceof User) return user;
  logger.warn({ got: typeof user }, 'session.user is not a User instance');
  return undefined;
}

function cartOf(ctx: Context): string[] {
  const cart = ctx.session?.cart;
  return Array.isArray(cart) ? cart.filter((i): i is string => typeof i === 'string') : [];
}

/** The route suffix of the session id this response leaves in the cookie. */
function sessionRoute(ctx: Context): string | undefined {
  const id = ctx.session?.externalKey;
  return id === undefined ? undefined : id.slice(id.lastIndexOf('.') + 1);
}

/** A form post answers with a redirect to the page (post/redirect/get); anything else with JSON. */
function isForm(ctx: Context): boolean {
  return ctx.is('application/x-www-form-urlencoded') === 'application/x-www-form-urlencoded';
}

/** Post/redirect/get: 303 makes the browser load the page with a GET, so a reload never re-posts. */
function backToPage(ctx: Context): void {
  ctx.redirect('/');
  ctx.status = 303;
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

/** A trimmed, non-empty string field of at most `max` characters, or a 400. */
function textField(ctx: Context, body: Record<string, unknown>, name: string, max: number): string {
  const value = body[name];
  const text = typeof value === 'string' ? value.trim() : '';
  if (text.length === 0 || text.length > max) ctx.throw(400, `expected "${name}": 1 to ${max} characters`);
  return text;
}

function meJson(ctx: Context, user: User): Record<string, unknown> {
  return {
    user: { username: user.username, since: user.since.toISOString() },
    greeting: user.greeting(),
    cart: cartOf(ctx),
    route,
    sessionRoute: sessionRoute(ctx),
  };
}

const router = new Router();

/** The user's sessions on every member, this browser's marked; undefined when they cannot be listed now. */
async function sessionRows(ctx: Context, user: User): Promise<SessionRow[] | undefined> {
  const id = ctx.session?.externalKey;
  const current = id === undefined ? undefined : cluster.handleOf(id);
  try {
    const sessions = await cluster.sessionsOf(user.username);
    return sessions.map((s) => ({ route: s.route, createdAt: s.createdAt, lastAccessAt: s.lastAccessAt, current: s.handle === current }));
  } catch (err) {
    logger.warn({ err }, 'could not list the user\'s sessions');
    return undefined;
  }
}

router.get('/', async (ctx) => {
  const user = currentUser(ctx);
  ctx.type = 'html';
  ctx.body =
    user === undefined
      ? loginPage(servedBy())
      : welcomePage({ user, cart: cartOf(ctx), sessionRoute: sessionRoute(ctx), sessions: await sessionRows(ctx, user) }, servedBy());
});

router.get('/sessions', async (ctx) => {
  const user = currentUser(ctx);
  if (user === undefined) return ctx.throw(401, 'log in first');
  ctx.body = { sessions: await sessionRows(ctx, user) };
});

// Log out everywhere but here: every other session of this user ends, on every member.
router.post('/sessions/revoke-others', async (ctx) => {
  await readBody(ctx);
  const user = currentUser(ctx);
  if (user === undefined) return ctx.throw(401, 'log in first');
  const destroyed = await cluster.destroySessions(user.username, { except: ctx.session?.externalKey });
  logger.info({ user: user.username, destroyed }, 'logged the other sessions out');
  if (isForm(ctx)) return backToPage(ctx);
  ctx.body = { destroyed, route };
});

router.post('/login', async (ctx) => {
  const body = await readBody(ctx);
  const value = body.username;
  const username = typeof value === 'string' ? value.trim() : '';
  if (username.length === 0 || username.length > 40) {
    if (!isForm(ctx)) ctx.throw(400, 'expected "username": 1 to 40 characters');
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = loginPage(servedBy(), 'Please enter a username of 1 to 40 characters.');
    return;
  }
  // A new session id at login, so an id planted before it (session fixation) is worth nothing.
  // koa-session 7 has Session#regenerate; there is no ctx.regenerateSession.
  if (!ctx.session!.isNew) await ctx.session!.regenerate();
  const user = new User(username, new Date());
  ctx.session!.user = user;
  ctx.session!.cart = [];
  logger.info({ user: username }, 'logged in');
  if (isForm(ctx)) return backToPage(ctx);
  ctx.body = meJson(ctx, user);
});

router.get('/me', (ctx) => {
  const user = currentUser(ctx);
  if (user === undefined) {
    ctx.status = 401;
    ctx.body = { error: 'not logged in', route };
    return;
  }
  ctx.body = meJson(ctx, user);
});

router.post('/cart', async (ctx) => {
  const user = currentUser(ctx);
  if (user === undefined) return ctx.throw(401, 'log in first');
  const item = textField(ctx, await readBody(ctx), 'item', 60);
  const cart = cartOf(ctx);
  if (cart.length >= MAX_CART_ITEMS) ctx.throw(409, `the cart holds at most ${MAX_CART_ITEMS} items`);
  ctx.session!.cart = [...cart, item];
  if (isForm(ctx)) return backToPage(ctx);
  ctx.body = meJson(ctx, user);
});

router.post('/logout', async (ctx) => {
  await readBody(ctx);
  // Replicated as a removal: the session is gone from its backup (or every member) too.
  ctx.session = null;
  if (isForm(ctx)) return backToPage(ctx);
  ctx.body = { loggedOut: true, route };
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
  const address = ctx.req.socket.remoteAddress ?? '';
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

// Before the session: status requests make no sessions. The status page (/cluster/dashboard) shows
// member addresses and session counts: a real application puts its own operator check here.
app.use(cluster.statusRouter({ dashboard: env.DASHBOARD !== '0', authorize: fromLoopback }).routes());
app.use(cluster.routeBinder(cookie)); // before koa-session, with the same cookie settings
app.use(session({ ...cookie, store: cluster.store, genid: cluster.genid, maxAge: 30 * 60 * 1000 }, app));
app.use(router.routes());
app.use(router.allowedMethods());

const server = createServer(app.callback());

let stopping = false;
/** Graceful stop: no new requests, hand the sessions off, leave. */
function stop(reason: string): void {
  if (stopping) return;
  stopping = true;
  logger.info({ reason }, 'stopping');
  // A leave that cannot finish (e.g. every other member stopping at once) must not hang the demo.
  setTimeout(() => process.exit(1), 15_000).unref();
  server.close();
  server.closeIdleConnections();
  void cluster.stop().then(
    () => {
      process.stdout.write(JSON.stringify({ event: 'stopped', route }) + '\n');
      process.exit(0);
    },
    (err: unknown) => {
      logger.error({ err }, 'leaving the cluster failed');
      process.exit(1);
    },
  );
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
// Started by demo/run.ts: stdin is a pipe from it, so its end means the runner is gone.
if (env.DEMO_EXIT_WITH_PARENT === '1') {
  process.stdin.on('end', () => stop('runner exited'));
  process.stdin.on('error', () => stop('runner exited'));
  process.stdin.resume();
}

server.on('error', (err) => {
  logger.error({ err }, 'HTTP server failed');
  process.exit(1);
});

await cluster.start();
server.listen(Number(env.PORT ?? 0), env.HOST ?? '127.0.0.1', () => {
  const { port } = servedBy();
  process.stdout.write(JSON.stringify({ event: 'listening', route, port, pid: process.pid }) + '\n');
});
