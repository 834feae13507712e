/**
 * Failover behind a sticky load balancer, the way the demo is meant to be used: log in, fill the
 * cart, SIGKILL the member that served, reload. Once behind real nginx running demo/nginx.conf (its
 * ports replaced), once behind the demo's own balancer (demo/balancer.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppMember } from '../helpers/app-cluster.js';
import { CookieJar, request } from '../helpers/http-client.js';
import { hasNginx, startNginx } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';
import { startBalancer } from '../../demo/balancer.js';
import { DEMO_NGINX_CONF, cookieRoute, startDemoCluster } from './demo-cluster.js';

/**
 * demo/nginx.conf with 8080 and 8081-8084 replaced by the test's ports. Every port must be found, so
 * a change to the file that this replacement misses fails here instead of testing something else.
 */
async function demoNginxConf(lbPort: number, memberPorts: number[]): Promise<string> {
  let conf = await readFile(DEMO_NGINX_CONF, 'utf8');
  const replace = (from: number, to: number) => {
    const pattern = new RegExp(`127\\.0\\.0\\.1:${from}\\b`, 'g');
    assert.match(conf, pattern, `demo/nginx.conf mentions 127.0.0.1:${from}`);
    conf = conf.replace(pattern, `127.0.0.1:${to}`);
  };
  replace(8080, lbPort);
  memberPorts.forEach((port, i) => replace(8081 + i, port));
  assert.doesNotMatch(conf, /:808\d\b/, 'every demo port was replaced');
  return conf;
}

/**
 * The scenario, against a front door `url` that balances over `members`. Resolves with the member
 * killed and the one that took over.
 */
async function failoverScenario(url: string, members: AppMember[]): Promise<{ killed: AppMember; took: AppMember }> {
  const jar = new CookieJar();
  const login = await request(jar, 'POST', `${url}/login`, { username: 'bob' });
  assert.equal(login.status, 200);
  await request(jar, 'POST', `${url}/cart`, { item: 'tea' });
  await request(jar, 'POST', `${url}/cart`, { item: 'milk' });
  const me = await request(jar, 'GET', `${url}/me`);
  assert.equal(me.status, 200);
  const served: string = me.body.route;
  assert.equal(cookieRoute(jar), served, 'the cookie names the member that serves the session');
  const signature = jar.get('sid.sig');
  assert.ok(signature, 'the session cookie is signed');
  for (let i = 0; i < 3; i++) {
    assert.equal((await request(jar, 'GET', `${url}/me`)).body.route, served, 'requests stick to that member');
  }

  const victim = members.find((m) => m.route === served)!;
  victim.proc.kill('SIGKILL');
  await victim.proc.exited();

  const reload = await request(jar, 'GET', `${url}/`);
  assert.equal(reload.status, 200);
  const now = reload.headers.get('x-served-by');
  assert.ok(now !== null && now !== served, `another member served the reload (got ${now})`);
  assert.match(reload.body as string, /Welcome, bob/);
  assert.match(reload.body as string, /<li>tea<\/li><li>milk<\/li>/);
  assert.equal(cookieRoute(jar), now, `the cookie's suffix now names ${now}`);
  const newSignature = jar.get('sid.sig');
  assert.ok(newSignature !== undefined && newSignature !== signature, 'the rewritten cookie is signed anew');

  const after = await request(jar, 'GET', `${url}/me`);
  assert.equal(after.status, 200);
  assert.equal(after.body.route, now, 'and requests stick to the new member');
  assert.equal(after.body.user.username, 'bob');
  assert.deepEqual(after.body.cart, ['tea', 'milk']);
  const more = await request(jar, 'POST', `${url}/cart`, { item: 'honey' });
  assert.deepEqual(more.body.cart, ['tea', 'milk', 'honey']);
  return { killed: victim, took: members.find((m) => m.route === now)! };
}

test('behind nginx (demo/nginx.conf): SIGKILL the serving member, reload, still logged in with the cart, cookie names another member', async (t) => {
  if (!hasNginx(t)) return;
  const members = await startDemoCluster(t, 4, 'backup');
  const port = await freePort();
  const nginx = await startNginx(t, await demoNginxConf(port, members.map((m) => m.port)), port);
  const { killed, took } = await failoverScenario(`http://127.0.0.1:${port}`, members);
  // nginx's own log shows it: the reload went to the dead member first, then on (past a member that
  // answered 503 while the session was moving, if any) to the one that took it over.
  const log = await readFile(join(nginx!.dir, 'access.log'), 'utf8');
  assert.match(
    log,
    new RegExp(`"GET / HTTP/1.1" 200 cookie_route=${killed.route} upstream=127\\.0\\.0\\.1:${killed.port}(, 127\\.0\\.0\\.1:\\d+)*, 127\\.0\\.0\\.1:${took.port}\\n`),
  );
});

test('behind the demo balancer: SIGKILL the serving member, reload, still logged in with the cart, cookie names another member', async (t) => {
  const members = await startDemoCluster(t, 4, 'backup');
  const failovers: string[] = [];
  const balancer = await startBalancer({
    members: members.map((m) => ({ route: m.route, host: '127.0.0.1', port: m.port })),
    port: 0,
    log: (line) => failovers.push(line),
  });
  t.after(() => balancer.close());
  const { killed } = await failoverScenario(balancer.url, members);
  assert.ok(
    failovers.some((l) => l.startsWith(`${killed.route} `)),
    `the balancer saw ${killed.route} fail and moved on: ${failovers.join('; ')}`,
  );
});
