/**
 * Secret rotation in three rolling restarts (README "Operations"), under load, with real member
 * processes: every member restarted with [old, new], then [new, old], then [new]. Nothing may be
 * lost: no session, no acknowledged write, no request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startAppCluster, startAppMember, status } from '../helpers/app-cluster.js';
import { RollingLoad } from '../helpers/rolling.js';

const OLD = 'the-old-cluster-secret-0123456789';
const NEW = 'the-new-cluster-secret-9876543210';
const USERS = 12;

for (const mode of ['backup', 'delta'] as const) {
  test(`secret rotation in three rolling restarts under load (${mode}): 0 sessions lost, 0 failed requests, no acknowledged write lost`, async (t) => {
    const { members, config } = await startAppCluster(t, 3, { mode, env: { CLUSTER_SECRETS: OLD } });
    const load = new RollingLoad(members);
    await load.login(USERS);
    load.start();
    try {
      for (const secrets of [[OLD, NEW], [NEW, OLD], [NEW]]) {
        const next = { ...config, env: { ...config.env, CLUSTER_SECRETS: secrets.join(',') } };
        for (const route of ['node1', 'node2', 'node3']) await load.replace(t, load.live.find((m) => m.route === route)!, next, mode);
      }
    } finally {
      await load.stop();
    }
    const c = await load.verify();
    process.stdout.write(
      `secret rotation (${mode}): ${c.replaced} restarts, ${c.requests} requests, ${c.failed} failed, ${c.sessions} sessions, ${c.sessionsLost} lost, ${c.writesLost} acknowledged writes lost\n`,
    );
    t.diagnostic(`${mode}: requests=${c.requests} failed=${c.failed} sessions=${c.sessions} sessionsLost=${c.sessionsLost} writesLost=${c.writesLost} restarts=${c.replaced}`);
    assert.equal(c.replaced, 9);
    assert.deepEqual({ failed: c.failed, sessionsLost: c.sessionsLost, writesLost: c.writesLost }, { failed: 0, sessionsLost: 0, writesLost: 0 }, c.samples.join('\n'));
    assert.ok(c.requests > USERS * 10, `load ran: ${c.requests} requests`);
    // The old secret is gone: a member that knows only it is admitted by nobody, and admits nobody.
    const stale = await startAppMember(t, 'node9', { ...config, env: { ...config.env, CLUSTER_SECRETS: OLD } });
    await new Promise((r) => setTimeout(r, 2500)); // past dropTime (1500 ms)
    assert.equal((await status(stale)).members.length, 1);
    for (const m of load.live) assert.equal((await status(m)).members.length, 3, `${m.route} admitted a member with the old secret`);
  });
}
