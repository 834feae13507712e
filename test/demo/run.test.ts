/**
 * `npm run demo` (demo/run.ts): starts its members and balancer with the flags a user types, serves
 * through the balancer, and on Ctrl-C (SIGINT) or SIGTERM stops everything, leaving no process behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../helpers/http-client.js';
import { waitFor } from '../helpers/wait.js';
import { cookieRoute } from './demo-cluster.js';
import { isRunning, runDemo, stopsCleanly } from './demo-runner.js';

test('npm run demo -- --nodes 2 --mode delta: the seed\'s two instances serve through the balancer, and Ctrl-C stops them all', async (t) => {
  const demo = await runDemo(t, ['--nodes', '2', '--mode', 'delta']);
  assert.deepEqual(
    demo.members.map((m) => m.route),
    ['node1', 'node2'],
  );
  assert.match(demo.proc.lines.join('\n'), /2 members, delta mode/);

  const jar = new CookieJar();
  const login = await request(jar, 'POST', `${demo.url}/login`, { username: 'seed' });
  assert.equal(login.status, 200);
  const first = login.body.route as string;
  assert.equal(cookieRoute(jar), first);
  // The seed's test: the other instance, directly, sees the login.
  const other = demo.members.find((m) => m.route !== first)!;
  const me = await request(jar, 'GET', `${other.url}/me`);
  assert.equal(me.status, 200);
  assert.equal(me.body.greeting, 'Welcome, seed');
  // And the balancer follows the session to the member that holds it now.
  assert.equal((await request(jar, 'GET', `${demo.url}/me`)).body.route, other.route);

  await stopsCleanly(demo, 'SIGINT');
});

test('npm run demo (backup mode): kill -9 of the serving member as printed, reload through the balancer, still logged in; SIGTERM stops the rest', async (t) => {
  const demo = await runDemo(t, ['--nodes', '3']);
  assert.equal(demo.members.length, 3);
  assert.match(demo.proc.lines.join('\n'), /3 members, backup mode/);

  const jar = new CookieJar();
  await request(jar, 'POST', `${demo.url}/login`, { username: 'ops' });
  const served = (await request(jar, 'POST', `${demo.url}/cart`, { item: 'rope' })).body.route as string;
  const victim = demo.members.find((m) => m.route === served)!;
  process.kill(victim.pid, 'SIGKILL');
  await waitFor(`${served} to be gone`, () => !isRunning(victim.pid));

  const after = await request(jar, 'GET', `${demo.url}/me`);
  assert.equal(after.status, 200);
  assert.notEqual(after.body.route, served);
  assert.deepEqual(after.body.cart, ['rope']);
  assert.equal(cookieRoute(jar), after.body.route);
  await demo.proc.waitForLine(new RegExp(`\\[${served}\\] killed by SIGKILL`));

  await stopsCleanly(demo, 'SIGTERM');
});
