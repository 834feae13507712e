/**
 * express-session's store contract, for `cluster.expressStore` (issue 29): `get`, `set`, `destroy`
 * and `touch` called directly, as express-session and applications call them, and `regenerate`,
 * `reload` and `save` as applications call them on `req.session`, in the two-step form
 * (`cluster.expressRouteBinder()` + express-session with `store: cluster.expressStore`). Two real
 * members in this process, real Express and express-session.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import session from 'express-session';
import { ClusterStateError, type SessionCluster, type SessionEvent } from '../../src/index.js';
import { twoMembers } from '../helpers/in-process-members.js';
import { call, hmacSigned, listen } from '../helpers/frameworks.js';

type Stored = Record<string, unknown> & { cookie: { expires: Date | null; originalMaxAge: number | null } };

/** A callback-style call as a promise. */
function settled<T>(call: (cb: (err?: unknown, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, value) => (err ? reject(err instanceof Error ? err : new Error(JSON.stringify(err))) : resolve(value as T))));
}

/** The store's callback API as promises. */
function storeOf(cluster: SessionCluster) {
  const s = cluster.expressStore;
  return {
    get: (sid: string) => settled<Stored | undefined>((cb) => s.get(sid, cb)),
    set: (sid: string, sess: Record<string, unknown>) => settled<void>((cb) => s.set(sid, sess, cb)),
    destroy: (sid: string) => settled<void>((cb) => s.destroy(sid, cb)),
    touch: (sid: string, sess: Record<string, unknown>) => settled<void>((cb) => s.touch(sid, sess, cb)),
  };
}

const cookie = (maxAge: number) => ({ originalMaxAge: maxAge, expires: new Date(Date.now() + maxAge), path: '/', httpOnly: true });

test('express store: get, set, destroy and touch, called directly', async (t) => {
  const [a, b] = await twoMembers(t);
  const [sa, sb] = [storeOf(a), storeOf(b)];
  const sid = a.genid();
  assert.equal(await sa.get(sid), undefined, 'no session yet');
  assert.equal(await sa.get('not-one-of-ours'), undefined, 'a foreign id is no session, not an error');

  await sa.set(sid, { cookie: cookie(60_000), user: 'alice', cart: ['tea'], since: new Date(1000) });
  const got = (await sb.get(sid))!;
  assert.equal(got.user, 'alice', 'the other member reads it (taking it over)');
  assert.deepEqual(got.cart, ['tea']);
  assert.ok(got.since instanceof Date && got.since.getTime() === 1000, 'a Date comes back a Date');
  assert.equal(got.cookie.originalMaxAge, 60_000);
  assert.ok(got.cookie.expires instanceof Date && Math.abs(got.cookie.expires.getTime() - (Date.now() + 60_000)) < 5000);
  assert.equal((got.cookie as Record<string, unknown>).httpOnly, true, 'the cookie settings are kept');

  // Outside a request, set replaces the whole session, as a store's set does.
  await sb.set(sid, { cookie: cookie(60_000), user: 'alice' });
  assert.deepEqual(Object.keys((await sa.get(sid))!).sort(), ['cookie', 'user']);

  // touch moves the expiry without a value changing; far enough to be replicated.
  const later = { cookie: { ...cookie(60_000), expires: new Date(Date.now() + 600_000) }, user: 'alice' };
  await sa.touch(sid, later);
  const touched = (await sb.get(sid))!;
  assert.ok(Math.abs(touched.cookie.expires!.getTime() - later.cookie.expires.getTime()) < 1000, 'the touched expiry, on the other member');
  assert.equal(touched.user, 'alice');

  // A browser-session cookie (no maxAge) round-trips as one.
  const browser = a.genid();
  await sa.set(browser, { cookie: { originalMaxAge: null, expires: null, path: '/' }, n: 1 });
  const b2 = (await sb.get(browser))!;
  assert.equal(b2.cookie.expires, null);
  assert.equal(b2.cookie.originalMaxAge, null);

  await sb.destroy(sid);
  assert.equal(await sa.get(sid), undefined, 'destroyed on every member');
  await sa.destroy(sid); // destroying what exists nowhere is fine
  await assert.rejects(sa.set('made-elsewhere', { cookie: cookie(1000) }), ClusterStateError);
});

