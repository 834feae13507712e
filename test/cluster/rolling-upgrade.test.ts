/**
 * A real rolling upgrade (issue 27): a cluster of the previous release (v0.1.0, protocol version 1,
 * built from git history) under load, every member replaced one by one with this release (versions
 * 1-3), in both modes. During the rollout new members speak version 1 with old ones and version 3
 * with each other; at the end every connection is version 3. Nothing may be lost: no session, no
 * acknowledged write, no request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterConfig, startAppMember, status, waitForMembership } from '../helpers/app-cluster.js';
import { prepareOldRelease } from '../helpers/old-release.js';
import { RollingLoad, waitForProtection } from '../helpers/rolling.js';

const USERS = 12;

interface ProtocolView {
  protocol?: { versions: { min: number; max: number }; peers: { route: string; version: number }[] };
}

for (const mode of ['backup', 'delta'] as const) {
  test(`rolling upgrade from v0.1.0 under load (${mode}): 0 sessions lost, 0 failed requests, no acknowledged write lost`, async (t) => {
    const old = prepareOldRelease(t);
    if (old === undefined) return;
    const config = await clusterConfig({ mode });
    const members = await Promise.all(['node1', 'node2', 'node3'].map((r) => startAppMember(t, r, config, old.appMember)));
    await waitForMembership(members, 3);
    // The old release has no protocol field on its status page: it is the old code that runs.
    assert.equal(((await status(members[0])) as unknown as ProtocolView).protocol, undefined);
    const load = new RollingLoad(members);
    await load.login(USERS);
    await waitForProtection(members, USERS, mode, 30_000, load.unansweredCreations);
    load.start();
    const mixed: string[] = [];
    try {
      for (const route of ['node1', 'node2', 'node3']) {
        const fresh = await load.replace(t, load.live.find((m) => m.route === route)!, config, mode);
        const p = ((await status(fresh)) as unknown as ProtocolView).protocol!;
        mixed.push(`${route}: ${p.peers.map((x) => `${x.route}=v${x.version}`).join(' ')}`);
      }
    } finally {
      await load.stop();
    }
    const c = await load.verify();
    process.stdout.write(
      `rolling upgrade from ${old.rev.slice(0, 7)} (${mode}): ${c.replaced} members replaced, ${c.requests} requests, ${c.failed} failed, ${c.sessions} sessions, ${c.sessionsLost} lost, ${c.writesLost} acknowledged writes lost; versions after each step: ${mixed.join('; ')}\n`,
    );
    t.diagnostic(`${mode}: requests=${c.requests} failed=${c.failed} sessions=${c.sessions} sessionsLost=${c.sessionsLost} writesLost=${c.writesLost} replaced=${c.replaced}`);
    assert.deepEqual({ failed: c.failed, sessionsLost: c.sessionsLost, writesLost: c.writesLost }, { failed: 0, sessionsLost: 0, writesLost: 0 }, c.samples.join('\n'));
    assert.equal(c.replaced, 3);
    assert.ok(c.requests > USERS * 10, `load ran: ${c.requests} requests`);
    // The first new member spoke version 1 with the old ones; at the end every connection is version 3.
    assert.match(mixed[0], /=v1/);
    for (const m of load.live) {
      const p = ((await status(m)) as unknown as ProtocolView).protocol!;
      assert.deepEqual(p.versions, { min: 1, max: 3 });
      assert.deepEqual(p.peers.map((x) => x.version), [3, 3], `${m.route}: ${JSON.stringify(p.peers)}`);
    }
  });
}
