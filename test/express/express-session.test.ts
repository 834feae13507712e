/**
 * `cluster.expressSession(options)` (issue 29): express-session with the cluster's store behind the
 * route binder. Two real members in this process (multicast on 127.0.0.1), real Express apps on port
 * 0 with real express-session: the seed's scenario (log in on one member, open the other, still
 * logged in, the cookie rebound and signed as express-session signs it, rotation arrays included),
 * concurrent requests changing different keys, the loud unserializable value, 503 with Retry-After.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { ClusterOptionsError, type ExpressSessionOptions, type SessionCluster } from '../../src/index.js';
import { twoMembers } from '../helpers/in-process-members.js';
import { assertLogin, assertRebound, call, type CookieFormat, hmacSigned, listen, type SetCookie } from '../helpers/frameworks.js';

type Sess = Record<string, unknown> & { regenerate(cb: (err?: unknown) => void): void; destroy(cb: (err?: unknown) => void): void };

/** An Express app of `cluster` with `cluster.expressSession(options)` and a few routes. */
async function serve(t: { after(fn: () => Promise<void>): void }, cluster: SessionCluster, options: ExpressSessionOptions): Promise<string> {
  const app = express();
  app.use(express.json());
  app.use(cluster.expressSession(options));
  const sess = (req: Request) => (req as unknown as { session: Sess }).session;
  const me = (req: Request) => ({ route: cluster.route, id: (req as unknown as { sessionID: string }).sessionID, ...sess(req) });
  app.post('/login', (req: Request, res: Response, next: NextFunction) => {
    sess(req).regenerate((err) => {
      if (err !== undefined) return next(err);
      sess(req).user = (req.body as { user: string }).user;
      res.json(me(req));
    });
  });
  app.get('/me', (req, res) => void res.json(me(req)));
  app.post('/set', (req, res) => {
    Object.assign(sess(req), req.body);
    res.json(me(req));
  });
  app.post('/slow-set', (req, res) => {
    setTimeout(() => {
      Object.assign(sess(req), req.body);
      res.json(me(req));
    }, 100);
  });
  app.post('/avatar', (req, res) => {
    sess(req).avatar = new Map([['png', 1]]);
    res.json({ stored: true });
  });
  app.post('/logout', (req: Request, res: Response, next: NextFunction) => {
    sess(req).destroy((err) => (err !== undefined ? next(err) : res.json({ loggedOut: true })));
  });
  return listen(t, createServer(app));
}

const cookieOf = (cookies: SetCookie[], name: string) => cookies.find((c) => c.name === name);
/** The session id in an express-session cookie value (`s:<id>.<signature>`, URL-encoded). */
const idOf = (value: string) => {
  const v = decodeURIComponent(value).slice(2);
  return v.slice(0, v.lastIndexOf('.'));
};

test('express: log in on member a, open member b: still logged in, the cookie rebound to b and signed as express-session signs it', async (t) => {
  const [a, b] = await twoMembers(t);
  const options: ExpressSessionOptions = { name: 'sid', secret: 'express-secret-1', cookie: { maxAge: 3_600_000, sameSite: 'lax', httpOnly: true } };
  const [urlA, urlB] = [await serve(t, a, options), await serve(t, b, options)];

  const format: CookieFormat = { name: 'sid', idOf, signed: (id) => `s:${hmacSigned(id, 'express-secret-1')}` };
  const first = assertLogin(format, await call('POST', `${urlA}/login`, undefined, { user: 'alice' }), 'a');

  const onB = await call('GET', `${urlB}/me`, `sid=${first.value}`);
  assert.equal(onB.body.route, 'b');
  const rebound = assertRebound(format, first, onB, 'b', 'alice');

  // The rebound cookie works on b without another takeover, and a takes the session back.
  const again = await call('GET', `${urlB}/me`, `sid=${rebound.value}`);
  assert.equal(again.body.user, 'alice');
  assert.equal(cookieOf(again.cookies, 'sid'), undefined, 'no new cookie once bound');
  const back = await call('GET', `${urlA}/me`, `sid=${rebound.value}`);
  assert.equal(back.body.user, 'alice');
  assert.match(idOf(cookieOf(back.cookies, 'sid')!.value), /\.a$/);

  // Log out on a: the session is gone on b too, even with the old cookie.
  const out = await call('POST', `${urlA}/logout`, `sid=${cookieOf(back.cookies, 'sid')!.value}`);
  assert.equal(out.status, 200);
  for (const [url, value] of [[urlB, rebound.value], [urlA, first.value]] as const) {
    assert.equal((await call('GET', `${url}/me`, `sid=${value}`)).body.user, undefined, 'no session after logout');
  }
});

