/**
 * The chaos run's member as an Express app with express-session through `cluster.expressSession()`
 * (`npm run chaos -- --framework express`): the same routes and answers as member.ts, the Koa one,
 * whose header says what the counter and the log lines are for.
 *
 * `x-chaos-handled: 0` until the route handler starts: on a 503 from the route binder or from loading
 * the session, nothing was written or removed. A commit that fails after the handler ran is answered
 * by the adapter's commit guard, which drops every header (the answer is then indeterminate).
 */
import { createServer } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { parseSessionId, shortId } from '../../src/replication/session-id.js';
import { CHAOS_COOKIE, chaosCluster, logger, maxAge, route, serveMember, type Counter } from './member-cluster.js';

const cluster = chaosCluster();
const app = express();

type Sess = Record<string, unknown> & { regenerate(cb: (err?: unknown) => void): void; destroy(cb: (err?: unknown) => void): void };
const sess = (req: Request) => (req as unknown as { session: Sess }).session;
/** A callback-style session method as a promise. */
const settle = (call: (cb: (err?: unknown) => void) => void) =>
  new Promise<void>((resolve, reject) => call((err) => (err === undefined || err === null ? resolve() : reject(err instanceof Error ? err : new Error('session store failed')))));

app.use((req, res, next) => {
  const started = Date.now();
  const id = req.get('x-chaos-req');
  res.setHeader('x-chaos-handled', '0');
  res.on('finish', () => {
    const handled = res.locals.handled === true;
    logger.info({ req: id, path: req.path, status: res.statusCode, handled, ms: Date.now() - started, served: res.locals.served as unknown }, 'chaos request');
  });
  next();
});
app.use(cluster.statusHandler());
app.use(express.json());
app.use(cluster.expressSession({ name: CHAOS_COOKIE, secret: 'chaos-cookie-key', cookie: { maxAge } }));

const handle = (fn: (req: Request, res: Response) => unknown) => (req: Request, res: Response, next: NextFunction) => {
  res.locals.handled = true;
  res.setHeader('x-chaos-handled', '1');
  Promise.resolve(fn(req, res)).then((body) => res.json(body), next);
};

/** The answer of a route that reads the session as it is. */
function answer(req: Request, res: Response, extra: Record<string, unknown>): Record<string, unknown> {
  const s = sess(req);
  const loggedIn = typeof s.login === 'string';
  const id = parseSessionId((req as unknown as { sessionID?: string }).sessionID);
  if (loggedIn && id !== undefined) res.locals.served = shortId(id.base);
  return { route, loggedIn, login: s.login ?? null, base: loggedIn ? (id?.base ?? null) : null, ...extra };
}

app.post(
  '/login',
  handle((req, res) => {
    const s = sess(req);
    const body = req.body as { user?: string; token?: string };
    s.user = String(body.user);
    s.login = String(body.token);
    s.c = { n: 0, w: req.get('x-chaos-req') };
    res.locals.served = 'new';
    return { route, loggedIn: true, login: s.login, c: s.c };
  }),
);
app.post(
  '/incr',
  handle((req, res) => {
    const s = sess(req);
    if (typeof s.login !== 'string') return answer(req, res, {});
    const prev = s.c as Counter;
    s.c = { n: prev.n + 1, w: req.get('x-chaos-req') };
    return answer(req, res, { prev, c: s.c });
  }),
);
app.get(
  '/get',
  handle((req, res) => answer(req, res, { c: typeof sess(req).login === 'string' ? sess(req).c : null })),
);
app.post(
  '/regenerate',
  handle(async (req, res) => {
    const s = sess(req);
    if (typeof s.login !== 'string') return answer(req, res, {});
    const prev = s.c as Counter;
    const { user, login } = s;
    await settle((cb) => s.regenerate(cb)); // the old id is destroyed here; the data goes to a new id
    Object.assign(sess(req), { user, login, c: { n: prev.n, w: req.get('x-chaos-req') } as Counter });
    res.locals.served = 'regenerated';
    return { route, loggedIn: true, login, prev, c: sess(req).c };
  }),
);
app.post(
  '/revoke-others',
  handle(async (req, res) => {
    const s = sess(req);
    if (typeof s.login !== 'string') return answer(req, res, { destroyed: null });
    const destroyed = await cluster.destroySessions(String(s.user), { except: (req as unknown as { sessionID: string }).sessionID });
    return answer(req, res, { destroyed });
  }),
);
app.post(
  '/logout',
  handle(async (req, res) => {
    const s = sess(req);
    const loggedIn = typeof s.login === 'string';
    const out = answer(req, res, { destroyed: loggedIn ? s.login : null });
    if (loggedIn) await settle((cb) => s.destroy(cb));
    return out;
  }),
);
// Errors the adapter did not answer itself: JSON, the status the error carries.
app.use((err: Error & { status?: number; code?: string; headers?: Record<string, string> }, _req: Request, res: Response, next: NextFunction) => {
  if (res.headersSent) return next(err);
  logger.warn({ code: err.code, msg: err.message }, 'request failed');
  for (const [k, v] of Object.entries(err.headers ?? {})) res.setHeader(k, v);
  res.status(typeof err.status === 'number' && err.status >= 400 ? err.status : 500).json({ error: err.code ?? err.name, message: err.message });
});

await serveMember(cluster, createServer(app));
