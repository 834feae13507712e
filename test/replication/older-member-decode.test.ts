/**
 * A session value an older member cannot decode (issue 27): during a rollout a newer member stores a
 * value of a class only it has registered. The older member fails that session's request loudly,
 * naming why, and only there: the session is neither lost nor replaced, the newer member still
 * serves it whole, and the older member's other sessions are unaffected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterConfig, startAppMember, waitForMembership } from '../helpers/app-cluster.js';
import { CookieJar, request } from '../helpers/http-client.js';
import { waitFor } from '../helpers/wait.js';

for (const mode of ['backup', 'delta'] as const) {
  test(`a value of a class only the newer member registered fails on the older member only, naming the class (${mode})`, async (t) => {
    const c = await clusterConfig({ mode });
    const [newer, older] = await Promise.all([
      startAppMember(t, 'node1', { ...c, env: { ...c.env, REGISTER_AVATAR: '1' } }),
      startAppMember(t, 'node2', c),
    ]);
    await waitForMembership([newer, older], 2);
    const jar = new CookieJar();
    assert.equal((await request(jar, 'POST', `${newer.url}/login`, { id: 5 })).status, 200);
    const stored = await request(jar, 'POST', `${newer.url}/unregistered`);
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
    const plain = new CookieJar();
    assert.equal((await request(plain, 'POST', `${older.url}/set`, { n: 1 })).status, 200);

    // The older member cannot build an Avatar: the request fails, loudly, naming the class.
    const failed = await request(jar.copy(), 'GET', `${older.url}/get`, undefined, 10_000, 0);
    assert.ok(failed.status >= 500, `the older member answered ${failed.status} ${JSON.stringify(failed.body)}`);
    const line = await older.proc.waitForLine(/Avatar/, 5000);
    assert.match(line, /not registered on this member/, line);
    t.diagnostic(`older member: HTTP ${failed.status}; log: ${line.slice(0, 400)}`);
    // Only there: the newer member logged nothing of it, and still serves the session whole.
    assert.equal(newer.proc.lines.filter((l) => /Avatar/.test(l) && /"level":(40|50)/.test(l)).length, 0, newer.proc.lines.filter((l) => /Avatar/.test(l)).join('\n'));
    await waitFor('the newer member to serve the session', async () => (await request(jar.copy(), 'GET', `${newer.url}/get`)).status === 200, 10_000);
    const back = await request(jar, 'GET', `${newer.url}/get`);
    assert.deepEqual(back.body.session.user, { profile: { avatar: { url: 'x.png' } } }, 'the session is neither lost nor replaced');
    // The older member's other sessions are unaffected.
    assert.deepEqual((await request(plain, 'GET', `${older.url}/get`)).body.session, { n: 1 });
  });
}
