/**
 * Backup mode across three separate hosts (network namespaces on a bridge, needs root): a partition
 * is a link set down. Runs in CI (REQUIRE_SYSTEM_TESTS=1); skipped with the reason elsewhere.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { BridgeNetwork, namespacesAvailable } from '../helpers/netns.js';
import { startProcess } from '../helpers/member-process.js';
import { freeUdpPort, randomGroup } from '../helpers/ports.js';
import { CookieJar, request } from '../helpers/http-client.js';
import { status, waitForMembership, type AppMember } from '../helpers/app-cluster.js';
import { waitFor } from '../helpers/wait.js';

const APP = fileURLToPath(new URL('../helpers/app-member.ts', import.meta.url));

/** Three hosts on a bridge, one member each; removed when the test ends. */
async function threeHosts(t: TestContext, mode: 'backup' | 'delta'): Promise<{ net: BridgeNetwork; members: AppMember[] }> {
  const net = BridgeNetwork.create(3);
  t.after(() => net.destroy());
  net.addHostAddress();
  const group = randomGroup();
  const mcastPort = await freeUdpPort();
  const members: AppMember[] = await Promise.all(
    net.hosts.map(async (host, i) => {
      const route = `node${i + 1}`;
      const proc = startProcess(
        t,
        route,
        APP,
        {
          ROUTE: route,
          MODE: mode,
          MCAST_ADDRESS: group,
          MCAST_PORT: String(mcastPort),
          MCAST_INTERFACE: host.address,
          RECEIVER_HOST: host.address,
          HTTP_HOST: host.address,
          PORT: '8080', // each host has its own network stack
        },
        { command: host.exec },
      );
      await proc.waitForLine(/"event":"listening"/, 30_000);
      return { route, port: 8080, url: `http://${host.address}:8080`, proc };
    }),
  );
  await waitForMembership(members, 3, 20_000);
  return { net, members };
}

test('three hosts, backup mode: a partition loses no acknowledged write, and the healed minority serves the newest version', async (t) => {
  if (!namespacesAvailable(t, 'the partition test')) return;
  const { net, members } = await threeHosts(t, 'backup');
  const [m1, m2, m3] = members as [AppMember, AppMember, AppMember];

  const onOne = Array.from({ length: 20 }, (_, n) => ({ jar: new CookieJar(), n }));
  const onTwo = Array.from({ length: 20 }, (_, n) => ({ jar: new CookieJar(), n: 100 + n }));
  for (const u of onOne) assert.equal((await request(u.jar, 'POST', `${m1.url}/set`, { n: u.n })).status, 200);
  for (const u of onTwo) assert.equal((await request(u.jar, 'POST', `${m2.url}/set`, { n: u.n })).status, 200);
  const oldCookies = onOne.map((u) => u.jar.copy());

  net.setLink(0, false); // node1 is cut off
  await waitForMembership([m2, m3], 2, 20_000);
  // The majority side serves node1's sessions (taking them over) and acknowledges new writes.
  for (const u of onOne) {
    const res = await request(u.jar, 'POST', `${m2.url}/set`, { after: u.n });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.session, { n: u.n, after: u.n });
  }

  net.setLink(0, true);
  await waitForMembership(members, 3, 20_000);
  // node1 comes back with its old copies; it must serve the newest version, never its own.
  for (const [i, u] of onOne.entries()) {
    const res = await request(oldCookies[i], 'GET', `${m1.url}/get`);
    assert.deepEqual(res.body.session, { n: u.n, after: u.n }, `session ${u.n} on node1 after the heal`);
  }
  for (const u of onTwo) {
    assert.deepEqual((await request(u.jar, 'GET', `${m3.url}/get`)).body.session, { n: u.n });
  }
  await waitFor('two copies of each of the 40 sessions', async () => {
    const all = await Promise.all(members.map(status));
    const primary = all.reduce((s, x) => s + x.sessions.primary, 0);
    const backup = all.reduce((s, x) => s + x.sessions.backup, 0);
    return primary === 40 && backup === 40;
  });
});

test('three hosts, delta mode: a member cut off while it held nothing gets, once healed, a session created meanwhile whose owner died', async (t) => {
  // Delta seed 8644: a member cut off with no session to check never reconciled (its resync was asked
  // for session by session), and a session the far side created, whose owner then died, reached it by
  // nothing: a live owner offers its own sessions to a member it admits again, a dead one's copies
  // nobody offers. One more loss would have lost a session of which a copy was left.
  if (!namespacesAvailable(t, 'the partition test')) return;
  const { net, members } = await threeHosts(t, 'delta');
  const [m1, m2, m3] = members as [AppMember, AppMember, AppMember];
  // Past the reconciling pass a member makes once it has met the others (one still pending would
  // run after the heal and hide the defect).
  await m3.proc.waitForLine(/reconciled with the cluster/, 20_000);
  net.setLink(2, false); // node3 is cut off, holding nothing
  await waitForMembership([m1, m2], 2, 20_000);
  const jar = new CookieJar();
  assert.equal((await request(jar, 'POST', `${m1.url}/set`, { v: 1 })).status, 200);
  assert.equal((await status(m2)).sessions.backup, 1, 'the copy is on node2');
  m1.proc.kill('SIGKILL');
  await waitForMembership([m2], 1, 20_000);
  net.setLink(2, true);
  await waitForMembership([m2, m3], 2, 20_000);
  await waitFor('node3 to hold the session created while it was cut off', async () => {
    const s = await status(m3);
    return s.sessions.primary + s.sessions.backup === 1;
  });
  assert.deepEqual((await request(jar, 'GET', `${m3.url}/get`)).body.session, { v: 1 });
});
