/**
 * Watches the cluster for the status page: member states (including members removed a moment ago,
 * which `members()` no longer lists) and an event ring. Membership events come from the channel as
 * they happen; what the layers only count (takeovers, refused frames, re-protection) is found by
 * comparing counters once a second, so nothing below this module changes for it.
 */
import type { ClusterChannel, ClusterMetrics, MemberInfo } from '../cluster/types.js';
import type { ReplicationMetrics } from '../replication/replicator.js';
import { EventRing, type ClusterEvent, type ClusterEventType } from './event-ring.js';

/** A member's state as the status page shows it. */
export type MemberStatus = 'alive' | 'suspected' | 'left' | 'failed';

/** A member that was removed, kept for a while so the page can show it as left or failed. */
export interface DepartedMember {
  id: string;
  route: string;
  host: string;
  port: number;
  state: 'left' | 'failed';
  /** Epoch ms of the removal. */
  since: number;
}

/** What the watch reads. */
export interface WatchSource {
  channel: ClusterChannel;
  replicationMetrics(): ReplicationMetrics;
  /** Sessions held here with one live copy (see `census` in replication/protection.ts). */
  unprotected(): number;
  /** Epoch ms; `Date.now` unless a test gives its own. */
  now?: () => number;
}

/** Counter changes of this member in one interval of `HISTORY_BUCKET_MS`, for the page's charts. */
export interface HistoryBucket {
  /** Epoch ms the interval starts at (a multiple of the interval, so members' buckets line up). */
  at: number;
  writes: number;
  takeovers: number;
  /** Acknowledgement waits in the interval: total ms and how many. */
  ackMs: number;
  acks: number;
}

const SAMPLE_MS = 1000;
export const HISTORY_BUCKET_MS = 5000;
/** Ten minutes of buckets. */
const HISTORY_BUCKETS = 120;
/** Removed members stay on the page this long (or until their route joins again). */
const DEPARTED_MS = 10 * 60 * 1000;
const MAX_DEPARTED = 64;

/** Differences of a by-reason counter record, as `reason ×n` parts. */
function reasonDeltas(now: Record<string, number>, before: Record<string, number>): string[] {
  const parts: string[] = [];
  for (const [reason, n] of Object.entries(now)) {
    const d = n - (before[reason] ?? 0);
    if (d > 0) parts.push(`${reason} ×${d}`);
  }
  return parts;
}

export class ClusterWatch {
  readonly events = new EventRing(50);
  readonly #s: WatchSource;
  readonly #now: () => number;
  readonly #departed = new Map<string, DepartedMember>();
  readonly #suspected = new Map<string, MemberInfo>();
  #timer: NodeJS.Timeout | undefined;
  #cluster: ClusterMetrics | undefined;
  #replication: ReplicationMetrics | undefined;
  #unprotected = 0;
  readonly #history: HistoryBucket[] = [];
  /** When the unprotected count last rose from zero, and the re-protection counter then. */
  #exposedAt = 0;
  #reprotectedAtExposure = 0;