/** An Express app in the two-step form, with routes calling save, reload, regenerate and destroy. */
async function serve(
  t: { after(fn: () => Promise<void>): void },
  cluster: SessionCluster,
  reloadGate: { started(): void; mayGo(): Promise<void> } = { started: () => undefined, mayGo: () => Promise.resolve() },
): Promise<string> {
  const app = express();
  app.use(express.json());
  app.use(cluster.expressRouteBinder({ name: 'sid', secret: 'two-step-secret' }));
  app.use(session({ name: 'sid', secret: 'two-step-secret', store: cluster.expressStore, genid: cluster.genid, resave: false, saveUninitialized: false, cookie: { maxAge: 60_000 } }));
  type S = Record<string, unknown> & {
    save(cb: (e?: unknown) => void): void;
    reload(cb: (e?: unknown) => void): void;
    regenerate(cb: (e?: unknown) => void): void;
    destroy(cb: (e?: unknown) => void): void;
  };
  const s = (req: Request) => (req as unknown as { session: S }).session;
  const id = (req: Request) => (req as unknown as { sessionID: string }).sessionID;
  const view = (req: Request) => ({ id: id(req), route: cluster.route, user: s(req).user ?? null, n: s(req).n ?? null });
  const done = (next: NextFunction, fn: () => void) => (err?: unknown) => (err !== undefined && err !== null ? next(err) : fn());
  app.post('/login', (req: Request, res: Response, next: NextFunction) => {
    s(req).regenerate(
      done(next, () => {
        s(req).user = (req.body as { user: string }).user;
        s(req).n = 0;
        // save as apps call it before a redirect: the session is in the store before the answer.
        s(req).save(done(next, () => res.json(view(req))));
      }),
    );
  });
  app.get('/me', (req, res) => void res.json(view(req)));
  app.post('/incr', (req, res) => {
    s(req).n = Number(s(req).n) + 1;
    res.json(view(req));
  });
  // Has read the session, waits until the test says another request committed, then reloads: sees
  // what that request wrote meanwhile (the test waits for it, not for a time that a loaded machine
  // may outlast).
  app.get('/reload', (req: Request, res: Response, next: NextFunction) => {
    const before = s(req).n ?? null;
    reloadGate.started();
    void reloadGate.mayGo().then(() => s(req).reload(done(next, () => res.json({ ...view(req), before }))));
  });
  app.post('/logout', (req: Request, res: Response, next: NextFunction) => s(req).destroy(done(next, () => res.json({ out: true }))));
  return listen(t, createServer(app));
}

test('express store: regenerate, save, reload and destroy as applications call them, in the two-step form', async (t) => {
  const [a, b] = await twoMembers(t, { principal: (s) => (typeof s.user === 'string' ? s.user : undefined) });
  const events: SessionEvent[] = [];
  for (const m of [a, b]) {
    m.on('sessionDestroyed', (e) => events.push(e));
    m.on('sessionCreated', (e) => events.push(e));
  }
  let started!: () => void;
  let go!: () => void;
  const reloadStarted = new Promise<void>((r) => (started = r));
  const reloadMayGo = new Promise<void>((r) => (go = r));
  const [urlA, urlB] = [await serve(t, a), await serve(t, b, { started, mayGo: () => reloadMayGo })];
  const first = await call('POST', `${urlA}/login`, undefined, { user: 'erin' });
  const c1 = `sid=${first.cookies.find((c) => c.name === 'sid')!.value}`;
  // Logging in again regenerates: the old id is destroyed (reason regenerate), a new one is made.
  const second = await call('POST', `${urlA}/login`, c1, { user: 'erin' });
  const c2 = `sid=${second.cookies.find((c) => c.name === 'sid')!.value}`;
  assert.notEqual(second.body.id, first.body.id);
  assert.equal((await call('GET', `${urlB}/me`, c1)).body.user, null, 'the regenerated id is gone everywhere');

  // The two-step binder rebinds too.
  const onB = await call('GET', `${urlB}/me`, c2);
  assert.equal(onB.body.user, 'erin');
  const rebound = onB.cookies.find((c) => c.name === 'sid')!;
  assert.equal(decodeURIComponent(rebound.value), `s:${hmacSigned(onB.body.id as string, 'two-step-secret')}`);
  assert.match(onB.body.id, /\.b$/);
  const c3 = `sid=${rebound.value}`;

  // reload: a request that read the session, then waited, sees the increment another request
  // committed meanwhile (express-session saves before it answers).
  const reloading = call('GET', `${urlB}/reload`, c3);
  await reloadStarted;
  assert.equal((await call('POST', `${urlB}/incr`, c3)).body.n, 1);
  go();
  const reloaded = await reloading;
  assert.equal(reloaded.body.before, 0, 'read before the increment');
  assert.equal(reloaded.body.n, 1);

  assert.equal((await call('POST', `${urlB}/logout`, c3)).status, 200);
  assert.equal((await call('GET', `${urlA}/me`, c3)).body.user, null);
  const destroyed = events.filter((e) => e.reason !== 'created').map((e) => e.reason);
  assert.deepEqual(destroyed, ['regenerate', 'logout']);
  assert.equal(events.filter((e) => e.reason === 'created').length, 2, 'two logins, two sessions created');
});
