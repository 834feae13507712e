/**
 * `app.register(cluster.fastifySession, options)` (issue 29): @fastify/session with the cluster's
 * store behind the route binder. Two real members in this process (multicast on 127.0.0.1), real
 * Fastify apps on port 0 with real @fastify/session and @fastify/cookie: the seed's scenario (log in
 * on one member, open the other, still logged in, the cookie rebound and signed as @fastify/cookie's
 * Signer signs it, secret arrays included), concurrent requests changing different keys, the loud
 * unserializable value, 503 with Retry-After, and the session events of a regenerate and a logout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyRequest } from 'fastify';
import { ClusterOptionsError, type FastifySessionOptions, type SessionCluster, type SessionEvent } from '../../src/index.js';
import { twoMembers } from '../helpers/in-process-members.js';
import { assertLogin, assertRebound, call, type CookieFormat, hmacSigned, type SetCookie } from '../helpers/frameworks.js';

const SECRET = 'a-fastify-session-secret-of-32-characters!';
type Sess = Record<string, unknown> & { sessionId: string; regenerate(): Promise<void>; destroy(): Promise<void> };

/** A Fastify app of `cluster` with the cluster's session plugin and a few routes. */
async function serve(t: { after(fn: () => Promise<void>): void }, cluster: SessionCluster, options: FastifySessionOptions): Promise<string> {
  const app = Fastify();
  await app.register(cluster.fastifySession, options);
  const sess = (req: FastifyRequest) => (req as unknown as { session: Sess }).session;
  const me = (req: FastifyRequest) => ({ ...sess(req), route: cluster.route, id: sess(req).sessionId });
  app.post('/login', async (req) => {
    await sess(req).regenerate();
    sess(req).user = (req.body as { user: string }).user;
    return me(req);
  });
  app.get('/me', (req) => me(req));
  app.post('/slow-set', async (req) => {
    await new Promise((r) => setTimeout(r, 100));
    Object.assign(sess(req), req.body);
    return me(req);
  });
  app.post('/avatar', (req) => {
    sess(req).avatar = new Map([['png', 1]]);
    return { stored: true };
  });
  app.post('/logout', async (req) => {
    await sess(req).destroy();
    return { loggedOut: true };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => app.close());
  const address = app.server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

const cookieOf = (cookies: SetCookie[], name: string) => cookies.find((c) => c.name === name);
/** The session id in a @fastify/session cookie value (`<id>.<signature>`, URL-encoded). */
const idOf = (value: string) => {
  const v = decodeURIComponent(value);
  return v.slice(0, v.lastIndexOf('.'));
};

test('fastify: log in on member a, open member b: still logged in, the cookie rebound to b and signed as @fastify/session signs it', async (t) => {
  const [a, b] = await twoMembers(t);
  const options: FastifySessionOptions = { secret: SECRET, cookieName: 'sid', cookie: { secure: false, maxAge: 3_600_000, sameSite: 'lax' }, rolling: false, saveUninitialized: false };
  const [urlA, urlB] = [await serve(t, a, options), await serve(t, b, options)];

  const format: CookieFormat = { name: 'sid', idOf, signed: (id) => hmacSigned(id, SECRET) };
  const first = assertLogin(format, await call('POST', `${urlA}/login`, undefined, { user: 'alice' }), 'a');

  // rolling: false, so @fastify/session would not set the cookie of an unchanged session: the binder does.
  const onB = await call('GET', `${urlB}/me`, `sid=${first.value}`);
  const rebound = assertRebound(format, first, onB, 'b', 'alice');

  const again = await call('GET', `${urlB}/me`, `sid=${rebound.value}`);
  assert.equal(again.body.user, 'alice');
  assert.equal(cookieOf(again.cookies, 'sid'), undefined, 'no new cookie once bound (rolling: false)');

  const out = await call('POST', `${urlB}/logout`, `sid=${rebound.value}`);
  assert.equal(out.status, 200);
  for (const [url, value] of [[urlA, first.value], [urlB, rebound.value]] as const) {
    assert.equal((await call('GET', `${url}/me`, `sid=${value}`)).body.user, undefined, 'no session after logout');
  }
});

test('fastify: secret arrays rotate, defaults (rolling) set the rebound cookie once, and a regenerate and a logout are told apart in the events', async (t) => {
  const [a, b] = await twoMembers(t, { principal: (s) => (typeof s.user === 'string' ? s.user : undefined) });
  const events: SessionEvent[] = [];
  for (const m of [a, b]) m.on('sessionDestroyed', (e) => events.push(e));
  const urlA = await serve(t, a, { secret: [SECRET], cookieName: 'sid', cookie: { secure: false, maxAge: 60_000 } });
  const NEW = 'the-next-secret-also-32-characters-long';
  const urlB = await serve(t, b, { secret: [NEW, SECRET], cookieName: 'sid', cookie: { secure: false, maxAge: 60_000 } });
  const login = await call('POST', `${urlA}/login`, undefined, { user: 'bob' });
  const old = cookieOf(login.cookies, 'sid')!;
  const onB = await call('GET', `${urlB}/me`, `sid=${old.value}`);
  assert.equal(onB.body.user, 'bob');
  const rebound = onB.cookies.filter((c) => c.name === 'sid');
  assert.equal(rebound.length, 1);
  assert.equal(decodeURIComponent(rebound[0].value), hmacSigned(`${idOf(old.value).split('.')[0]}.b`, NEW));

  const relogin = await call('POST', `${urlB}/login`, `sid=${rebound[0].value}`, { user: 'bob' });
  assert.equal(relogin.status, 200);
  await call('POST', `${urlB}/logout`, `sid=${cookieOf(relogin.cookies, 'sid')!.value}`);
  assert.deepEqual(events.map((e) => [e.reason, e.principal]), [['regenerate', 'bob'], ['logout', 'bob']]);

  const forged = encodeURIComponent(hmacSigned(idOf(old.value), 'someone-elses-secret-of-32-characters'));
  assert.equal((await call('GET', `${urlB}/me`, `sid=${forged}`)).body.user, undefined);
});

test('fastify: two concurrent requests changing different keys both survive', async (t) => {
  const [a] = await twoMembers(t);
  const url = await serve(t, a, { secret: SECRET, cookieName: 'sid', cookie: { secure: false } });
  const login = await call('POST', `${url}/login`, undefined, { user: 'carol' });
  const cookie = `sid=${cookieOf(login.cookies, 'sid')!.value}`;
  await Promise.all([call('POST', `${url}/slow-set`, cookie, { theme: 'dark' }), call('POST', `${url}/slow-set`, cookie, { lang: 'fr' })]);
  const me = await call('GET', `${url}/me`, cookie);
  assert.deepEqual([me.body.user, me.body.theme, me.body.lang], ['carol', 'dark', 'fr']);
});

test('fastify: a value that cannot be replicated fails its request (500) naming the path, and nothing of that write is replicated', async (t) => {
  const [a, b] = await twoMembers(t);
  const options: FastifySessionOptions = { secret: SECRET, cookieName: 'sid', cookie: { secure: false } };
  const [urlA, urlB] = [await serve(t, a, options), await serve(t, b, options)];
  const login = await call('POST', `${urlA}/login`, undefined, { user: 'dave' });
  const cookie = `sid=${cookieOf(login.cookies, 'sid')!.value}`;
  const bad = await call('POST', `${urlA}/avatar`, cookie);
  assert.equal(bad.status, 500);
  assert.equal(bad.body.code, 'ERR_SESSION_UNSERIALIZABLE');
  assert.match(bad.body.message, /session\.avatar/);
  assert.equal(cookieOf(bad.cookies, 'sid'), undefined, 'the failed request sets no cookie');
  const onB = await call('GET', `${urlB}/me`, cookie);
  assert.equal(onB.body.user, 'dave');
  assert.equal(onB.body.avatar, undefined);
});

test('fastify: ids nobody holds, past the budget, get 503 with Retry-After; options the cluster sets are refused', async (t) => {
  const [a] = await twoMembers(t, { unknownIds: { burst: 2, perSecond: 0.1 } });
  const url = await serve(t, a, { secret: SECRET, cookieName: 'sid', cookie: { secure: false } });
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 4; i++) {
    const res = await call('GET', `${url}/me`, `sid=${encodeURIComponent(hmacSigned(`${'y'.repeat(23)}${i}.b`, SECRET))}`, undefined, { retry: false });
    statuses.push(res.status);
    if (res.status === 503) retryAfter = res.headers.get('retry-after');
  }
  assert.deepEqual(statuses, [200, 200, 503, 503]);
  assert.equal(retryAfter, '1');
  const app = Fastify();
  t.after(() => app.close());
  await assert.rejects(
    async () => {
      await app.register(a.fastifySession, { secret: SECRET, store: {} } as unknown as FastifySessionOptions);
      await app.ready();
    },
    (e: unknown) => e instanceof ClusterOptionsError && e.option === 'fastifySession.store',
  );
});
