/**
 * The status router's dashboard (issue 16): off unless `dashboard: true`, refused with 403 and no data
 * when `authorize` says no, served with a Content-Security-Policy that admits exactly its inline
 * script; `/cluster/status` carries member states, departed members, events, the unprotected count
 * and (with `?peers=1`) every member's counts. Two real members in this process (multicast on
 * 127.0.0.1) behind real Koa apps on port 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { ClusterOptionsError, type SessionCluster } from '../../src/index.js';
import { twoMembers } from '../helpers/in-process-members.js';
import { waitFor } from '../helpers/wait.js';

type After = { after(fn: () => Promise<void> | void): void };

/** A Koa app on port 0 with only the status router of `cluster`. */
async function serve(t: After, cluster: SessionCluster, options?: Parameters<SessionCluster['statusRouter']>[0]): Promise<string> {
  const app = new Koa();
  app.use(cluster.statusRouter(options).routes());
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const get = (url: string) => fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(5000) });

test('the dashboard is off by default, on with dashboard: true, and refused with 403 and no data when authorize says no', async (t) => {
  const [a] = await twoMembers(t);
  const plain = await serve(t, a);
  assert.equal((await get(`${plain}/cluster/dashboard`)).status, 404, 'no page unless dashboard: true');
  assert.equal((await get(`${plain}/cluster/`)).status, 404);
  assert.equal((await get(`${plain}/cluster/status`)).status, 200, 'status stays open without authorize, as before');

  let allow = false;
  const guarded = await serve(t, a, { dashboard: true, authorize: (ctx) => Promise.resolve(allow && ctx.get('x-operator') === 'yes') });
  for (const path of ['/cluster/dashboard', '/cluster/', '/cluster/status', '/cluster/status?peers=1', '/cluster/metrics']) {
    const res = await get(`${guarded}${path}`);
    assert.equal(res.status, 403, `${path} refused`);
    const body = await res.text();
    assert.doesNotMatch(body, /\ba\b|127\.0\.0\.1|session/i, `${path}: a refusal tells nothing of the cluster`);
  }
  assert.equal((await get(`${guarded}/cluster/elsewhere`)).status, 404, 'authorize guards the router\'s routes only, not the rest of the app');
  allow = true;
  assert.equal((await get(`${guarded}/cluster/dashboard`)).status, 403, 'authorize sees the request: no header, no page');
  const res = await fetch(`${guarded}/cluster/dashboard`, { headers: { 'x-operator': 'yes' } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  const html = await res.text();
  assert.match(html, /page from a</);

  // The policy admits the page's own inline script and style by hash, and nothing from elsewhere.
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /connect-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  const script = /<script>([\s\S]*?)<\/script>/.exec(html)?.[1] ?? '';
  const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1] ?? '';
  const sha = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;
  assert.ok(csp.includes(`script-src ${sha(script)}`), 'the inline script is the one the policy allows');
  assert.ok(csp.includes(`style-src ${sha(style)}`), 'the inline style is the one the policy allows');
  assert.doesNotMatch(script, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/, 'renders with textContent only');
  assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/i, 'nothing is loaded from elsewhere');

  const bare = await fetch(`${guarded}/cluster`, { headers: { 'x-operator': 'yes' }, redirect: 'manual' });
  assert.equal(bare.status, 302, '/cluster redirects to the page, whose relative polls then reach /cluster/status');
  assert.equal(bare.headers.get('location'), '/cluster/dashboard');
});