  constructor(source: WatchSource) {
    this.#s = source;
    this.#now = source.now ?? Date.now;
    const c = source.channel;
    c.on('member-added', (m) => {
      this.#departed.delete(m.route);
      this.#record('joined', m.route, `joined from ${m.host}:${m.port}`);
    });
    c.on('member-suspected', (m) => {
      this.#suspected.set(m.id, m);
      this.#record('suspected', m.route, 'silent or connection lost; checking it directly');
    });
    c.on('member-removed', (m, reason, detail) => {
      this.#suspected.delete(m.id);
      this.#departed.delete(m.route); // insertion order is age
      this.#departed.set(m.route, { id: m.id, route: m.route, host: m.host, port: m.port, state: reason, since: this.#now() });
      if (this.#departed.size > MAX_DEPARTED) this.#departed.delete(this.#departed.keys().next().value!);
      const why = reason === 'left' ? 'left gracefully' : detail?.refused === true ? 'failed: connection refused' : 'failed: no answer to the direct check';
      this.#record('removed', m.route, why);
    });
  }

  /** Starts sampling the counters; the timer never holds the process open. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.sample();
    this.#timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Compares the counters with the last sample and records what changed. Called every second. */
  sample(): void {
    const cluster = this.#s.channel.metrics();
    const replication = this.#s.replicationMetrics();
    const unprotected = this.#s.unprotected();
    const now = this.#now();
    if (this.#cluster !== undefined && this.#replication !== undefined) {
      this.#addToHistory(now, replication, this.#replication);
      const took = replication.takeovers - this.#replication.takeovers;
      if (took > 0) this.#record('takeover', this.#s.channel.self.route, `took over ${took} session${took === 1 ? '' : 's'}`);
      const frames = reasonDeltas(cluster.framesRejected, this.#cluster.framesRejected);
      if (frames.length > 0) this.#record('frames-refused', undefined, frames.join(', '));
      const beats = reasonDeltas(cluster.heartbeatsDropped, this.#cluster.heartbeatsDropped);
      if (beats.length > 0) this.#record('heartbeats-dropped', undefined, beats.join(', '));
    }
    if (unprotected > 0 && this.#unprotected === 0) {
      this.#exposedAt = now;
      this.#reprotectedAtExposure = replication.reprotected;
      this.#record('unprotected', this.#s.channel.self.route, `${unprotected} session${unprotected === 1 ? ' has' : 's have'} one copy`);
    } else if (unprotected === 0 && this.#unprotected > 0) {
      const copied = replication.reprotected - this.#reprotectedAtExposure;
      this.#record('reprotected', this.#s.channel.self.route, `every session has two copies again (${copied} copied, ${((now - this.#exposedAt) / 1000).toFixed(1)} s)`);
    } else if (unprotected === 0 && this.#replication !== undefined && replication.reprotected > this.#replication.reprotected) {
      // Re-protection that began and ended between two samples.
      const copied = replication.reprotected - this.#replication.reprotected;
      this.#record('reprotected', this.#s.channel.self.route, `every session has two copies again (${copied} copied)`);
    }
    // A suspicion the direct check cleared has no event of its own: it shows as alive again.
    for (const [id, m] of this.#suspected) {
      const state = this.#s.channel.stateOf(id);
      if (state === 'suspect') continue;
      this.#suspected.delete(id);
      if (state === 'alive') this.#record('cleared', m.route, 'answered the direct check');
    }
    for (const [route, d] of this.#departed) if (now - d.since > DEPARTED_MS) this.#departed.delete(route);
    this.#cluster = cluster;
    this.#replication = replication;
    this.#unprotected = unprotected;
  }

  /** The finished intervals of the last ten minutes, oldest first. */
  history(): HistoryBucket[] {
    const now = this.#now();
    return this.#history.filter((b) => b.at + HISTORY_BUCKET_MS <= now).map((b) => ({ ...b }));
  }

  #addToHistory(now: number, r: ReplicationMetrics, before: ReplicationMetrics): void {
    const at = now - (now % HISTORY_BUCKET_MS);
    let b = this.#history.at(-1);
    if (b === undefined || b.at !== at) {
      b = { at, writes: 0, takeovers: 0, ackMs: 0, acks: 0 };
      this.#history.push(b);
      if (this.#history.length > HISTORY_BUCKETS) this.#history.shift();
    }
    b.writes += r.writes - before.writes;
    b.takeovers += r.takeovers - before.takeovers;
    b.ackMs += r.ackLatencyMs.sum - before.ackLatencyMs.sum;
    b.acks += r.ackLatencyMs.count - before.ackLatencyMs.count;
  }

  /** The state of a live member: suspected while a direct check is under way. */
  stateOf(memberId: string): MemberStatus {
    return this.#s.channel.stateOf(memberId) === 'suspect' ? 'suspected' : 'alive';
  }

  /** Members removed in the last minutes whose route has not joined again, oldest first. */
  departed(): DepartedMember[] {
    const live = new Set(this.#s.channel.members().map((m) => m.route));
    return [...this.#departed.values()].filter((d) => !live.has(d.route)).map((d) => ({ ...d }));
  }

  #record(type: ClusterEventType, member: string | undefined, detail: string): ClusterEvent {
    return this.events.push({ at: this.#now(), type, ...(member === undefined ? {} : { member }), detail });
  }
}
