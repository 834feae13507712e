/**
 * Issue 25: more than one backup. Five real members with `backups: 2` (three copies of each session):
 * two members SIGKILLed in the same instant, as a node drain or a host crash does, lose no session and
 * no acknowledged write; re-protection brings every session back to three copies, as the status says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../helpers/http-client.js';
import { startAppCluster, status, waitForMembership, type AppMember } from '../helpers/app-cluster.js';
import { waitFor } from '../helpers/wait.js';

const copiesOf = async (members: AppMember[]) => {
  const all = await Promise.all(members.map(status));
  return {
    primary: all.reduce((n, s) => n + s.sessions.primary, 0),
    backup: all.reduce((n, s) => n + s.sessions.backup, 0),
    under: all.reduce((n, s) => n + (s.sessions as { underReplicated?: number }).underReplicated!, 0),
  };
};

test('backups: 2 — two members killed at once lose no session and no acknowledged write; three copies again after', async (t) => {
  const { members } = await startAppCluster(t, 5, { env: { BACKUPS: '2', EXPECTED_MEMBERS: '5' } });
  const users = Array.from({ length: 60 }, (_, i) => ({ jar: new CookieJar(), n: i, home: members[i % 5] }));
  for (const u of users) assert.equal((await request(u.jar, 'POST', `${u.home.url}/set`, { n: u.n })).status, 200);
  for (const u of users) assert.equal((await request(u.jar, 'POST', `${u.home.url}/set`, { n: u.n, more: true })).status, 200);
  await waitFor('three copies of each of 60 sessions', async () => {
    const c = await copiesOf(members);
    return c.primary === 60 && c.backup === 120 && c.under === 0;
  }, 20_000);

  const [a, b] = [members[0], members[1]];
  a.proc.kill('SIGKILL');
  b.proc.kill('SIGKILL');
  const survivors = members.slice(2);
  await waitForMembership(survivors, 3);
  for (const [i, u] of users.entries()) {
    const res = await request(u.jar, 'GET', `${survivors[i % 3].url}/get`, undefined, 10_000, 20_000);
    assert.equal(res.status, 200, `user ${i}`);
    assert.deepEqual(res.body.session, { n: u.n, more: true }, `user ${i}'s last acknowledged write survived two failures at once`);
  }
  // Three copies again, now on the three members left: every session is a primary and two backups.
  await waitFor('three copies of each session on the three survivors, none under-replicated', async () => {
    const c = await copiesOf(survivors);
    return c.primary === 60 && c.backup === 120 && c.under === 0 ? c : undefined;
  }, 30_000);
});
