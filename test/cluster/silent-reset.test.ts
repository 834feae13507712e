/**
 * A request held by a one-way cut must not arrive after its sender gave up on it. Two members on
 * network namespaces; host2's firewall drops TCP from host1 (multicast heartbeats still pass, so
 * nobody is removed): host1's request times out while its kernel keeps retransmitting it. The channel
 * then resets the silent connection (a TCP reset drops what the kernel still holds); without that,
 * the request reaches host2's handler seconds after the cut heals, long after host1 reported it
 * failed (the simulator's delta seed 26085: a destroyed session's copy read at the heal). Needs root,
 * iproute2 and nftables; with REQUIRE_SYSTEM_TESTS=1 (CI) their absence is a failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { MemberSet, randomMulticast, waitForFullMesh } from '../helpers/cluster-harness.js';
import type { MemberProcess } from '../helpers/cluster-harness.js';
import { BridgeNetwork, namespacesAvailable } from '../helpers/netns.js';
import type { NetnsHost } from '../helpers/netns.js';
import { nftUnavailable } from '../chaos/partition.js';

const TABLE = 'kscsilent';

function nft(host: NetnsHost, args: string[], input?: string): void {
  execFileSync(host.exec[0], [...host.exec.slice(1), 'nft', ...args], { input, stdio: ['pipe', 'ignore', 'pipe'] });
}

/** `to` drops the TCP segments that come from `from` (its multicast still passes). */
function cutTcp(to: NetnsHost, from: NetnsHost): void {
  nft(to, ['-f', '-'], `table inet ${TABLE} {\n  chain in { type filter hook input priority 0; policy accept; ip saddr ${from.address} meta l4proto tcp drop; }\n}\n`);
}

function heal(host: NetnsHost): void {
  try {
    nft(host, ['delete', 'table', 'inet', TABLE]);
  } catch {
    // no cut there
  }
}

test('a request held by a one-way cut never reaches the peer after its timeout: the silent connection is reset', async (t) => {
  if (!namespacesAvailable(t, 'the silent-connection test')) return;
  const noNft = nftUnavailable();
  if (noNft !== undefined) {
    if (process.env.REQUIRE_SYSTEM_TESTS === '1') throw new Error(`REQUIRE_SYSTEM_TESTS=1 but ${noNft}`);
    t.skip(noNft);
    return;
  }
  const net = BridgeNetwork.create(2, { prefix: '10.203', tag: 's' });
  const set = new MemberSet();
  t.after(async () => {
    await set.cleanup();
    net.destroy();
  });
  const group = randomMulticast();
  const [h1, h2] = net.hosts as [NetnsHost, NetnsHost];
  const [m1, m2] = (await Promise.all(
    net.hosts.map((h, i) => set.start({ route: `host${i + 1}`, multicast: { ...group, interface: h.address }, receiver: { host: h.address, port: 4000 } }, h.exec)),
  )) as [MemberProcess, MemberProcess];
  await waitForFullMesh([m1, m2], 5000);
  const first = await m1.command({ cmd: 'request', route: 'host2', type: 'note', body: 'before the cut' });
  assert.equal(first.ok, true, JSON.stringify(first));

  cutTcp(h2, h1);
  let healed = false;
  try {
    const held = await m1.command({ cmd: 'request', route: 'host2', type: 'note', body: 'held by the cut', timeoutMs: 800 });
    assert.equal(held.code, 'ERR_REQUEST_TIMEOUT', JSON.stringify(held));
    // The reset runs just after the timeout; give it a moment, then let the network carry again.
    await new Promise((r) => setTimeout(r, 300));
    const metrics = (await m1.command({ cmd: 'metrics' })).metrics as { connectionsResetSilent: number };
    assert.equal(metrics.connectionsResetSilent, 1, 'host1 reset its silent connection to host2');
    heal(h2);
    healed = true;
    // TCP's retransmission backoff after ~1 s of loss sends again within a few seconds: wait past it.
    await new Promise((r) => setTimeout(r, 6000));
  } finally {
    if (!healed) heal(h2);
  }
  const noted = m2.messages.filter((m) => m.type === 'noted').map((m) => m.body);
  assert.deepEqual(noted, ['before the cut'], 'host2 never read the request host1 gave up on');
  // The connection comes back for what is sent next.
  const after = await m1.command({ cmd: 'request', route: 'host2', type: 'note', body: 'after the heal' });
  assert.equal(after.ok, true, JSON.stringify(after));
  assert.equal(m2.messages.filter((m) => m.type === 'noted').at(-1)?.body, 'after the heal');
  for (const m of [m1, m2]) assert.deepEqual(m.messages.filter((x) => x.event === 'member-removed'), [], `${m.route} removed nobody`);
});