test('status: member states, peers\' counts, the unprotected count, and a departed member with its events', async (t) => {
  const [a, b] = await twoMembers(t);
  const url = await serve(t, a, { prefix: '/ops', dashboard: true });
  const status = (await (await get(`${url}/ops/status?peers=1`)).json()) as {
    members: { route: string; id: string; self: boolean; state: string }[];
    sessions: { primary: number; backup: number; unprotected: number };
    peers: { route: string; id: string; sessions?: { unprotected: number }; writes?: number; error?: string; capacity?: { fill: number; held: number; maxSessions: number; plannedLevel: number; refused: number; evicted: number } }[];
    capacity: { maxSessions: number; source: string; plannedLevel: number; held: number; fill: number; refusedFull: number; evicted: number; heapLimitBytes: number };
    events: { seq: number; type: string; member?: string; at: number; detail: string }[];
    departed: unknown[];
  };
  assert.deepEqual(status.members.map((m) => [m.route, m.state]).sort(), [['a', 'alive'], ['b', 'alive']]);
  assert.deepEqual(status.sessions, { primary: 0, backup: 0, unprotected: 0, underReplicated: 0 });
  assert.deepEqual(status.peers.map((p) => p.route), ['a', 'b'], 'this member first, then every live member');
  for (const p of status.peers) {
    assert.equal(p.error, undefined, `${p.route} answered`);
    assert.equal(p.sessions?.unprotected, 0);
    assert.equal(typeof p.writes, 'number');
    // Each member's fill level, refusals and evictions (issue 26), for the page's columns.
    assert.deepEqual(p.capacity && [p.capacity.held, p.capacity.refused, p.capacity.evicted, p.capacity.fill], [0, 0, 0, 0], `${p.route} reports its capacity`);
    assert.ok(p.capacity!.plannedLevel > 0 && p.capacity!.plannedLevel < p.capacity!.maxSessions, 'two members in backup mode keep room for the other\'s share');
  }
  // No maxSessions given: derived from the heap limit.
  assert.equal(status.capacity.source, 'heap');
  assert.ok(status.capacity.heapLimitBytes > 0 && status.capacity.maxSessions >= 100);
  assert.equal(status.capacity.plannedLevel, Math.floor(status.capacity.maxSessions / 2), 'plannedLevel = floor(maxSessions · (N - 1) / N) with N = 2');
  assert.equal(status.peers[1].id, status.members.find((m) => m.route === 'b')!.id);
  assert.ok(status.events.some((e) => e.type === 'joined' && e.member === 'b'), 'b joining is an event');
  assert.deepEqual(status.departed, []);
  const withHistory = (await (await get(`${url}/ops/status?peers=1&history=1`)).json()) as { peers: { route: string; history?: unknown }[] };
  assert.deepEqual(withHistory.peers.map((p) => [p.route, Array.isArray(p.history)]), [['a', true], ['b', true]], 'history only when asked for, from every member');
  assert.equal(status.peers.every((p) => !('history' in p)), true);
  const plain = (await (await get(`${url}/ops/status`)).json()) as Record<string, unknown>;
  assert.equal(plain.peers, undefined, 'peers only when asked for: it costs a request to every member');
  const metrics = await (await get(`${url}/ops/metrics`)).text();
  assert.match(metrics, /^koa_session_cluster_sessions_unprotected 0$/m);
  assert.match(metrics, /^koa_session_cluster_capacity_fill_ratio 0$/m);
  assert.match(metrics, /^koa_session_cluster_sessions_refused_total\{reason="full"\} 0$/m);
  assert.match(metrics, /^koa_session_cluster_sessions_evicted_total 0$/m);
  assert.match(metrics, /^koa_session_cluster_capacity_sessions_max \d+$/m);

  await b.stop();
  await waitFor(
    'a to list b as left',
    async () => {
      const s = (await (await get(`${url}/ops/status`)).json()) as { departed: { route: string; state: string }[]; events: { type: string; member?: string; detail: string }[] };
      return s.departed.some((d) => d.route === 'b' && d.state === 'left') && s.events.some((e) => e.type === 'removed' && e.member === 'b' && /left/.test(e.detail));
    },
    10_000,
  );
});

test('statusRouter options are validated: a clear ClusterOptionsError naming the option', async (t) => {
  const [a] = await twoMembers(t);
  const bad: [unknown, string][] = [
    [{ dashboard: 'yes' }, 'statusRouter.dashboard'],
    [{ authorize: true }, 'statusRouter.authorize'],
    [{ prefix: 'cluster' }, 'statusRouter.prefix'],
    [{ dashbaord: true }, 'statusRouter.dashbaord'],
  ];
  for (const [options, option] of bad) {
    assert.throws(
      () => a.statusRouter(options as Parameters<SessionCluster['statusRouter']>[0]),
      (err: unknown) => err instanceof ClusterOptionsError && err.code === 'ERR_CLUSTER_OPTIONS' && err.option === option,
      `${JSON.stringify(options)} names ${option}`,
    );
  }
  assert.doesNotThrow(() => a.statusRouter('/elsewhere'), 'the earlier prefix-string form still works');
});
