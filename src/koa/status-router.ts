/**
 * `GET /cluster/status` (JSON), `GET /cluster/metrics` (Prometheus text exposition format) and, when
 * enabled, `GET /cluster/dashboard` (the HTML status page, also at `GET /cluster/`).
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { ClusterMetrics, MemberInfo, ProtocolStatus } from '../cluster/types.js';
import type { ReplicationMetrics } from '../replication/replicator.js';
import type { CapacityStatus } from '../replication/capacity.js';
import { ClusterOptionsError } from '../errors.js';
import type { DepartedMember, MemberStatus } from './cluster-watch.js';
import { DASHBOARD_CSP, dashboardPage } from './dashboard-page.js';
import type { ClusterEvent } from './event-ring.js';
import type { PeerCounts } from './peer-status.js';

/** What the status router reads from the cluster. */
/**
 * The majority this member serves by: `size` (expectedMembers, or the members seen), how many others
 * answered it lately (`answering`: their routes), and whether it `holds` a majority (serving) or not (503 for all).
 */
export interface Majority {
  size: number;
  expected: boolean;
  answering: string[];
  holds: boolean;
}

export interface StatusSource {
  route: string;
  mode: 'backup' | 'delta';
  ack: 'sync' | 'async';
  members(): (MemberInfo & { self: boolean })[];
  /**
   * `unprotected`: sessions held here with one live copy; `underReplicated`: with fewer than
   * `backups` + 1 (see the README's status section).
   */
  sessions(): { primary: number; backup: number; unprotected: number; underReplicated: number };
  /** Whether this member sees a majority of the cluster, and of what size. */
  majority(): Majority;
  /** Destructions remembered (`removed`), moves remembered (`moved`), and the bytes the first take. */
  tombstones(): { removed: number; moved: number; bytes: number };
  clusterMetrics(): ClusterMetrics;
  replicationMetrics(): ReplicationMetrics;
  /** Fill level, bounds, refusals and evictions (`replication/capacity.ts`). */
  capacity(): CapacityStatus;
  /** A live member's state: suspected while a direct check is under way. */
  memberState(id: string): MemberStatus;
  /** Members removed in the last minutes (left or failed). */
  departed(): DepartedMember[];
  /** The newest cluster events, oldest first. */
  events(): ClusterEvent[];
  /** Every live member's counts, asked over the cluster channel; `history`: with their last ten minutes. */
  peers(history: boolean): Promise<PeerCounts[]>;
  /** Protocol versions: this member's, each connection's, and members refused for having none in common. */
  protocol?(): ProtocolStatus | undefined;
}

/** Options of `cluster.statusRouter()`. */
export interface StatusRouterOptions {
  /** Path prefix of the routes. Default `/cluster`. */
  prefix?: string;
  /**
   * Serve the HTML status page at `GET <prefix>/dashboard` (and `GET <prefix>/`). Default false: it
   * shows member addresses and session counts, which are not for the public.
   */
  dashboard?: boolean;
  /**
   * Called for every request to the router's routes (status, metrics and dashboard); false (or a
   * promise of false) answers 403 with no data. Default: every request is allowed.
   */
  authorize?: (ctx: Context) => boolean | Promise<boolean>;
}

const routerOptionsSchema = z
  .object({
    prefix: z.string().regex(/^\/[A-Za-z0-9._~/-]*$/, 'expected a path starting with "/"').optional(),
    dashboard: z.boolean().optional(),
    authorize: z.function().optional(),
  })
  .strict();

/**
 * Validates `statusRouter`'s argument: a prefix string (the earlier form) or an options object.
 * @throws ClusterOptionsError naming the option.
 */
