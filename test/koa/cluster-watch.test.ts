/**
 * The status page's watch (issue 16): membership events as they come, and what the layers only count
 * (takeovers, refused frames, re-protection) found by comparing counters; member states including
 * removed members; the 5 s history. A stand-in channel on a hand-driven clock, no sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { ClusterChannel, ClusterEvents, MemberInfo } from '../../src/cluster/types.js';
import { createMetrics } from '../../src/cluster/metrics.js';
import type { ReplicationMetrics } from '../../src/replication/replicator.js';
import { ClusterWatch } from '../../src/koa/cluster-watch.js';

const member = (route: string, port: number): MemberInfo => ({ id: `id-${route}`, route, host: '127.0.0.1', port, startTime: 1 });

function setup() {
  let now = 1_000_000;
  const cluster = createMetrics();
  const replication: ReplicationMetrics = {
    writes: 0, writesRefused: 0, replicationFailures: 0, takeovers: 0, takeoverMisses: 0, reprotected: 0,
    staleWritesRefused: 0, ackLatencyMs: { sum: 0, count: 0 }, expired: 0, unavailable: 0,
  };
  const live = new Map<string, MemberInfo>();
  const states = new Map<string, 'alive' | 'suspect'>();
  let unprotected = 0;
  const channel = Object.assign(new EventEmitter<ClusterEvents>(), {
    self: member('a', 1),
    members: () => [...live.values()],
    stateOf: (id: string) => states.get(id),
    metrics: () => structuredClone(cluster),
  }) as unknown as ClusterChannel;
  const watch = new ClusterWatch({
    channel,
    replicationMetrics: () => structuredClone(replication),
    unprotected: () => unprotected,
    now: () => now,
  });
  const join = (m: MemberInfo) => {
    live.set(m.id, m);
    states.set(m.id, 'alive');
    channel.emit('member-added', m);
  };
  return {
    watch, channel, cluster, replication, live, states, join,
    tick: (ms = 1000) => { now += ms; watch.sample(); },
    setUnprotected: (n: number) => (unprotected = n),
    types: () => watch.events.list().map((e) => `${e.type}${e.member === undefined ? '' : `:${e.member}`} ${e.detail}`),
  };
}

test('a failover reads as joined, suspected, removed (failed), unprotected, takeover, re-protected, and the member stays listed as failed', () => {
  const w = setup();
  const b = member('b', 2);
  w.join(b);
  w.watch.sample();
  assert.equal(w.watch.stateOf(b.id), 'alive');

  w.states.set(b.id, 'suspect');
  w.channel.emit('member-suspected', b);
  assert.equal(w.watch.stateOf(b.id), 'suspected');
  w.live.delete(b.id);
  w.states.delete(b.id);
  w.channel.emit('member-removed', b, 'failed', { refused: true });
  w.setUnprotected(7);
  w.replication.takeovers += 3;
  w.cluster.framesRejected.auth += 2;
  w.tick();
  w.replication.reprotected += 7;
  w.setUnprotected(0);
  w.tick(2500);

  assert.deepEqual(w.types(), [
    'joined:b joined from 127.0.0.1:2',
    'suspected:b silent or connection lost; checking it directly',
    'removed:b failed: connection refused',
    'takeover:a took over 3 sessions',
    'frames-refused auth ×2',
    'unprotected:a 7 sessions have one copy',
    'reprotected:a every session has two copies again (7 copied, 2.5 s)',
  ]);
  assert.deepEqual(w.watch.departed().map((d) => [d.route, d.state]), [['b', 'failed']]);
  w.join({ ...b, id: 'id-b-again' });
  assert.deepEqual(w.watch.departed(), [], 'a route that joined again is no longer listed as departed');
});

test('a suspicion the direct check cleared shows as cleared; a graceful leave as left', () => {
  const w = setup();
  const b = member('b', 2);
  w.join(b);
  w.states.set(b.id, 'suspect');
  w.channel.emit('member-suspected', b);
  w.tick();
  w.states.set(b.id, 'alive');
  w.tick();
  w.tick();
  w.live.delete(b.id);
  w.channel.emit('member-removed', b, 'left');
  assert.deepEqual(w.types().slice(1), [
    'suspected:b silent or connection lost; checking it directly',
    'cleared:b answered the direct check',
    'removed:b left gracefully',
  ]);
  assert.equal(w.watch.departed()[0]?.state, 'left');
});

test('history: counter changes summed per 5 s interval, only finished intervals', () => {
  const w = setup();
  w.watch.sample();
  for (let i = 0; i < 10; i++) {
    w.replication.writes += 2;
    w.replication.ackLatencyMs.sum += 6;
    w.replication.ackLatencyMs.count += 2;
    w.tick();
  }
  const h = w.watch.history();
  assert.ok(h.length >= 1, 'at least one finished interval after 10 s');
  for (const b of h) assert.equal(b.at % 5000, 0, 'intervals line up across members');
  const all = h.reduce((s, b) => s + b.writes, 0);
  assert.ok(all > 0 && all <= 20);
  assert.ok(h.every((b) => b.ackMs === 3 * b.acks), 'acknowledgement time follows its count');
});
