/**
 * `npm run demo` (demo/run.ts): starts its members and balancer with the flags a user types, serves
 * through the balancer, and on Ctrl-C (SIGINT) or SIGTERM stops everything, leaving no process behind.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startProcess, type MemberProcess } from '../helpers/member-process.js';
import { CookieJar, request } from '../helpers/http-client.js';
import { freePort, freeUdpPort, randomGroup } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';
import { DEMO_RUN, cookieRoute } from './demo-cluster.js';

interface RunningDemo {
  proc: MemberProcess;
  /** The balancer's URL, as printed. */
  url: string;
  /** The members, as printed: route, URL and pid. */
  members: { route: string; url: string; pid: number }[];
}

/**
 * Runs `demo/run.ts <flags>` as `npm run demo -- <flags>` does, on ports and a multicast group of
 * the test's own, and reads the instructions it prints.
 */
async function runDemo(t: TestContext, flags: string[]): Promise<RunningDemo> {
  const own = ['--base-port', '0', '--lb-port', String(await freePort()), '--mcast-address', randomGroup(), '--mcast-port', String(await freeUdpPort())];
  // startProcess runs `node --import tsx <script>`; the shell appends the flags and execs it, so the
  // pid stays the runner's.
  const proc = startProcess(t, 'demo', DEMO_RUN, {}, { command: ['sh', '-c', `exec "$0" "$@" ${[...flags, ...own].join(' ')}`] });
  await proc.waitForLine(/Ctrl-C stops everything/, 60_000);
  const url = /open (http:\/\/127\.0\.0\.1:\d+)\//.exec(proc.lines.join('\n'))?.[1];
  assert.ok(url, `the balancer's URL is printed:\n${proc.lines.join('\n')}`);
  const members = proc.lines
    .map((l) => /^\s+(node\d+)\s+(http:\/\/127\.0\.0\.1:\d+)\/\s+pid (\d+)\s+kill -9 \3$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({ route: m[1], url: m[2], pid: Number(m[3]) }));
  return { proc, url, members };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopsCleanly(demo: RunningDemo, signal: NodeJS.Signals): Promise<void> {
  const started = Date.now();
  demo.proc.kill(signal);
  await demo.proc.exited();
  assert.equal(demo.proc.child.exitCode, 0, `the runner exits 0 on ${signal}`);
  assert.ok(demo.proc.lines.some((l) => l === 'demo: stopped'));
  for (const m of demo.members) assert.equal(isRunning(m.pid), false, `${m.route} (pid ${m.pid}) is gone`);
  // The runner waits for its members, so this is how long a user waits after Ctrl-C.
  assert.ok(Date.now() - started < 15_000, `stopped within 15 s (took ${Date.now() - started} ms)`);
}

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