export function parseStatusRouterOptions(input: unknown): Required<Omit<StatusRouterOptions, 'authorize'>> & Pick<StatusRouterOptions, 'authorize'> {
  const given = typeof input === 'string' ? { prefix: input } : (input ?? {});
  const result = routerOptionsSchema.safeParse(given);
  if (!result.success) {
    const issue = result.error.issues[0];
    const option = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path.join('.') || 'options';
    throw new ClusterOptionsError(`statusRouter.${option}`, `cluster.statusRouter(): option ${option}: ${issue.message}`);
  }
  const o = result.data;
  return {
    prefix: o.prefix ?? '/cluster',
    dashboard: o.dashboard ?? false,
    authorize: o.authorize as StatusRouterOptions['authorize'],
  };
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

/** The capacity families: fill, bounds, refusals by reason, evictions, event-loop delay. */
function capacityMetrics(p: string, c: CapacityStatus): string[] {
  return [
    family(`${p}capacity_sessions_max`, 'gauge', 'Sessions this member holds at most (maxSessions, or derived from the heap).', [[{}, c.maxSessions]]),
    family(`${p}capacity_sessions_planned`, 'gauge', 'Sessions held past which new sessions are refused here (room for a failed member\'s share).', [[{}, c.plannedLevel]]),
    family(`${p}capacity_fill_ratio`, 'gauge', 'Sessions held over maxSessions.', [[{}, c.fill]]),
    family(`${p}sessions_refused_total`, 'counter', 'New sessions refused for capacity (503), by reason.', [
      [{ reason: 'full' }, c.refusedFull],
      [{ reason: 'overloaded' }, c.refusedOverloaded],
      [{ reason: 'copy_holder_full' }, c.refusedCopyHolderFull],
    ]),
    family(`${p}copies_refused_total`, 'counter', 'Copies of sessions not held here refused at maxSessions.', [[{}, c.copiesRefused]]),
    family(`${p}sessions_evicted_total`, 'counter', 'Idle sessions destroyed to make room (onCapacity evict-idle).', [[{}, c.evicted]]),
    family(`${p}event_loop_delay_seconds`, 'gauge', 'Median event-loop delay over the last half second.', [[{}, c.eventLoopDelayMs / 1000]]),
  ];
}

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
      family(`${p}sessions_unprotected`, 'gauge', 'Sessions held by this member with one live copy (re-protection pending).', [
        [{}, sessions.unprotected],
      ]),
      family(`${p}sessions_under_replicated`, 'gauge', 'Sessions held by this member with fewer than backups + 1 live copies.', [
        [{}, sessions.underReplicated],
      ]),
      family(`${p}tombstones`, 'gauge', 'Destroyed or moved sessions this member remembers (to fence stray copies), by kind.', [
        [{ kind: 'removed' }, s.tombstones().removed],
        [{ kind: 'moved' }, s.tombstones().moved],
      ]),
      family(`${p}messages_sent_total`, 'counter', 'Cluster messages sent.', [[{}, c.messagesSent]]),
      family(`${p}messages_received_total`, 'counter', 'Cluster messages received.', [[{}, c.messagesReceived]]),
      family(`${p}bytes_sent_total`, 'counter', 'Bytes sent to other members.', [[{}, c.bytesSent]]),
      family(`${p}bytes_received_total`, 'counter', 'Bytes received from other members.', [[{}, c.bytesReceived]]),
      family(`${p}heartbeats_dropped_total`, 'counter', 'Heartbeats dropped, by reason.', byReason(c.heartbeatsDropped)),
      family(`${p}frames_rejected_total`, 'counter', 'TCP frames rejected, by reason.', byReason(c.framesRejected)),
      family(`${p}requests_timed_out_total`, 'counter', 'Requests to members that timed out.', [[{}, c.requestsTimedOut]]),
      family(`${p}requests_refused_late_total`, 'counter', 'Requests from members refused because they arrived after their sender gave up on them.', [[{}, c.requestsRefusedLate]]),
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
      ...capacityMetrics(p, s.capacity()),
    ].join('\n') + '\n'
  );
}

/** The status JSON; `peers` only when asked for (it costs a request to every member). */
export function statusOf(s: StatusSource, peers?: PeerCounts[]): Record<string, unknown> {
  const members = s.members();
  return {
    route: s.route,
    mode: s.mode,
    ack: s.ack,
    members: members.map((m) => ({
      route: m.route,
      host: m.host,
      port: m.port,
      id: m.id,
      self: m.self,
      startTime: m.startTime,
      ...(m.zone !== undefined ? { zone: m.zone } : {}),
      state: m.self ? 'alive' : s.memberState(m.id),
    })),
    ring: members.map((m) => m.route).sort(),
    majority: s.majority(),
    tombstones: s.tombstones(),
    sessions: s.sessions(),
    capacity: s.capacity(),
    replication: s.replicationMetrics(),
    departed: s.departed(),
    events: s.events(),
    ...(s.protocol?.() !== undefined ? { protocol: s.protocol() } : {}),
    ...(peers === undefined ? {} : { peers }),
  };
}

/** An @koa/router serving the endpoints; the dashboard only when `options.dashboard` is true. */
export function createStatusRouter(source: StatusSource, options?: string | StatusRouterOptions): Router {
  const o = parseStatusRouterOptions(options);
  const router = new Router({ prefix: o.prefix });
  const authorize = o.authorize;
  if (authorize !== undefined) {
    router.use(async (ctx, next) => {
      // Nothing of the cluster in a refusal: no route, no count, not even whether the page exists.
      if ((await authorize(ctx)) !== true) {
        ctx.status = 403;
        ctx.type = 'text/plain';
        ctx.body = 'Forbidden\n';
        return;
      }
      await next();
    });
  }
  router.get('/status', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.body = statusOf(source, ctx.query.peers === '1' ? await source.peers(ctx.query.history === '1') : undefined);
  });
  router.get('/metrics', (ctx) => {
    ctx.type = 'text/plain; version=0.0.4';
    ctx.body = renderMetrics(source);
  });
  if (o.dashboard) {
    const page = (ctx: Context): void => {
      ctx.type = 'html';
      ctx.set('content-security-policy', DASHBOARD_CSP);
      ctx.set('x-content-type-options', 'nosniff');
      ctx.set('referrer-policy', 'no-referrer');
      ctx.set('cache-control', 'no-store');
      ctx.body = dashboardPage(source.route);
    };
    router.get('/dashboard', (ctx) => page(ctx as unknown as Context));
    // The page polls `status` relative to its own URL, so `<prefix>` without the slash goes to it.
    router.get('/', (ctx) => {
      if (!ctx.path.endsWith('/')) return ctx.redirect(`${ctx.path}/dashboard`);
      page(ctx);
    });
  }
  return router;
}
