/**
 * Replication over static membership (no multicast): the members are a list of host:port.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../helpers/http-client.js';
import { clusterConfig, startAppMember, status, waitForMembership, type AppMember } from '../helpers/app-cluster.js';
import { freePort } from '../helpers/ports.js';

test('static membership with encrypted frames: log in on one member, read on another, SIGKILL it, read on a third', async (t) => {
  const ports = [await freePort(), await freePort(), await freePort()];
  const list = ports.map((p) => `127.0.0.1:${p}`).join(',');
  const base = await clusterConfig();
  const members: AppMember[] = await Promise.all(
    ports.map((p, i) =>
      startAppMember(t, `node${i + 1}`, { ...base, env: { ...base.env, STATIC_MEMBERS: list, RECEIVER_PORT: String(p), ENCRYPT: '1' } }),
    ),
  );
  await waitForMembership(members, 3);
  const [m1, m2, m3] = members as [AppMember, AppMember, AppMember];
  const jar = new CookieJar();
  await request(jar, 'POST', `${m1.url}/login`, { id: 9, name: 'park' });
  const onTwo = await request(jar, 'GET', `${m2.url}/get`);
  assert.equal(onTwo.body.isTestUser, true);
  assert.deepEqual(onTwo.body.session.user, { id: 9, name: 'park' });
  m2.proc.kill('SIGKILL');
  await waitForMembership([m1, m3], 2);
  const onThree = await request(jar, 'GET', `${m3.url}/get`);
  assert.deepEqual(onThree.body.session.user, { id: 9, name: 'park' });
  const s = await status(m3);
  assert.equal(s.members.length, 2);
});
