/**
 * The demo app's JSON and form endpoints, on two real members: the contract the README and the
 * browser and nginx tests rely on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../helpers/http-client.js';
import { cookieRoute, startDemoCluster } from './demo-cluster.js';

/** Posts an HTML form (urlencoded) as a browser does, without following the redirect. */
async function postForm(jar: CookieJar, url: string, fields: Record<string, string>): Promise<Response> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
    redirect: 'manual',
    signal: AbortSignal.timeout(10_000),
  });
  jar.store(res);
  return res;
}

test('demo app: log in, fill the cart, read it on another member as a User, log out everywhere', async (t) => {
  const [node1, node2] = await startDemoCluster(t, 2, 'backup');
  const jar = new CookieJar();

  const anonymous = await request(jar, 'GET', `${node1.url}/me`);
  assert.equal(anonymous.status, 401);
  assert.deepEqual(anonymous.body, { error: 'not logged in', route: 'node1' });
  assert.equal((await request(jar, 'POST', `${node1.url}/cart`, { item: 'pen' })).status, 401);
  assert.equal((await request(jar, 'POST', `${node1.url}/login`, {})).status, 400);
  assert.equal((await request(jar, 'POST', `${node1.url}/login`, { username: 'x'.repeat(41) })).status, 400);
  assert.equal(jar.get('sid'), undefined, 'no session before a login');

  const login = await request(jar, 'POST', `${node1.url}/login`, { username: 'carol' });
  assert.equal(login.status, 200);
  assert.equal(login.body.user.username, 'carol');
  assert.equal(login.body.greeting, 'Welcome, carol');
  assert.equal(login.body.route, 'node1');
  assert.equal(login.headers.get('x-served-by'), 'node1');
  assert.equal(cookieRoute(jar), 'node1');
  assert.ok(jar.get('sid.sig'), 'the session cookie is signed');

  const cart = await request(jar, 'POST', `${node1.url}/cart`, { item: 'pen' });
  assert.deepEqual(cart.body.cart, ['pen']);
  assert.equal((await request(jar, 'POST', `${node1.url}/cart`, { item: '' })).status, 400);

  // The seed's check: another member sees the login, and the user is a User again (its method works).
  const elsewhere = await request(jar, 'GET', `${node2.url}/me`);
  assert.equal(elsewhere.status, 200);
  assert.equal(elsewhere.body.route, 'node2');
  assert.equal(elsewhere.body.greeting, 'Welcome, carol');
  assert.deepEqual(elsewhere.body.cart, ['pen']);
  assert.equal(elsewhere.body.sessionRoute, 'node2');
  assert.equal(cookieRoute(jar), 'node2', 'node2 took the session over');

  // A second login gets a new session id (no session fixation).
  const before = jar.get('sid');
  await request(jar, 'POST', `${node2.url}/login`, { username: 'dave' });
  assert.notEqual(jar.get('sid'), before);
  assert.deepEqual((await request(jar, 'GET', `${node2.url}/me`)).body.cart, []);

  // Logout removes the session from the cluster, not just from this browser.
  const stale = new CookieJar();
  for (const [k, v] of jar.cookies) stale.cookies.set(k, v);
  assert.deepEqual((await request(jar, 'POST', `${node2.url}/logout`)).body, { loggedOut: true, route: 'node2' });
  assert.equal((await request(jar, 'GET', `${node2.url}/me`)).status, 401);
  assert.equal((await request(stale, 'GET', `${node1.url}/me`)).status, 401, 'the logged-out session is gone on node1 too');

  const status = await request(new CookieJar(), 'GET', `${node1.url}/cluster/status`);
  assert.equal(status.body.route, 'node1');
  assert.equal(status.body.mode, 'backup');
});

test('demo app: forms redirect to the page, which escapes what users typed', async (t) => {
  const [node1] = await startDemoCluster(t, 1, 'backup');
  const jar = new CookieJar();

  const page = await request(jar, 'GET', `${node1.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(page.body as string, /<form method="post" action="\/login">/);

  const empty = await postForm(jar, `${node1.url}/login`, { username: '  ' });
  assert.equal(empty.status, 400);
  assert.match(await empty.text(), /Please enter a username/);

  const login = await postForm(jar, `${node1.url}/login`, { username: '<b>eve</b>' });
  assert.equal(login.status, 303);
  assert.equal(login.headers.get('location'), '/');
  const added = await postForm(jar, `${node1.url}/cart`, { item: '"tea" & <script>alert(1)</script>' });
  assert.equal(added.status, 303);

  const welcome = (await request(jar, 'GET', `${node1.url}/`)).body as string;
  assert.match(welcome, /Welcome, &#60;b&#62;eve&#60;\/b&#62;/);
  assert.match(welcome, /&#34;tea&#34; &#38; &#60;script&#62;alert\(1\)&#60;\/script&#62;/);
  assert.doesNotMatch(welcome, /<b>eve|<script>/);

  const logout = await postForm(jar, `${node1.url}/logout`, {});
  assert.equal(logout.status, 303);
  assert.match((await request(jar, 'GET', `${node1.url}/`)).body as string, /<h1>Log in<\/h1>/);
});

test('demo app: bodies that are not JSON objects, or too large, are refused with 4xx', async (t) => {
  const [node1] = await startDemoCluster(t, 1, 'backup');
  const post = (body: string, type = 'application/json') =>
    fetch(`${node1.url}/login`, { method: 'POST', headers: { 'content-type': type }, body, signal: AbortSignal.timeout(10_000) });
  assert.equal((await post('{"username":')).status, 400);
  assert.equal((await post('["alice"]')).status, 400);
  assert.equal((await post(JSON.stringify({ username: 'a', pad: 'x'.repeat(20_000) }))).status, 413);
});
