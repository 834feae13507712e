/**
 * Backup mode end to end: real member processes running a real Koa app with real koa-session,
 * replicating over real loopback multicast and TCP.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../helpers/http-client.js';
import { copies, createSessions, heldTwice, startAppCluster, startAppMember, status, waitForMembership, type AppMember } from '../helpers/app-cluster.js';
import { waitFor } from '../helpers/wait.js';

const routeOf = (jar: CookieJar) => jar.get('koa.sess')?.split('.').pop();

test("the seed's test: log in on member 1, member 2 sees the user, as a TestUser, and rebinds the signed cookie", async (t) => {
  const { members } = await startAppCluster(t, 2);
  const [m1, m2] = members as [AppMember, AppMember];
  const jar = new CookieJar();
  const login = await request(jar, 'POST', `${m1.url}/login`, { id: 7, name: 'kim' });
  assert.equal(login.status, 200);
  assert.equal(routeOf(jar), 'node1');
  const sigBefore = jar.get('koa.sess.sig');
  assert.ok(sigBefore, 'the session cookie is signed');

  const me = await request(jar, 'GET', `${m2.url}/get`);
  assert.equal(me.status, 200);
  assert.equal(me.body.route, 'node2');
  assert.deepEqual(me.body.session.user, { id: 7, name: 'kim' });
  assert.equal(me.body.isTestUser, true, 'a registered class comes back as an instance of itself');
  assert.equal(me.body.greeting, 'hello kim');
  assert.equal(routeOf(jar), 'node2', 'the cookie now names member 2');
  assert.notEqual(jar.get('koa.sess.sig'), sigBefore, 'the rewritten cookie is signed again');

  // The rebound cookie keeps working on member 2 without another takeover, and on member 1 again.
  assert.deepEqual((await request(jar, 'GET', `${m2.url}/get`)).body.session.user, { id: 7, name: 'kim' });
  assert.equal(routeOf(jar), 'node2');
  const back = await request(jar, 'GET', `${m1.url}/get`);
  assert.deepEqual(back.body.session.user, { id: 7, name: 'kim' });
  assert.equal(routeOf(jar), 'node1');
});

test('an unserializable value fails its request loudly, naming the path, and the session stays as it was everywhere', async (t) => {
  const { members } = await startAppCluster(t, 2);
  const [m1, m2] = members as [AppMember, AppMember];
  const jar = new CookieJar();
  await request(jar, 'POST', `${m1.url}/set`, { cart: ['apple'] });
  const bad = await request(jar, 'POST', `${m1.url}/unregistered`);
  assert.equal(bad.status, 500);
  await m1.proc.waitForLine(/session\.user\.profile\.avatar: instance of class Avatar is not serializable/);
  assert.deepEqual((await request(jar, 'GET', `${m1.url}/get`)).body.session, { cart: ['apple'] });
  assert.deepEqual((await request(jar, 'GET', `${m2.url}/get`)).body.session, { cart: ['apple'] });
});

test('Dates round-trip, logout is replicated, and malformed or forged cookies mean no session', async (t) => {
  const { members } = await startAppCluster(t, 2);
  const [m1, m2] = members as [AppMember, AppMember];
  const jar = new CookieJar();
  await request(jar, 'POST', `${m1.url}/date`, { when: '2024-09-04T10:00:00.000Z' });
  const read = await request(jar, 'GET', `${m2.url}/get`);
  assert.equal(read.body.whenIsDate, true);
  assert.equal(read.body.session.when, '2024-09-04T10:00:00.000Z');

  // A copy of the cookie (a second tab) finds nothing on either member after the logout.
  const stale = jar.copy();
  const out = await request(jar, 'POST', `${m2.url}/logout`);
  assert.equal(out.status, 200);
  assert.equal(jar.get('koa.sess'), undefined, 'the logout clears the cookie');
  for (const m of [m2, m1]) {
    const res = await request(new CookieJar(), 'GET', `${m.url}/get`);
    assert.deepEqual(res.body.session, {});
    const copy = stale.copy();
    assert.deepEqual((await request(copy, 'GET', `${m.url}/get`)).body.session, {}, `${m.route} forgot the session`);
  }
  const again = new CookieJar();
  await request(again, 'POST', `${m1.url}/set`, { x: 1 });
  for (const bad of ['garbage', 'a.b.c', `${'A'.repeat(30)}.no.de`, '%00%ff', `${'B'.repeat(24)}.${'r'.repeat(40)}`]) {
    const forged = new CookieJar();
    forged.cookies.set('koa.sess', bad);
    forged.cookies.set('koa.sess.sig', 'forged');
    const res = await request(forged, 'GET', `${m1.url}/get`);
    assert.equal(res.status, 200, `cookie ${bad} is no session, not an error`);
    assert.deepEqual(res.body.session, {});
  }
  const unsigned = new CookieJar();
  unsigned.cookies.set('koa.sess', again.get('koa.sess')!);
  assert.deepEqual((await request(unsigned, 'GET', `${m2.url}/get`)).body.session, {}, 'an unsigned id is ignored');
});

test('concurrent requests changing different keys of one session both survive', async (t) => {
  const { members } = await startAppCluster(t, 2);
  const [m1, m2] = members as [AppMember, AppMember];
  const jar = new CookieJar();
  await request(jar, 'POST', `${m1.url}/set`, { base: true });
  const [a, b] = await Promise.all([
    request(jar, 'POST', `${m1.url}/set?delay=300`, { a: 1 }),
    request(jar, 'POST', `${m1.url}/set?delay=100`, { b: 2 }),
  ]);
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  assert.deepEqual((await request(jar, 'GET', `${m1.url}/get`)).body.session, { base: true, a: 1, b: 2 });
  const copy = await request(jar, 'GET', `${m2.url}/get`);
  assert.deepEqual(copy.body.session, { base: true, a: 1, b: 2 }, 'the backup holds both changes too');

  // A removal by one request is not undone by a slower one that read the key and left it alone.
  const [slow, removal] = await Promise.all([
    request(jar, 'POST', `${m2.url}/set?delay=300`, { c: 3 }),
    request(jar, 'POST', `${m2.url}/unset?key=a`),
  ]);
  assert.equal(slow.status, 200);
  assert.equal(removal.status, 200);
  assert.deepEqual((await request(jar, 'GET', `${m2.url}/get`)).body.session, { base: true, b: 2, c: 3 });
  assert.deepEqual((await request(jar, 'GET', `${m1.url}/get`)).body.session, { base: true, b: 2, c: 3 });
});

test('4 members: every session has exactly 2 copies; SIGKILL of a primary loses none and copies return to 2', async (t) => {
  const { members } = await startAppCluster(t, 4);
  const users: { jar: CookieJar; n: number; home: AppMember }[] = [];
  for (let i = 0; i < 120; i++) {
    const home = members[i % 4];
    const jar = new CookieJar();
    const res = await request(jar, 'POST', `${home.url}/set`, { n: i, tags: [`t${i}`] });
    assert.equal(res.status, 200);
    users.push({ jar, n: i, home });
  }
  assert.deepEqual(await copies(members), { primary: 120, backup: 120 });
  for (const m of members) {
    const s = await status(m);
    assert.equal(s.sessions.primary, 30, `${m.route} is primary of the sessions created on it`);
  }

  const victim = members[0];
  victim.proc.kill('SIGKILL');
  const survivors = members.slice(1);
  await waitForMembership(survivors, 3);
  // Copies return to 2 by re-protection, before any request touches the orphans.
  await waitFor('re-protection to restore 2 copies of every session', async () => {
    const c = await copies(survivors);
    return c.primary === 120 && c.backup === 120 ? c : undefined;
  });
  // Every session the victim served is served by another member with its data intact.
  let i = 0;
  for (const u of users.filter((x) => x.home === victim)) {
    const other = survivors[i++ % 3];
    const res = await request(u.jar, 'GET', `${other.url}/get`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.session, { n: u.n, tags: [`t${u.n}`] }, `session ${u.n} intact`);
    assert.equal(routeOf(u.jar), other.route);
  }
  await waitFor('2 copies of every session after the takeovers', async () => {
    const c = await copies(survivors);
    return c.primary === 120 && c.backup === 120 ? c : undefined;
  });
});

test('a write acknowledged to the client survives SIGKILL of its primary right after the response', async (t) => {
  // Killed members are replaced by new routes: the cluster's size is 3 throughout, which only
  // expectedMembers can say (without it, every route seen keeps its seat until forgotten).
  const { members, config } = await startAppCluster(t, 3, { env: { EXPECTED_MEMBERS: '3' } });
  let live = [...members];
  const jar = new CookieJar();
  for (let round = 0; round < 3; round++) {
    const primary = live[round % live.length];
    const res = await request(jar, 'POST', `${primary.url}/set`, { round, payload: 'x'.repeat(100 + round) });
    assert.equal(res.status, 200);
    primary.proc.kill('SIGKILL'); // at once: no time for anything but what the ack already guaranteed
    live = live.filter((m) => m !== primary);
    const reader = live[0];
    const read = await request(jar, 'GET', `${reader.url}/get`);
    assert.equal(read.body.session?.round, round, `round ${round}'s write survived`);
    // Keep the cluster at 3 members for the next round.
    const fresh = await startAppMember(t, `node${4 + round}`, config);
    live.push(fresh);
    await waitForMembership(live, 3);
  }
});

test('a graceful rolling restart of all 4 members loses nothing', async (t) => {
  const { members, config } = await startAppCluster(t, 4);
  const users: { jar: CookieJar; n: number }[] = [];
  for (let i = 0; i < 60; i++) {
    const jar = new CookieJar();
    await request(jar, 'POST', `${members[i % 4].url}/set`, { n: i });
    users.push({ jar, n: i });
  }
  let live = [...members];
  for (let i = 0; i < 4; i++) {
    const old = live[i];
    old.proc.kill('SIGTERM');
    await old.proc.waitForLine(/"event":"stopped"/, 30_000);
    await old.proc.exited();
    const fresh = await startAppMember(t, old.route, config);
    live = live.map((m) => (m === old ? fresh : m));
    await waitForMembership(live, 4);
    // Copies moved off the leaver are dropped at their old place right after: wait for exactly 120.
    let c = { primary: 0, backup: 0 };
    await waitFor(`2 copies of each of 60 sessions after restarting ${old.route}`, async () => {
      c = await copies(live);
      return c.primary + c.backup === 120;
    }, 5000).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(c)}`);
    });
  }
  for (const u of users) {
    const route = routeOf(u.jar)!;
    const member = live.find((m) => m.route === route)!;
    const res = await request(u.jar, 'GET', `${member.url}/get`);
    assert.deepEqual(res.body.session, { n: u.n }, `session ${u.n} survived the rolling restart`);
  }
});

test('a member joining receives only its share of backups, and the old copies are dropped', async (t) => {
  const { members, config } = await startAppCluster(t, 3);
  await createSessions(members, 300);
  const total = await heldTwice(members, 300);
  const before = await Promise.all(members.map(status));
  const moved0 = before.reduce((s, x) => s + Number(x.replication.reprotected), 0);
  const joiner = await startAppMember(t, 'node4', config);
  const all = [...members, joiner];
  await waitForMembership(all, 4);
  // Settled: every session held twice and the joiner's share unchanged for a second (on a loaded
  // machine the moves come in batches, with the count at `total` between two of them).
  let last = { share: -1, since: 0 };
  const settled = await waitFor(`backups to settle at ${total} copies`, async () => {
    const c = await copies(all);
    const j = await status(joiner);
    if (c.backup !== total || j.sessions.backup === 0) return undefined;
    if (j.sessions.backup !== last.share) last = { share: j.sessions.backup, since: Date.now() };
    return Date.now() - last.since >= 1000 ? j : undefined;
  }, 30_000, 100);
  const moved = (await Promise.all(members.map(status))).reduce((s, x) => s + Number(x.replication.reprotected), 0) - moved0;
  // With 4 members, the newcomer is the ring's backup choice for about a third of the others' sessions.
  assert.ok(settled.sessions.backup >= 60 && settled.sessions.backup <= 140, `joiner holds ${settled.sessions.backup} backups`);
  assert.equal(moved, settled.sessions.backup, 'only the sessions whose backup moved were copied');
  assert.equal(settled.sessions.primary, 0);
});

test('concurrent takeovers of one session by two members resolve to one owner, data intact', async (t) => {
  const { members } = await startAppCluster(t, 3);
  const [m1, m2, m3] = members as [AppMember, AppMember, AppMember];
  const jar = new CookieJar();
  await request(jar, 'POST', `${m1.url}/set`, { v: 'one' });
  const jar2 = jar.copy();
  const [a, b] = await Promise.all([request(jar, 'GET', `${m2.url}/get`), request(jar2, 'GET', `${m3.url}/get`)]);
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  // The last takeover's drops reach the others right after its response: one owner, one backup.
  let seen = '';
  await waitFor('exactly one owner and one backup', async () => {
    const c = await copies(members);
    seen = JSON.stringify(await Promise.all(members.map(async (m) => ({ route: m.route, ...(await status(m)).sessions }))));
    return c.primary === 1 && c.backup === 1;
  }, 5000).catch((err: Error) => {
    throw new Error(`${err.message}: ${seen}`);
  });
  const owner = (await Promise.all(members.map(status))).find((s) => s.sessions.primary === 1)!.route;
  const ownerJar = routeOf(jar) === owner ? jar : jar2;
  const read = await request(ownerJar, 'GET', `${members.find((m) => m.route === owner)!.url}/get`);
  assert.deepEqual(read.body.session, { v: 'one' });
});

test('a paused primary that was taken over serves the newest version when it wakes, never its stale copy', async (t) => {
  const { members } = await startAppCluster(t, 3);
  const [m1, m2, m3] = members as [AppMember, AppMember, AppMember];
  const jar = new CookieJar();
  await request(jar, 'POST', `${m1.url}/set`, { v: 1 });
  const oldCookie = jar.copy();

  m1.proc.kill('SIGSTOP');
  await waitForMembership([m2, m3], 2);
  const moved = await request(jar, 'POST', `${m2.url}/set`, { v: 2 });
  assert.equal(moved.status, 200);
  assert.equal(moved.body.session.v, 2);
  m1.proc.kill('SIGCONT');
  await waitForMembership(members, 3);

  const woke = await request(oldCookie, 'POST', `${m1.url}/set`, { w: 1 });
  assert.equal(woke.status, 200);
  assert.deepEqual(woke.body.session, { v: 2, w: 1 }, 'the woken member took the newest version over instead of serving its own');
  const back = await request(jar, 'GET', `${m2.url}/get`);
  assert.deepEqual(back.body.session, { v: 2, w: 1 });
  // Older copies are dropped right after the takeovers' responses: one owner, one backup.
  await waitFor('one owner and one backup', async () => {
    const c = await copies(members);
    return c.primary === 1 && c.backup === 1;
  }, 5000);
});

test('regenerate replaces the id everywhere; ack async still replicates, without waiting', async (t) => {
  const { members } = await startAppCluster(t, 2, { ack: 'async' });
  const [m1, m2] = members as [AppMember, AppMember];
  const jar = new CookieJar();
  await request(jar, 'POST', `${m1.url}/set`, { keep: 'me' });
  const before = jar.get('koa.sess');
  const regen = await request(jar, 'POST', `${m1.url}/regenerate`);
  assert.equal(regen.status, 200);
  assert.notEqual(jar.get('koa.sess'), before, 'a new id');
  assert.deepEqual(regen.body.session, { keep: 'me', regenerated: true }, 'koa-session keeps the data under the new id');
  let last = {};
  await waitFor('the old id to be gone from the backup and the new one replicated', async () => {
    const c = await copies(members);
    last = { c, m1: (await status(m1)).sessions, m2: (await status(m2)).sessions };
    return c.primary === 1 && c.backup === 1;
  }).catch((err: Error) => {
    throw new Error(`${err.message}; last seen ${JSON.stringify(last)}; node1 log:\n${m1.proc.lines.slice(-20).join('\n')}`);
  });
  const read = await request(jar, 'GET', `${m2.url}/get`);
  assert.deepEqual(read.body.session, { keep: 'me', regenerated: true });
});

test('a session over maxSessionBytes is refused with its request, the stored one intact; every copy expires by itself', async (t) => {
  const { members } = await startAppCluster(t, 2, { env: { MAX_SESSION_BYTES: '2000', MAX_AGE: '1500' } });
  const [m1, m2] = members as [AppMember, AppMember];
  const jar = new CookieJar();
  await request(jar, 'POST', `${m1.url}/set`, { small: 'ok' });
  const big = await request(jar, 'POST', `${m1.url}/set`, { big: 'x'.repeat(5000) });
  assert.equal(big.status, 500);
  await m1.proc.waitForLine(/over the limit of 2000 bytes \(option maxSessionBytes\)/);
  assert.deepEqual((await request(jar, 'GET', `${m1.url}/get`)).body.session, { small: 'ok' });

  const metrics = await (await fetch(`${m1.url}/cluster/metrics`)).text();
  assert.match(metrics, /^koa_session_cluster_members 2$/m);
  assert.match(metrics, /^koa_session_cluster_writes_refused_total 1$/m);
  assert.match(metrics, /^# TYPE koa_session_cluster_bytes_sent_total counter$/m);

  // maxAge 1.5 s: both copies drop the session by themselves.
  await waitFor('both copies to expire', async () => {
    const c = await copies(members);
    return c.primary === 0 && c.backup === 0;
  });
  assert.deepEqual((await request(jar, 'GET', `${m2.url}/get`)).body.session, {});
});
