/**
 * One member of the demo cluster, as an Express app: the same pages and JSON as the Koa member
 * (app.ts, whose header lists the environment; demo/actions.ts does the work), with express-session
 * through `cluster.expressSession()` and the status page through `cluster.statusHandler()`.
 * `npm run demo -- --framework express` starts these.
 */
import { createServer } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { SessionUnavailableError } from '../src/index.js';
import { COOKIE, MAX_BODY_BYTES, SESSION_MAX_AGE, cookieKeys, demoCluster, isLoopback, logger, route, runMember, servedBy } from './member.js';
import { DemoActions, type DemoAnswer, type DemoSession } from './actions.js';

const env = process.env;
const cluster = demoCluster();
const app = express();
const server = createServer(app);
const actions = new DemoActions(cluster, logger, () => servedBy(cluster, server));

/** express-session's session, as the demo's actions use it (its callbacks as promises). */
function sessionOf(req: Request): DemoSession {
  const settle = (call: (cb: (err?: unknown) => void) => void) =>
    new Promise<void>((resolve, reject) => call((err) => (err === undefined || err === null ? resolve() : reject(err instanceof Error ? err : new Error('session store failed')))));
  return {
    values: () => req.session as unknown as Record<string, unknown> | undefined,
    id: () => (req.session === undefined ? undefined : req.sessionID),
    regenerate: () => settle((cb) => req.session.regenerate(cb)),
    destroy: () => settle((cb) => req.session.destroy(cb)),
  };
}

const isForm = (req: Request) => req.is('application/x-www-form-urlencoded') === 'application/x-www-form-urlencoded';
const body = (req: Request) => (typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : {});

function answer(res: Response, a: DemoAnswer): void {
  if ('redirect' in a) res.redirect(303, a.redirect);
  else if ('html' in a) res.status(a.status).type('html').send(a.html);
  else if ('json' in a) res.status(a.status).json(a.json);
  else res.status(a.status).type('text').send(a.text);
}

/** An async route: its rejection goes to Express's error handling. */
const route_ = (fn: (req: Request, res: Response) => Promise<DemoAnswer> | DemoAnswer) => (req: Request, res: Response, next: NextFunction) => {
  Promise.resolve(fn(req, res)).then((a) => answer(res, a), next);
};

app.disable('x-powered-by');
app.use((_req, res, next) => {
  res.set('x-served-by', route);
  // Pages change with every failover: a reload must reach a member, never a cache.
  res.set('cache-control', 'no-store');
  next();
});
// Before the session: status requests make no sessions. The demo's status page is for loopback only.
app.use(cluster.statusHandler({ dashboard: env.DASHBOARD !== '0', authorize: (ctx) => isLoopback(ctx.req.socket.remoteAddress) }));
app.use(express.json({ limit: MAX_BODY_BYTES }), express.urlencoded({ extended: false, limit: MAX_BODY_BYTES }));
app.use(
  cluster.expressSession({
    name: COOKIE,
    secret: cookieKeys(),
    cookie: { maxAge: SESSION_MAX_AGE, httpOnly: true, sameSite: 'lax' },
  }),
);
app.get('/', route_((req) => actions.page(sessionOf(req))));
app.get('/sessions', route_((req) => actions.sessions(sessionOf(req))));
app.post('/sessions/revoke-others', route_((req) => actions.revokeOthers(sessionOf(req), isForm(req))));
app.post('/login', route_((req) => actions.login(sessionOf(req), body(req), isForm(req))));
app.get('/me', route_((req) => actions.me(sessionOf(req))));
app.post('/cart', route_((req) => actions.cart(sessionOf(req), body(req), isForm(req))));
app.post('/logout', route_((req) => actions.logout(sessionOf(req), isForm(req))));
app.get('/favicon.ico', (_req, res) => void res.status(204).end());
// Errors: a session the cluster cannot tell now is a 503 to retry; the rest are logged.
app.use((err: Error & { status?: number }, _req: Request, res: Response, next: NextFunction) => {
  if (res.headersSent) return next(err);
  const status = err instanceof SessionUnavailableError ? 503 : (err.status ?? 500);
  if (status >= 500 && status !== 503) logger.error({ err }, 'request failed');
  if (err instanceof SessionUnavailableError) res.set('Retry-After', '1');
  res.status(status).type('text').send(status === 503 ? 'session temporarily unavailable, retry' : status >= 500 ? 'Internal Server Error' : err.message);
});

await runMember(cluster, server);
