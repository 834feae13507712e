/**
 * `GET /cluster/status` (JSON) and `GET /cluster/metrics` (Prometheus text exposition format).
 */
import Router from '@koa/router';
import type { ClusterMetrics, MemberInfo } from '../cluster/types.js';
import type { ReplicationMetrics } from '../replication/replicator.js';

/** What the status router reads from the cluster. */
export interface StatusSource {
  route: string;
  mode: 'backup' | 'delta';
  ack: 'sync' | 'async';
  members(): (MemberInfo & { self: boolean })[];
  sessions(): { primary: number; backup: number };
  clusterMetrics(): ClusterMetrics;
  replicationMetrics(): ReplicationMetrics;
}

type Sample = [labels: Record<string, string>, value: number];

/** Formats one metric family. */
function family(name: string, type: 'counter' | 'gauge', help: string, samples: Sample[]): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
  for (const [labels, value] of samples) {
    const l = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
      .join(',');
    lines.push(`${name}${l.length > 0 ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
  }
  return lines.join('\n');
}

const byReason = (counts: Record<string, number>): Sample[] => Object.entries(counts).map(([reason, n]) => [{ reason }, n]);

/** Renders every metric. */
export function renderMetrics(s: StatusSource): string {
  const c = s.clusterMetrics();
  const r = s.replicationMetrics();
  const sessions = s.sessions();
  const p = 'koa_session_cluster_';
  return (
    [
      family(`${p}members`, 'gauge', 'Live members, self included.', [[{}, s.members().length]]),
      family(`${p}sessions`, 'gauge', 'Sessions held by this member, by role.', [
        [{ role: 'primary' }, sessions.primary],
        [{ role: 'backup' }, sessions.backup],
      ]),
      family(`${p}messages_sent_total`, 'counter', 'Cluster messages sent.', [[{}, c.messagesSent]]),
      family(`${p}messages_received_total`, 'counter', 'Cluster messages received.', [[{}, c.messagesReceived]]),
      family(`${p}bytes_sent_total`, 'counter', 'Bytes sent to other members.', [[{}, c.bytesSent]]),
      family(`${p}bytes_received_total`, 'counter', 'Bytes received from other members.', [[{}, c.bytesReceived]]),
      family(`${p}heartbeats_dropped_total`, 'counter', 'Heartbeats dropped, by reason.', byReason(c.heartbeatsDropped)),
      family(`${p}frames_rejected_total`, 'counter', 'TCP frames rejected, by reason.', byReason(c.framesRejected)),
      family(`${p}requests_timed_out_total`, 'counter', 'Requests to members that timed out.', [[{}, c.requestsTimedOut]]),
      family(`${p}writes_total`, 'counter', 'Session writes replicated.', [[{}, r.writes]]),
      family(`${p}writes_refused_total`, 'counter', 'Session writes refused (unserializable or too large).', [[{}, r.writesRefused]]),
      family(`${p}replication_failures_total`, 'counter', 'Writes no copy holder acknowledged.', [[{}, r.replicationFailures]]),
      family(`${p}stale_writes_refused_total`, 'counter', 'Writes refused because another member owns the session.', [
        [{}, r.staleWritesRefused],
      ]),
      family(`${p}takeovers_total`, 'counter', 'Sessions taken over from another member.', [[{}, r.takeovers]]),
      family(`${p}reprotected_total`, 'counter', 'Sessions copied to a new backup after a membership change.', [[{}, r.reprotected]]),
      family(`${p}ack_latency_seconds_sum`, 'counter', 'Total time spent waiting for write acknowledgements.', [
        [{}, r.ackLatencyMs.sum / 1000],
      ]),
      family(`${p}ack_latency_seconds_count`, 'counter', 'Acknowledged writes measured.', [[{}, r.ackLatencyMs.count]]),
      family(`${p}sessions_expired_total`, 'counter', 'Session copies dropped at expiry.', [[{}, r.expired]]),
    ].join('\n') + '\n'
  );
}

/** The status JSON. */
export function statusOf(s: StatusSource): Record<string, unknown> {
  const members = s.members();
  return {
    route: s.route,
    mode: s.mode,
    ack: s.ack,
    members: members.map((m) => ({ route: m.route, host: m.host, port: m.port, id: m.id, self: m.self, startTime: m.startTime })),
    ring: members.map((m) => m.route).sort(),
    sessions: s.sessions(),
    replication: s.replicationMetrics(),
  };
}

/** An @koa/router serving the two endpoints. */
export function createStatusRouter(source: StatusSource, prefix = '/cluster'): Router {
  const router = new Router({ prefix });
  router.get('/status', (ctx) => {
    ctx.body = statusOf(source);
  });
  router.get('/metrics', (ctx) => {
    ctx.type = 'text/plain; version=0.0.4';
    ctx.body = renderMetrics(source);
  });
  return router;
}
