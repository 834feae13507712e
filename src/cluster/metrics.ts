/**
 * The cluster layer's counters. One mutable object per channel; `snapshotMetrics` copies it so
 * readers never see (or change) it mid-update.
 */
import type { ClusterMetrics } from './types.js';

/** Upper bounds (ms) of the request latency histogram buckets; `+Inf` is added after them. */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000] as const;

/**
 * Every reason a frame or connection is rejected for (`framesRejected`), started at zero:
 * auth (MAC or decryption failed), too_large (over maxFrameBytes), malformed, foreign (another
 * cluster name), version (a member that speaks no protocol version we speak); and before authentication: preauth_too_large (a first frame
 * over receiver.preauth.maxFrameBytes), preauth_timeout (no valid hello in time), per_source_limit
 * and unauth_limit (refused at accept: too many unauthenticated connections).
 */
export const FRAME_REJECT_REASONS = [
  'auth',
  'too_large',
  'malformed',
  'foreign',
  'version',
  'preauth_too_large',
  'preauth_timeout',
  'per_source_limit',
  'unauth_limit',
] as const;

/** Fresh counters, every known reason present at zero so dashboards see the series from the start. */
export function createMetrics(): ClusterMetrics {
  const buckets: Record<string, number> = {};
  for (const b of LATENCY_BUCKETS_MS) buckets[String(b)] = 0;
  buckets['+Inf'] = 0;
  return {
    messagesSent: 0,
    messagesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    heartbeatsSent: 0,
    heartbeatsReceived: 0,
    heartbeatsDropped: { stale: 0, foreign: 0, version: 0, malformed: 0, auth: 0 },
    framesRejected: Object.fromEntries(FRAME_REJECT_REASONS.map((r) => [r, 0])),
    requestsTimedOut: 0,
    requestsRefusedLate: 0,
    requestsRejectedBackpressure: 0,
    requestLatencyMs: { sum: 0, count: 0, buckets },
    membersAdded: 0,
    membersSuspected: 0,
    membersRemoved: 0,
  };
}

/** Records one request's round trip; buckets are cumulative, as Prometheus histograms are. */
export function recordLatency(m: ClusterMetrics, ms: number): void {
  const h = m.requestLatencyMs;
  h.sum += ms;
  h.count += 1;
  for (const b of LATENCY_BUCKETS_MS) if (ms <= b) h.buckets[String(b)] += 1;
  h.buckets['+Inf'] += 1;
}

/** Adds one to a counter of a by-reason record. */
export function countReason(record: Record<string, number>, reason: string): void {
  record[reason] = (record[reason] ?? 0) + 1;
}

/** A deep copy of the counters. */
export function snapshotMetrics(m: ClusterMetrics): ClusterMetrics {
  return {
    ...m,
    heartbeatsDropped: { ...m.heartbeatsDropped },
    framesRejected: { ...m.framesRejected },
    requestLatencyMs: { ...m.requestLatencyMs, buckets: { ...m.requestLatencyMs.buckets } },
  };
}
