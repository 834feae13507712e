/**
 * Three members on three network namespaces (separate network stacks, like hosts) joined by a
 * bridge: discovery by multicast across the bridge; multicast lost while TCP works (nobody is
 * evicted); a partition (the bridge port of one host set down) that splits membership, and its
 * healing. Needs root and iproute2; with
 * REQUIRE_SYSTEM_TESTS=1 (CI) their absence is a failure, otherwise the test is skipped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemberSet, randomMulticast, until, waitForFullMesh } from '../helpers/cluster-harness.js';
import type { MemberProcess } from '../helpers/cluster-harness.js';
import { BridgeNetwork, namespacesAvailable } from '../helpers/netns.js';

const DROP_TIME = 3000;

test('members on three namespaces find each other across a bridge, split on a partition and heal', async (t) => {
  if (!namespacesAvailable(t, 'the namespace test')) return;
  const net = BridgeNetwork.create(3);
  const set = new MemberSet();
  t.after(async () => {
    await set.cleanup();
    net.destroy();
  });
  const group = randomMulticast();
  const members: MemberProcess[] = await Promise.all(
    net.hosts.map((h, i) =>
      set.start(
        {
          route: `host${i + 1}`,
          multicast: { ...group, interface: h.address },
          receiver: { host: h.address, port: 4000 },
        },
        h.exec,
      ),
    ),
  );
  const [m1, m2, m3] = members as [MemberProcess, MemberProcess, MemberProcess];
  const routes = async (m: MemberProcess) => (await m.memberRoutes()).join();

  await t.test('ip netns exec execs: the pid we hold is the member\'s own', () => {
    for (const m of members) assert.equal(m.messages.find((x) => x.type === 'started')!.pid, m.pid);
  });

  await t.test('three hosts discover each other by multicast across the bridge', async () => {
    await waitForFullMesh(members, 5000);
    for (const [i, m] of members.entries()) {
      assert.equal(m.self!.host, net.hosts[i].address);
      assert.deepEqual((await m.memberRoutes()).length, 2);
    }
    const r = await m1.command({ cmd: 'request', route: 'host3', type: 'echo', body: 'across the bridge' });
    assert.equal(r.body, 'across the bridge');
  });

  await t.test('heartbeats lost on every link but TCP intact: members are suspected, checked directly and kept', async () => {
    const since = members.map((m) => m.messages.length);
    net.setMulticast(false);
    try {
      // A second suspicion of the same member proves the first direct check passed and kept it.
      const twice = (m: MemberProcess, i: number, route: string) =>
        m.waitUntil(
          () => m.messages.slice(since[i]).filter((y) => y.event === 'member-suspected' && y.member?.route === route).length >= 2,
          2 * DROP_TIME + 4000,
          `a second suspicion of ${route}`,
        );
      await Promise.all(members.flatMap((m, i) => members.filter((o) => o !== m).map((o) => twice(m, i, o.route))));
    } finally {
      net.setMulticast(true);
    }
    for (const [i, m] of members.entries()) {
      assert.equal(m.messages.slice(since[i]).some((x) => x.event === 'member-removed'), false, `${m.route} removed nobody`);
      assert.equal((await m.memberRoutes()).length, 2);
    }
  });

  await t.test('a partition removes the cut-off host on both sides', async () => {
    const since = members.map((m) => m.messages.length);
    net.setLink(2, false);
    const timeout = DROP_TIME + 4000;
    await Promise.all([
      m1.waitEvent('member-removed', 'host3', timeout, since[0]),
      m2.waitEvent('member-removed', 'host3', timeout, since[1]),
      m3.waitEvent('member-removed', 'host1', timeout, since[2]),
      m3.waitEvent('member-removed', 'host2', timeout, since[2]),
    ]);
    assert.equal(await routes(m1), 'host2');
    assert.equal(await routes(m2), 'host1');
    assert.equal(await routes(m3), '');
  });

  await t.test('healing the link brings all three together again', async () => {
    net.setLink(2, true);
    await until(async () => (await routes(m1)) === 'host2,host3', 10_000, 'host1 to see host2 and host3');
    await until(async () => (await routes(m2)) === 'host1,host3', 10_000, 'host2 to see host1 and host3');
    await until(async () => (await routes(m3)) === 'host1,host2', 10_000, 'host3 to see host1 and host2');
    const r = await m3.command({ cmd: 'request', route: 'host1', type: 'echo', body: 'healed' });
    assert.equal(r.body, 'healed');
  });
});
