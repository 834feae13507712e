/**
 * Peers' counts for the status page (issue 16): asked at most once a second however many pages poll,
 * and a member that does not answer, or answers nonsense, is shown without counts, never trusted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterChannel, MemberInfo } from '../../src/cluster/types.js';
import { ClusterRequestError } from '../../src/errors.js';
import { CountsGatherer, STATUS_COUNTS, type MemberCounts } from '../../src/koa/peer-status.js';

const member = (route: string): MemberInfo => ({ id: `id-${route}`, route, host: '127.0.0.1', port: 1, startTime: 1 });
const counts = (route: string, history?: boolean): MemberCounts => ({
  id: `id-${route}`,
  route,
  sessions: { primary: 1, backup: 2, unprotected: 0, underReplicated: 0 },
  writes: 3,
  takeovers: 0,
  reprotected: 0,
  ackLatencyMs: { sum: 1, count: 1 },
  ...(history === true ? { history: [] } : {}),
});

test('peers are asked at most once per interval, per kind; silent or garbled members are shown with an error', async () => {
  let now = 0;
  const asked: string[] = [];
  const channel = {
    members: () => [member('b'), member('c'), member('d')],
    request: (id: string, type: string, body: Buffer) => {
      asked.push(`${id} ${type} ${body.toString()}`);
      if (id === 'id-c') return Promise.reject(new ClusterRequestError('ERR_REQUEST_TIMEOUT', 'no answer'));
      if (id === 'id-d') return Promise.resolve(Buffer.from(JSON.stringify({ ...counts('evil'), writes: -5 })));
      // A member cannot rename itself: the route and id shown are the channel's.
      return Promise.resolve(Buffer.from(JSON.stringify(counts('someone-else'))));
    },
  } as unknown as ClusterChannel;
  const g = new CountsGatherer(channel, (h) => counts('a', h), 1000, () => now);

  const first = await Promise.all(Array.from({ length: 20 }, () => g.gather(false)));
  assert.equal(asked.length, 3, '20 polls at once: one request per member');
  assert.ok(asked.every((a) => a.includes(STATUS_COUNTS) && a.endsWith('{"history":false}')));
  assert.deepEqual(
    first[0].map((p) => ('error' in p ? [p.route, p.error] : [p.route, p.id, p.writes])),
    [['a', 'id-a', 3], ['b', 'id-b', 3], ['c', 'ERR_REQUEST_TIMEOUT'], ['d', 'malformed reply']],
  );
  await g.gather(true);
  assert.equal(asked.length, 6, 'with history is its own kind');
  now = 999;
  await g.gather(false);
  assert.equal(asked.length, 6);
  now = 1001;
  await g.gather(false);
  assert.equal(asked.length, 9, 'asked again once the interval is over');
});
