/**
 * Issue 23, item 8: a logout leaves a tombstone on every member, which fences stray copies. Once every
 * member acknowledged the destruction and no copy can still be on its way (8 ackTimeouts), the
 * tombstones go, on every member: they no longer pile up for the session's whole remaining life. The
 * old cookie is still "no session" after that.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../helpers/http-client.js';
import { startAppCluster, status } from '../helpers/app-cluster.js';
import { waitFor } from '../helpers/wait.js';

test('tombstones of destructions every member acknowledged are forgotten everywhere after a grace; the old ids stay "no session"', async (t) => {
  const { members } = await startAppCluster(t, 3, { env: { ACK_TIMEOUT: '1000', EXPECTED_MEMBERS: '3' } });
  const olds: CookieJar[] = [];
  for (let i = 0; i < 20; i++) {
    const jar = new CookieJar();
    assert.equal((await request(jar, 'POST', `${members[i % 3].url}/set`, { n: i })).status, 200);
    olds.push(jar.copy()); // the cookie as it was before the logout, to replay
    assert.equal((await request(jar, 'POST', `${members[i % 3].url}/logout`)).status, 200);
  }
  const tombstones = async () => (await Promise.all(members.map(status))).map((s) => (s as unknown as { tombstones: { removed: number } }).tombstones.removed);
  const counted = await tombstones();
  assert.ok(counted.every((n) => n === 20), `every member fences the 20 destroyed sessions: ${counted.join(', ')}`);
  await waitFor('every member to forget the 20 tombstones', async () => (await tombstones()).every((n) => n === 0), 30_000);
  for (const old of olds) {
    const res = await request(old, 'GET', `${members[1].url}/get`);
    assert.equal(res.status, 200);
    assert.equal(res.body.session?.n, undefined, 'a replayed old id finds nothing, tombstone or not');
  }
});
