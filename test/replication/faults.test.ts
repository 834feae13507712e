/**
 * Issue 11's scenarios, each a named regression test: the promises under faults of DESIGN.md, end to
 * end, with real member processes (Koa, koa-session, loopback multicast, TCP). dropTime is 1500 ms
 * (test/helpers/app-member.ts), so convergence is due within 3.5 s of a fault ending.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../helpers/http-client.js';
import { copies, createSessions, heldTwice, startAppCluster, startAppMember, status, waitForMembership, type AppMember } from '../helpers/app-cluster.js';
import { waitFor } from '../helpers/wait.js';

const DROP_TIME = 1500;
const CONVERGENCE_MS = DROP_TIME + 2000;

/** Milliseconds until `members` hold exactly one primary and one backup of each of `sessions`. */
async function convergence(members: AppMember[], sessions: number, from: number): Promise<number> {
  let c = { primary: 0, backup: 0 };
  await waitFor(
    `one primary and one backup of each of ${sessions} sessions`,
    async () => {
      c = await copies(members);
      return c.primary === sessions && c.backup === sessions;
    },
    15_000,
    50,
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(c)}`);
  });
  return Date.now() - from;
}

/** The member holding the backup of the only session of a fresh cluster. */
async function backupHolder(members: AppMember[]): Promise<AppMember> {
  const all = await Promise.all(members.map(status));
  return members[all.findIndex((s) => s.sessions.backup === 1)];
}

test('issue 11: a logout survives a paused backup and the death of its primary; the old cookie is never served again', async (t) => {
  const { members } = await startAppCluster(t, 3);
  const [m1] = members as [AppMember];
  const jar = new CookieJar();
  assert.equal((await request(jar, 'POST', `${m1.url}/login`, { id: 7 })).status, 200);
  const before = jar.copy();
  await waitFor('the session to have its backup', async () => (await copies(members)).backup === 1);
  const backup = await backupHolder(members);
  const third = members.find((m) => m !== m1 && m !== backup)!;
  // The backup is frozen past dropTime: the others drop it, and the logout cannot reach it.
  backup.proc.kill('SIGSTOP');
  await waitForMembership([m1, third], 2);
  const out = await request(jar, 'POST', `${m1.url}/logout`);
  assert.equal(out.status, 200);
  backup.proc.kill('SIGCONT');
  await waitForMembership(members, 3);
  // Its primary dies: the woken backup still had the copy on old main, and adopted it.
  m1.proc.kill('SIGKILL');
  await waitForMembership([backup, third], 2);
  for (const m of [backup, third]) {
    for (let i = 0; i < 3; i++) {
      const replay = await request(before.copy(), 'GET', `${m.url}/get`);
      assert.equal(replay.status, 200);
      assert.equal(replay.body.session?.user, undefined, `${m.route} served the logged-out session again`);
    }
  }
});

test('issue 11: concurrent takeovers by two members, with the abandoned request still running on the old owner, never answer "not logged in"', async (t) => {
  const { members } = await startAppCluster(t, 3);
  const jar = new CookieJar();
  await request(jar, 'POST', `${members[0].url}/login`, { id: 1 });
  // Each member's request increments its own key: concurrent requests changing different keys must
  // all survive, so no key may ever read lower than its last acknowledged value.
  const acked = new Map<string, number>();
  for (let round = 0; round < 15; round++) {
    // The same cookie at every member at once, one of them slow (a client that gave up and moved on).
    const answers = await Promise.all(
      members.map((m, i) => request(jar.copy(), 'POST', `${m.url}/incr?key=k${i}&delay=${i === round % 3 ? 150 : 0}`, undefined, 10_000, 10_000)),
    );
    for (const [i, a] of answers.entries()) {
      assert.equal(a.status, 200, `round ${round}: ${a.status} ${JSON.stringify(a.body)}`);
      assert.equal(a.body.session?.user?.id, 1, `round ${round}: ${a.body.route} answered as if not logged in`);
      acked.set(`k${i}`, Number(a.body.session[`k${i}`]));
    }
    const last = await request(jar, 'GET', `${members[round % 3].url}/get`);
    assert.equal(last.body.session?.user?.id, 1);
    for (const [key, n] of acked) assert.ok(Number(last.body.session[key]) >= n, `round ${round}: ${key} read ${last.body.session[key]} after ${n} was acknowledged`);
  }
  assert.deepEqual([...acked.values()], [15, 15, 15], 'every increment of every key survived');
});

test('issue 11: after a primary is paused past dropTime and resumed, copies converge within dropTime + 2 s', async (t) => {
  const { members } = await startAppCluster(t, 4);
  const jars: CookieJar[] = [];
  for (let i = 0; i < 40; i++) {
    const jar = new CookieJar();
    await request(jar, 'POST', `${members[i % 4].url}/set`, { n: i });
    jars.push(jar);
  }
  const [m1, ...others] = members as [AppMember, ...AppMember[]];
  m1.proc.kill('SIGSTOP');
  await waitForMembership(others, 3);
  // Half of m1's users move on meanwhile: their sessions are taken over on the majority.
  for (let i = 0; i < 40; i += 8) {
    const res = await request(jars[i], 'POST', `${others[i % 3].url}/set`, { moved: true });
    assert.deepEqual(res.body.session, { n: i, moved: true });
  }
  await new Promise((r) => setTimeout(r, 4500 - 2 * DROP_TIME));
  m1.proc.kill('SIGCONT');
  const resumed = Date.now();
  await waitForMembership(members, 4);
  const ms = await convergence(members, 40, resumed);
  assert.ok(ms <= CONVERGENCE_MS, `converged ${ms} ms after the resume`);
  for (const [i, jar] of jars.entries()) {
    const res = await request(jar, 'GET', `${members[(i + 1) % 4].url}/get`);
    assert.deepEqual(res.body.session, i % 8 === 0 ? { n: i, moved: true } : { n: i });
  }
});

test('issue 11: after a graceful restart, every session has a backup again within dropTime + 2 s', async (t) => {
  const { members, config } = await startAppCluster(t, 4);
  await createSessions(members, 40);
  const total = await heldTwice(members, 40);
  const old = members[1];
  old.proc.kill('SIGTERM');
  await old.proc.waitForLine(/"event":"stopped"/, 30_000);
  await old.proc.exited();
  const fresh = await startAppMember(t, old.route, config);
  const live = members.map((m) => (m === old ? fresh : m));
  await waitForMembership(live, 4);
  const ms = await convergence(live, total, Date.now());
  assert.ok(ms <= CONVERGENCE_MS, `converged ${ms} ms after the rejoin`);
});
