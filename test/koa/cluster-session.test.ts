/**
 * `cluster.session(app, options)` and the route binder (issue 13, item 2): after a takeover the
 * rebound cookie carries exactly the attributes of a fresh login's cookie, because both come from
 * koa-session's own options. Two real members in this process (multicast on 127.0.0.1), real Koa
 * apps on port 0 with real koa-session; the two-step form (`routeBinder()` + `session()`) too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Koa from 'koa';
import session from 'koa-session';
import { ClusterOptionsError } from '../../src/index.js';
import type { SessionCluster } from '../../src/index.js';
import { twoMembers } from '../helpers/in-process-members.js';
import { parseSetCookie, type SetCookie as ParsedCookie } from '../helpers/frameworks.js';

type KoaSessionOptions = NonNullable<Parameters<SessionCluster['session']>[1]>;

/** A Koa app on port 0 with the session middleware in one of the two forms. */
async function serve(
  t: { after(fn: () => Promise<void>): void },
  cluster: SessionCluster,
  form: 'one-step' | 'two-step',
  options: KoaSessionOptions,
): Promise<string> {
  const app = new Koa();
  app.keys = ['cookie-key-for-the-test'];
  app.proxy = true; // X-Forwarded-Proto: https makes ctx.secure true, as behind a TLS balancer
  if (form === 'one-step') {
    app.use(cluster.session(app, options));
  } else {
    app.use(cluster.routeBinder());
    app.use(session({ ...options, store: cluster.store, genid: cluster.genid }, app));
  }
  app.use((ctx) => {
    if (ctx.path.endsWith('/login')) ctx.session!.user = 'alice';
    ctx.body = { route: cluster.route, user: ctx.session?.user ?? null };
  });
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function get(url: string, cookie?: string): Promise<{ body: { route: string; user: string | null }; cookies: ParsedCookie[] }> {
  const headers: Record<string, string> = { 'x-forwarded-proto': 'https' };
  if (cookie !== undefined) headers.cookie = cookie;
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200, await res.clone().text());
  return { body: (await res.json()) as { route: string; user: string | null }, cookies: res.headers.getSetCookie().map(parseSetCookie) };
}

/** The request Cookie header a browser would send back. */
const cookieHeader = (cookies: ParsedCookie[]) => cookies.map((c) => `${c.name}=${c.value}`).join('; ');

/** Asserts that `rebound` are the same cookies, with the same attributes, as `fresh`. */
function assertSameAttributes(rebound: ParsedCookie[], fresh: ParsedCookie[], what: string): void {
  assert.deepEqual(rebound.map((c) => c.name), fresh.map((c) => c.name), `${what}: cookie names`);
  for (let i = 0; i < fresh.length; i++) {
    assert.deepEqual(rebound[i].attributes, fresh[i].attributes, `${what}: attributes of ${fresh[i].name}`);
    if (fresh[i].expires === undefined) {
      assert.equal(rebound[i].expires, undefined, `${what}: ${fresh[i].name} is a browser-session cookie`);
    } else {
      // Cookie dates have 1 s resolution; the session's expiry was fixed at its last save.
      assert.ok(rebound[i].expires !== undefined && Math.abs(rebound[i].expires! - fresh[i].expires!) <= 5000, `${what}: expires of ${fresh[i].name}`);
    }
  }
}

const configs: [string, KoaSessionOptions, string[]][] = [
  [
    'every attribute set, signed',
    { key: 'sid', maxAge: 3_600_000, path: '/app', domain: 'example.test', sameSite: 'strict', partitioned: true, priority: 'high' },
    ['path', 'domain', 'priority', 'samesite', 'secure', 'httponly', 'partitioned'],
  ],
  ['a browser-session cookie, unsigned, httpOnly off', { key: 'ses', maxAge: 'session', signed: false, httpOnly: false, sameSite: 'lax' }, ['path', 'samesite', 'secure']],
];

for (const form of ['one-step', 'two-step'] as const) {
  test(`${form}: a cookie rebound after a takeover has the attributes of a fresh login's`, async (t) => {
    const [a, b] = await twoMembers(t);
    for (const [name, options, expected] of configs) {
      const onA = await serve(t, a, form, options);
      const onB = await serve(t, b, form, options);
      const login = await get(`${onA}/app/login`);
      assert.equal(login.body.route, 'a');
      const key = options.key!;
      assert.deepEqual(login.cookies.map((c) => c.name), options.signed === false ? [key] : [key, `${key}.sig`], name);
      assert.deepEqual(Object.keys(login.cookies[0].attributes).sort(), [...expected].sort(), `${name}: the fresh login's own attributes`);

      // The user's next request reaches b: b takes the session over and rebinds the cookie.
      const moved = await get(`${onB}/app/whoami`, cookieHeader(login.cookies));
      assert.deepEqual(moved.body, { route: 'b', user: 'alice' }, `${name}: the session moved with its data`);
      const id = moved.cookies.find((c) => c.name === key);
      assert.ok(id !== undefined && id.value.endsWith('.b') && id.value.split('.')[0] === login.cookies[0].value.split('.')[0], `${name}: rebound id ${id?.value}`);
      assertSameAttributes(moved.cookies, login.cookies, `${name}, takeover vs login on a`);
      const freshOnB = await get(`${onB}/app/login`);
      assertSameAttributes(moved.cookies, freshOnB.cookies, `${name}, takeover vs login on b`);

      // With the rebound cookie, b serves the session without another takeover or cookie.
      const again = await get(`${onB}/app/whoami`, cookieHeader(moved.cookies));
      assert.deepEqual(again.body, { route: 'b', user: 'alice' });
      assert.deepEqual(again.cookies, [], `${name}: no new cookie once bound`);
    }
  });
}

test('cluster.session refuses a store, genid or ContextStore of its own, and a missing app', async (t) => {
  const [a] = await twoMembers(t);
  const app = new Koa();
  for (const k of ['store', 'genid', 'ContextStore']) {
    assert.throws(
      () => a.session(app, { [k]: {} }),
      (err: unknown) => err instanceof ClusterOptionsError && err.option === `session.${k}` && /set by the cluster/.test(err.message),
    );
  }
  assert.throws(() => a.session(undefined as unknown as Koa), (err: unknown) => err instanceof ClusterOptionsError && err.option === 'app');
});