test('express: secrets rotate: a cookie signed with an older secret is taken over, and rebound signed with the first', async (t) => {
  const [a, b] = await twoMembers(t);
  const urlA = await serve(t, a, { name: 'sid', secret: 'old-secret', cookie: { maxAge: 60_000 } });
  const urlB = await serve(t, b, { name: 'sid', secret: ['new-secret', 'old-secret'], cookie: { maxAge: 60_000 } });
  const login = await call('POST', `${urlA}/login`, undefined, { user: 'bob' });
  const old = cookieOf(login.cookies, 'sid')!;
  const onB = await call('GET', `${urlB}/me`, `sid=${old.value}`);
  assert.equal(onB.body.user, 'bob');
  const rebound = cookieOf(onB.cookies, 'sid')!;
  const id = idOf(rebound.value);
  assert.match(id, /\.b$/);
  assert.equal(decodeURIComponent(rebound.value), `s:${hmacSigned(id, 'new-secret')}`);

  // A cookie signed with a secret b does not know is no session, and takes nothing over.
  const forged = encodeURIComponent(`s:${hmacSigned(idOf(old.value), 'someone-elses')}`);
  const stranger = await call('GET', `${urlB}/me`, `sid=${forged}`);
  assert.equal(stranger.status, 200);
  assert.equal(stranger.body.user, undefined);
});

test('express: two concurrent requests changing different keys both survive (only the keys a request changed are replicated)', async (t) => {
  const [a] = await twoMembers(t);
  const url = await serve(t, a, { name: 'sid', secret: 's3cret', cookie: { maxAge: 60_000 } });
  const login = await call('POST', `${url}/login`, undefined, { user: 'carol' });
  const cookie = `sid=${cookieOf(login.cookies, 'sid')!.value}`;
  // Both read the session before either writes: a whole-session store would keep only one change.
  await Promise.all([call('POST', `${url}/slow-set`, cookie, { theme: 'dark' }), call('POST', `${url}/slow-set`, cookie, { lang: 'fr' })]);
  const me = await call('GET', `${url}/me`, cookie);
  assert.equal(me.body.theme, 'dark');
  assert.equal(me.body.lang, 'fr');
  assert.equal(me.body.user, 'carol');
});

test('express: a value that cannot be replicated fails its request loudly (500), and nothing of that write is replicated', async (t) => {
  const [a, b] = await twoMembers(t);
  const options: ExpressSessionOptions = { name: 'sid', secret: 's3cret', cookie: { maxAge: 60_000 } };
  const [urlA, urlB] = [await serve(t, a, options), await serve(t, b, options)];
  const login = await call('POST', `${urlA}/login`, undefined, { user: 'dave' });
  const cookie = `sid=${cookieOf(login.cookies, 'sid')!.value}`;
  const bad = await call('POST', `${urlA}/avatar`, cookie);
  assert.equal(bad.status, 500, 'not the handler\'s 200: express-session\'s commit failed');
  assert.doesNotMatch(bad.text, /stored/, 'nothing of the handler\'s answer went out');
  const onB = await call('GET', `${urlB}/me`, cookie);
  assert.equal(onB.body.user, 'dave');
  assert.equal(onB.body.avatar, undefined);
});

test('express: ids nobody holds, past the budget, get 503 with Retry-After; options the cluster sets are refused', async (t) => {
  const [a] = await twoMembers(t, { unknownIds: { burst: 2, perSecond: 0.1 } });
  const url = await serve(t, a, { name: 'sid', secret: 's3cret' });
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 4; i++) {
    const id = `${'x'.repeat(23)}${i}.b`;
    const res = await call('GET', `${url}/me`, `sid=${encodeURIComponent(`s:${hmacSigned(id, 's3cret')}`)}`, undefined, { retry: false });
    statuses.push(res.status);
    if (res.status === 503) retryAfter = res.headers.get('retry-after');
  }
  assert.deepEqual(statuses, [200, 200, 503, 503]);
  assert.equal(retryAfter, '1');
  assert.throws(() => a.expressSession({ secret: 'x', store: {} } as unknown as ExpressSessionOptions), (e: unknown) => e instanceof ClusterOptionsError && e.option === 'expressSession.store');
  assert.throws(() => a.expressSession({} as ExpressSessionOptions), (e: unknown) => e instanceof ClusterOptionsError && e.option === 'expressSession.secret');
});
