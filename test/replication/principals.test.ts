/**
 * Sessions by user (issue 15), end to end on 4 real member processes (real Koa, real koa-session,
 * loopback multicast and TCP): the principal index survives a member killed between an index update
 * and the lookup, "log out everywhere" is durable (replays get no session, also after a failure and
 * when it runs during a takeover), the per-user cap, absoluteMaxAge and the session events, each
 * fired once in the whole cluster.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { owners } from '../../src/ring/index.js';
import { CookieJar, request } from '../helpers/http-client.js';
import { startAppCluster, startAppMember, waitForMembership, type AppMember } from '../helpers/app-cluster.js';
import { waitFor } from '../helpers/wait.js';

interface SessionEventLine {
  name: 'sessionCreated' | 'sessionDestroyed' | 'sessionExpired';
  handle: string;
  principal?: string;
  route: string;
  reason: string;
}

/** Every session event the members printed so far. */
function events(members: AppMember[]): SessionEventLine[] {
  return members.flatMap((m) =>
    m.proc.lines.filter((l) => l.includes('"event":"session-event"')).map((l) => JSON.parse(l) as SessionEventLine),
  );
}

const routeOf = (jar: CookieJar) => jar.get('koa.sess')?.split('.').pop() ?? '';
const byRoute = (members: AppMember[], route: string) => members.find((m) => m.route === route)!;

async function login(jar: CookieJar, m: AppMember, id: number): Promise<void> {
  const res = await request(jar, 'POST', `${m.url}/login`, { id, name: `user${id}` });
  assert.equal(res.status, 200, `login of user ${id} on ${m.route}: ${JSON.stringify(res.body)}`);
}

async function sessionsOf(m: AppMember, principal: string): Promise<{ handle: string; route: string; createdAt: number; lastAccessAt: number; expiresAt: number }[]> {
  const res = await request(new CookieJar(), 'GET', `${m.url}/sessions-of?principal=${principal}`);
  assert.equal(res.status, 200, `sessionsOf(${principal}) on ${m.route}: ${JSON.stringify(res.body)}`);
  return res.body.sessions;
}

/** The user a replayed copy of `jar` finds on `m`, as a fresh browser tab would. */
async function userSeen(jar: CookieJar, m: AppMember): Promise<unknown> {
  const res = await request(jar.copy(), 'GET', `${m.url}/get`);
  assert.equal(res.status, 200, `replay on ${m.route}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.session?.user;
}

async function handleOf(jar: CookieJar, m: AppMember): Promise<string> {
  const res = await request(jar, 'GET', `${m.url}/sessions`);
  assert.equal(res.status, 200);
  return res.body.current as string;
}

test('sessionsOf lists a user\'s sessions on every member by handle, survives the index holder killed right after an update, and revoking the others is durable', async (t) => {
  const { members, config } = await startAppCluster(t, 4, { env: { PRINCIPAL: '1' } });
  const [m1, m2, m3, m4] = members as [AppMember, AppMember, AppMember, AppMember];
  const routes = members.map((m) => m.route);
  // The index holders of principal '7': the test kills the first one right after an index update.
  const [holder] = owners('7', routes);
  const others = members.filter((m) => m.route !== holder);
  const jars = [new CookieJar(), new CookieJar(), new CookieJar()];
  for (const [i, jar] of jars.entries()) await login(jar, others[i], 7);
  const stranger = new CookieJar();
  await login(stranger, m4, 8);

  const listed = await sessionsOf(m1, '7');
  assert.equal(listed.length, 3, `three sessions of user 7: ${JSON.stringify(listed)}`);
  assert.deepEqual(listed.map((s) => s.route).sort(), others.map((m) => m.route).sort(), 'each listed on the member serving it');
  const cookies = jars.map((j) => j.get('koa.sess')!);
  for (const s of listed) {
    assert.match(s.handle, /^[A-Za-z0-9_-]{22}$/);
    assert.ok(cookies.every((c) => !c.includes(s.handle) && !s.handle.includes(c.split('.')[0])), 'a handle is never the session id');
    assert.ok(s.createdAt <= s.lastAccessAt && s.lastAccessAt < s.expiresAt);
  }
  for (const m of members) {
    assert.deepEqual((await sessionsOf(m, '7')).map((s) => s.handle).sort(), listed.map((s) => s.handle).sort(), `${m.route} lists the same handles`);
  }
  // A handle used as a cookie is no session.
  const forged = new CookieJar();
  forged.cookies.set('koa.sess', `${listed[0].handle}.${listed[0].route}`);
  assert.equal(await userSeen(forged, m1), undefined);

  // An index update (a fourth login), then at once the principal's first index holder is SIGKILLed:
  // the lookup still finds the new session (its backup holder answers).
  const fourth = new CookieJar();
  await login(fourth, others[0], 7);
  byRoute(members, holder).proc.kill('SIGKILL');
  const live = members.filter((m) => m.route !== holder);
  const afterKill = await sessionsOf(live[1], '7');
  assert.equal(afterKill.length, 4, `the new session is listed after the index holder died: ${JSON.stringify(afterKill)}`);
  await waitForMembership(live, 3);

  // Log out everywhere but here, from the fourth session, while the cluster re-protects.
  const revoke = await request(fourth, 'POST', `${others[1].url}/revoke-others`);
  assert.equal(revoke.status, 200, JSON.stringify(revoke.body));
  assert.equal(revoke.body.destroyed, 3);
  assert.deepEqual(await userSeen(fourth, others[2]), { id: 7, name: 'user7' }, 'the session that revoked the others lives on');
  for (const jar of jars) for (const m of live) assert.equal(await userSeen(jar, m), undefined, `a revoked cookie is no session on ${m.route}`);
  assert.deepEqual(await userSeen(stranger, live[2]), { id: 8, name: 'user8' }, 'another user is untouched');
  const left = await sessionsOf(m2.route === holder ? m3 : m2, '7');
  assert.equal(left.length, 1);
  // Again: nothing left to destroy but the current one, which is kept.
  assert.equal((await request(fourth, 'POST', `${live[0].url}/revoke-others`)).body.destroyed, 0);

  // Events: one creation per session, one destruction per revoked session (reason revoked), cluster-wide.
  await waitFor('the revocation events', () => events(members).filter((e) => e.reason === 'revoked').length >= 3, 5000);
  const all = events(members);
  const revokedHandles = listed.map((s) => s.handle);
  for (const h of revokedHandles) {
    assert.equal(all.filter((e) => e.name === 'sessionCreated' && e.handle === h).length, 1, 'created once');
    assert.equal(all.filter((e) => e.name === 'sessionDestroyed' && e.handle === h).length, 1, 'destroyed once');
  }
  assert.equal(all.filter((e) => e.name === 'sessionDestroyed').every((e) => e.reason === 'revoked' && e.principal === '7'), true);

  // The index holder comes back (a new process, as a restarted pod), then another failure: the revoked
  // cookies still find nothing on any member (promise 2). Three of the four members then run: a strict
  // majority, so they answer; with two of four they would answer 503, as promise 3 wants.
  const back = await startAppMember(t, holder, config);
  await waitForMembership([...live, back], 4);
  const victim = live.find((m) => m.route !== routeOf(fourth))!;
  victim.proc.kill('SIGKILL');
  const rest = [...live.filter((m) => m !== victim), back];
  await waitForMembership(rest, 3);
  for (const jar of jars) for (const m of rest) assert.equal(await userSeen(jar, m), undefined, `after a second failure, ${m.route} serves no revoked session`);
  assert.deepEqual(await userSeen(fourth, rest[0]), { id: 7, name: 'user7' });
});

test('a revoke during a takeover: the session taken over at the same moment, or whose member was just killed, ends everywhere', async (t) => {
  const { members } = await startAppCluster(t, 4, { env: { PRINCIPAL: '1' } });
  const [m1, m2, m3, m4] = members as [AppMember, AppMember, AppMember, AppMember];
  const admin = new CookieJar();
  await login(admin, m1, 5);
  const moving = new CookieJar();
  await login(moving, m2, 5);
  const orphaned = new CookieJar();
  await login(orphaned, m4, 5);
  assert.equal((await sessionsOf(m3, '5')).length, 3);

  // m4 dies (its session must be adopted by its backup) and, at the same time, `moving` is taken
  // over by m3 while m1 revokes every other session of user 5.
  m4.proc.kill('SIGKILL');
  const [takeover, revoke] = await Promise.all([
    request(moving, 'POST', `${m3.url}/incr`),
    request(admin, 'POST', `${m1.url}/revoke-others`, undefined, 20_000, 15_000),
  ]);
  assert.ok([200, 503].includes(takeover.status), `the concurrent request: ${takeover.status}`);
  assert.equal(revoke.status, 200, JSON.stringify(revoke.body));
  assert.equal(revoke.body.destroyed, 2, 'both other sessions destroyed');
  const live = [m1, m2, m3];
  await waitForMembership(live, 3);
  for (const jar of [moving, orphaned]) {
    for (const m of live) assert.equal(await userSeen(jar, m), undefined, `no member serves a revoked session (${m.route})`);
  }
  assert.deepEqual(await userSeen(admin, m2), { id: 5, name: 'user5' });
  assert.equal((await sessionsOf(m2, '5')).length, 1);
});

test('maxSessionsPerPrincipal: destroy-oldest logs the oldest session out (reason limit); absoluteMaxAge ends an active session on every copy, and expiry fires once, also with no request and after its owner died', async (t) => {
  const { members } = await startAppCluster(t, 4, { env: { PRINCIPAL: '1', MAX_SESSIONS: '2', ABSOLUTE_MAX_AGE: '6000' } });
  const [m1, m2, m3, m4] = members as [AppMember, AppMember, AppMember, AppMember];
  const first = new CookieJar();
  await login(first, m1, 3);
  const firstHandle = await handleOf(first, m1);
  const second = new CookieJar();
  await login(second, m2, 3);
  const third = new CookieJar();
  await login(third, m3, 3);
  assert.equal(await userSeen(first, m4), undefined, 'the oldest session was logged out by the third login');
  assert.deepEqual(await userSeen(second, m2), { id: 3, name: 'user3' });
  assert.equal((await sessionsOf(m4, '3')).length, 2);
  await waitFor('the limit event', () => events(members).some((e) => e.handle === firstHandle && e.reason === 'limit'), 5000);

  // An idle session whose owner is killed: its backup (or the member that adopts it) fires the expiry.
  const orphan = new CookieJar();
  await login(orphan, m4, 9);
  const orphanHandle = await handleOf(orphan, m4);
  m4.proc.kill('SIGKILL');

  // An active session: used every 300 ms on changing members, it still ends 6 s after creation.
  const active = new CookieJar();
  await login(active, m1, 4);
  const activeHandle = await handleOf(active, m1);
  const started = Date.now();
  let ended = 0;
  for (let i = 0; Date.now() - started < 15_000; i++) {
    const m = [m1, m2, m3][i % 3];
    if ((await userSeen(active, m)) === undefined) {
      ended = Date.now() - started;
      break;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.ok(ended > 0, 'the active session ended');
  for (const m of [m1, m2, m3]) assert.equal(await userSeen(active, m), undefined, `no copy serves it on ${m.route}`);

  await waitFor(
    'the expiry events, with no request, from the sweep',
    () => [activeHandle, orphanHandle].every((h) => events(members).some((e) => e.name === 'sessionExpired' && e.handle === h)),
    20_000,
  );
  // Idle sessions of the cap test (second, third) expire too, with no request at all.
  await waitFor('every session expired', () => events(members).filter((e) => e.name === 'sessionExpired').length >= 4, 20_000);
  await new Promise((r) => setTimeout(r, 6000)); // a late double would come from the next sweep
  const all = events(members);
  for (const h of [activeHandle, orphanHandle]) {
    const fired = all.filter((e) => e.name === 'sessionExpired' && e.handle === h);
    assert.equal(fired.length, 1, `expiry of ${h} fired once: ${JSON.stringify(fired)}`);
    assert.equal(fired[0].reason, 'absolute');
  }
  assert.notEqual(all.find((e) => e.name === 'sessionExpired' && e.handle === orphanHandle)!.route, 'node4', 'fired by a live member');
  assert.equal(all.filter((e) => e.name === 'sessionCreated').length, 5);
});

test("onSessionLimit 'refuse': the login over the cap fails with 409 and changes nothing", async (t) => {
  const { members } = await startAppCluster(t, 4, { env: { PRINCIPAL: '1', MAX_SESSIONS: '1', ON_LIMIT: 'refuse' } });
  const [m1, , m3] = members as [AppMember, AppMember, AppMember];
  const first = new CookieJar();
  await login(first, m1, 11);
  const second = new CookieJar();
  await request(second, 'POST', `${m3.url}/set`, { cart: ['tea'] });
  const refused = await request(second, 'POST', `${m3.url}/login`, { id: 11, name: 'user11' });
  assert.equal(refused.status, 409);
  const res = await request(second, 'GET', `${m3.url}/get`);
  assert.deepEqual(res.body.session, { cart: ['tea'] }, 'the refused write was not committed');
  assert.deepEqual(await userSeen(first, m3), { id: 11, name: 'user11' });
  assert.equal((await sessionsOf(m3, '11')).length, 1);
});

test('delta mode, 4 members (every member holds every session): sessionsOf, a revoke, and each event once, the expiry of a dead owner\'s session by one member only', async (t) => {
  const { members } = await startAppCluster(t, 4, { mode: 'delta', env: { PRINCIPAL: '1', ABSOLUTE_MAX_AGE: '5000' } });
  const [m1, m2, m3, m4] = members as [AppMember, AppMember, AppMember, AppMember];
  const jars = [new CookieJar(), new CookieJar(), new CookieJar()];
  for (const [i, jar] of jars.entries()) await login(jar, [m1, m2, m3][i], 21);
  assert.deepEqual((await sessionsOf(m4, '21')).map((s) => s.route).sort(), ['node1', 'node2', 'node3']);
  const revoke = await request(jars[0], 'POST', `${m4.url}/revoke-others`);
  assert.equal(revoke.body.destroyed, 2);
  for (const jar of jars.slice(1)) for (const m of members) assert.equal(await userSeen(jar, m), undefined, `revoked on ${m.route}`);

  // A session whose owner dies: every live member holds a copy, exactly one of them fires its expiry.
  const orphan = new CookieJar();
  await login(orphan, m4, 22);
  const orphanHandle = await handleOf(orphan, m4);
  m4.proc.kill('SIGKILL');
  const kept = await handleOf(jars[0], m1);
  await waitFor(
    'both expiries',
    () => [orphanHandle, kept].every((h) => events(members).some((e) => e.name === 'sessionExpired' && e.handle === h)),
    20_000,
  );
  await new Promise((r) => setTimeout(r, 6000)); // a late double would come from another member's sweep
  const all = events(members);
  for (const h of [orphanHandle, kept]) assert.equal(all.filter((e) => e.name === 'sessionExpired' && e.handle === h).length, 1, `one expiry event for ${h}`);
  assert.equal(all.filter((e) => e.name === 'sessionCreated').length, 4);
  assert.equal(all.filter((e) => e.name === 'sessionDestroyed' && e.reason === 'revoked').length, 2);
});

test('log out everywhere with both copies of some sessions cut off answers 503, never "done"; once they are back it ends every session', async (t) => {
  const { members } = await startAppCluster(t, 5, { env: { PRINCIPAL: '1' } });
  const [m1, m2, m3] = members as [AppMember, AppMember, AppMember];
  // Twelve sessions of user 7 on m1: their backups spread over the other four, so some are on m2.
  const jars = Array.from({ length: 12 }, () => new CookieJar());
  for (const jar of jars) await login(jar, m1, 7);
  // m1 and m2 stop answering (a partition, a paused node): the sessions backed up on m2 have no copy
  // on the three members left, which still make a majority.
  m1.proc.kill('SIGSTOP');
  m2.proc.kill('SIGSTOP');
  let resumed = false;
  const resume = () => {
    if (resumed) return;
    resumed = true;
    m1.proc.kill('SIGCONT');
    m2.proc.kill('SIGCONT');
  };
  t.after(resume);
  await waitForMembership(members.slice(2), 3);
  const during = await request(new CookieJar(), 'POST', `${m3.url}/destroy-all?principal=7`, undefined, 20_000, 0);
  assert.equal(during.status, 503, `log out everywhere while two members are cut off: ${during.status} ${JSON.stringify(during.body)}`);
  resume();
  await waitForMembership(members, 5);
  const after = await request(new CookieJar(), 'POST', `${m3.url}/destroy-all?principal=7`, undefined, 20_000, 15_000);
  assert.equal(after.status, 200, JSON.stringify(after.body));
  assert.equal(after.body.destroyed, 12);
  for (const jar of jars) for (const m of members) assert.equal(await userSeen(jar, m), undefined, `a revoked session served by ${m.route}`);
});
