/**
 * The object `createSessionCluster` returns: wires the cluster channel, the codec and the replication
 * manager of the chosen mode, and hands the Koa pieces to the application.
 */
import { EventEmitter } from 'node:events';
import { pino, type Logger } from 'pino';
import type Koa from 'koa';
import type { Middleware } from 'koa';
import type Router from '@koa/router';
import { createClusterChannel } from './cluster/index.js';
import { secretList } from './cluster/keys.js';
import type { ClusterChannel, ClusterMetrics, MemberInfo } from './cluster/types.js';
import { compactCopy, compactDelta, createSessionCodec } from './codec/index.js';
import { MSG } from './replication/message-types.js';
import { ClusterStateError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import { BackupManager } from './replication/backup-manager.js';
import { DeltaManager } from './replication/delta-manager.js';
import type { Replicator, ReplicationMetrics } from './replication/replicator.js';
import { formatSessionId, newBase, parseSessionId } from './replication/session-id.js';
import { Principals, type PrincipalSession } from './replication/principals.js';
import type { SessionEvents } from './replication/session-events.js';
import { deriveHandleKey } from './replication/session-handle.js';
import { systemClock } from './replication/clock.js';
import { createSessionStore, type KoaSessionStore } from './koa/session-store.js';
import { createRouteBinder, type RouteBinderOptions } from './koa/route-binder.js';
import { createClusterSession, type ClusterSessionOptions } from './koa/cluster-session.js';
import { createStatusRouter, parseStatusRouterOptions, renderMetrics, statusOf, type StatusRouterOptions, type StatusSource } from './koa/status-router.js';
import { createStatusHandler, type StatusHandler } from './koa/status-handler.js';
import { ClusterWatch } from './koa/cluster-watch.js';
import { CountsGatherer, answerCounts, capacityCounts, type MemberCounts } from './koa/peer-status.js';
import { census, type Census } from './replication/census.js';
import { Capacity } from './replication/capacity.js';
import { SessionAccess } from './adapter/session-access.js';
import { RouteBinding } from './adapter/route-binding.js';
// The framework adapters import their frameworks only when used (adapter/optional-peer.ts).
import { CommitGuard } from './express/commit-guard.js';
import type { ExpressMiddleware } from './express/express-peer.js';
import type { ExpressStore } from './express/express-store.js';
import type { ExpressBinderOptions } from './express/express-binder.js';
import {
  createExpressRouteBinder,
  createExpressSession,
  makeExpressStore,
  type ExpressParts,
  type ExpressSessionOptions,
} from './express/express-session.js';
import { createFastifySession, type FastifyParts, type FastifySessionPlugin } from './fastify/fastify-session.js';

/** A member as `cluster.members()` lists it. */
export interface ClusterMember {
  id: string;
  route: string;
  host: string;
  port: number;
  self: boolean;
  startTime: number;
}

type State = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

export type { PrincipalSession } from './replication/principals.js';
export type { SessionEvent, SessionEvents, DestroyReason, ExpiryReason } from './replication/session-events.js';

/**
 * The cluster's size for the majority rule: `expectedMembers`, or a static list's length (this member
 * counted once, whether the list names it or not). Multicast and DNS membership name no size.
 */
function clusterSize(options: ResolvedOptions): { expectedMembers?: number } {
  if (options.expectedMembers !== undefined) return { expectedMembers: options.expectedMembers };
  const list = options.membership.static;
  if (list === undefined) return {};
  const self = new Set([options.receiver.host, options.receiver.advertise].filter((h) => h !== undefined).map((h) => `${h}:${options.receiver.port}`));
  const others = new Set(list.filter((a) => !self.has(a)));
  return { expectedMembers: others.size + 1 };
}

/**
 * A member of a session cluster. Made by `createSessionCluster`. Emits `sessionCreated`,
 * `sessionDestroyed` and `sessionExpired` (see `SessionEvent`): each once in the whole cluster, on
 * the member owning the session at that moment.
 */
export class SessionCluster extends EventEmitter<SessionEvents> {
  /** This member's route (the session id suffix it owns). */
  readonly route: string;
  /** `'backup'` or `'delta'`. */
  readonly mode: 'backup' | 'delta';
  /** The koa-session external store: pass as koa-session's `store` option. */
  readonly store: KoaSessionStore;
  /** Session id generator: pass as koa-session's `genid` option. Ids are `<144 random bits>.<route>`. */
  readonly genid: (ctx?: unknown) => string;
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #channel: ClusterChannel;
  readonly #manager: Replicator;
  /** Member states and the event ring for the status page. */
  readonly #watch: ClusterWatch;
  readonly #peers: CountsGatherer;
  readonly #principals: Principals;
  /** How many sessions this member holds at most, and what a new one meets past that. */
  readonly #capacity: Capacity;
  #state: State = 'new';
  #express: ExpressParts | undefined;
  #expressStore: ExpressStore | undefined;
  #fastify: FastifySessionPlugin | undefined;

  /** Use `createSessionCluster`, which validates the options. */
  constructor(options: ResolvedOptions) {
    super();
    this.#options = options;
    this.route = options.route;
    this.mode = options.mode;
    this.#logger = (options.logger ?? pino({ name: 'koa-session-cluster', level: process.env.LOG_LEVEL ?? 'info' })).child({
      route: options.route,
    });
    this.#channel = createClusterChannel({
      route: options.route,
      ...(options.zone !== undefined ? { zone: options.zone } : {}),
      clusterName: options.clusterName,
      secret: options.secret,
      encrypt: options.encrypt,
      membership: options.membership,
      receiver: options.receiver,
      maxFrameBytes: options.maxFrameBytes,
      requestTimeout: options.ackTimeout,
      logger: this.#logger,
      // Protocol version 2's compact write: a write's body without what the holder already knows.
      packers: new Map([
        [MSG.delta, compactDelta],
        [MSG.copy, compactCopy],
      ]),
    });
    const codec = createSessionCodec({
      types: options.types,
      sessionSchema: options.sessionSchema,
      maxSessionBytes: options.maxSessionBytes,
    });
    const deps = {
      channel: this.#channel,
      codec,
      route: options.route,
      ack: options.ack,
      ackTimeout: options.ackTimeout,
      maxSessionBytes: options.maxSessionBytes,
      reprotectRate: options.reprotectRate,
      decodedCache: options.decodedCache,
      stateTransferTimeout: options.stateTransferTimeout,
      stateTransferBatch: options.stateTransferBatch,
      dropTime: options.membership.multicast?.dropTime ?? options.membership.dropTime,
      // A delta member that sees no older member within this window starts empty; before it, an
      // unknown session may be on a member not seen yet.
      discoveryMs: (options.membership.multicast?.frequency ?? options.membership.frequency) * 4,
      ...clusterSize(options),
      backups: options.backups,
      ...(options.zone !== undefined ? { zone: options.zone } : {}),
      logger: this.#logger,
    };
    this.#manager = options.mode === 'backup' ? new BackupManager(deps) : new DeltaManager(deps);
    this.#manager.policy = { principal: options.principal, absoluteMaxAge: options.absoluteMaxAge };
    this.#principals = new Principals({
      manager: this.#manager,
      channel: this.#channel,
      route: options.route,
      clock: systemClock,
      logger: this.#logger,
      // Handles are made with the first secret: they change when a rotation moves a new one first.
      handleKey: deriveHandleKey(secretList(options.secret)[0]),
      ackTimeout: options.ackTimeout,
      maxSessionsPerPrincipal: options.maxSessionsPerPrincipal,
      onSessionLimit: options.onSessionLimit,
      absoluteMaxAge: options.absoluteMaxAge,
      emit: (name, event) => this.emit(name, event),
    });
    this.#capacity = new Capacity({
      ...(options.maxSessions !== undefined ? { maxSessions: options.maxSessions } : {}),
      onCapacity: options.onCapacity,
      idleMs: options.evictIdleAfter,
      maxEventLoopDelay: options.maxEventLoopDelay,
      mode: options.mode,
      backups: options.backups,
      held: () => this.#manager.table.size,
      liveMembers: () => this.#channel.members().length + 1,
      isPrimary: (base) => this.#manager.isPrimary(base),
      // Through the logout's path: durable on every copy holder, tombstoned, and announced once.
      evict: async (base) => {
        const e = await this.#manager.remove(base);
        if (e !== undefined) await this.#principals.removed(e, 'evicted');
        return e !== undefined;
      },
      logger: this.#logger.child({ component: 'capacity' }),
    });
    this.#manager.capacity = this.#capacity;
    const running = () => this.#state === 'running' || this.#state === 'stopping';
    this.store = createSessionStore(this.#manager, this.route, this.#logger, running, this.#principals);
    this.genid = () => formatSessionId(newBase(), this.route);
    this.#watch = new ClusterWatch({
      channel: this.#channel,
      replicationMetrics: () => this.#manager.metrics(),
      unprotected: () => this.#sessions().unprotected,
    });
    answerCounts(this.#channel, (history) => this.#counts(history));
    this.#peers = new CountsGatherer(this.#channel, (history) => this.#counts(history));
  }

  /** Resolves when the receiver listens and membership runs. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new ClusterStateError(`cluster.start() called while ${this.#state}; a cluster starts once`);
    this.#state = 'starting';
    this.#manager.install();
    this.#principals.install();
    try {
      await this.#channel.start();
    } catch (err) {
      this.#state = 'stopped';
      this.#manager.close();
      this.#principals.close();
      throw err;
    }
    this.#state = 'running';
    this.#manager.started();
    this.#capacity.start();
    this.#watch.start();
    const size = clusterSize(this.#options).expectedMembers;
    this.#logger.info(
      { mode: this.mode, receiver: `${this.#channel.self.host}:${this.#channel.self.port}`, expectedMembers: size ?? null },
      size === undefined
        ? 'session cluster member started; it serves once it has met another member, while it sees a majority of the members it has seen (set expectedMembers so that a partition, or a start cut off from the others, longer than 60 s is safe too, and a cluster of one serves at once)'
        : `session cluster member started; it serves while it sees ${Math.floor(size / 2) + 1} of ${size} members`,
    );
  }

  /**
   * Graceful leave: makes sure every session held here lives on two other members, tells the others,
   * then closes every socket and timer. Close the HTTP server first, so no request arrives meanwhile.
   */
  async stop(): Promise<void> {
    if (this.#state !== 'running') return;
    this.#state = 'stopping';
    try {
      await this.#manager.leave();
    } finally {
      this.#watch.stop();
      this.#capacity.stop();
      this.#manager.close();
      this.#principals.close();
      await this.#channel.stop();
      this.#state = 'stopped';
      this.#logger.info('session cluster member stopped');
    }
  }

  /**
   * Resolves when the member has discovered the cluster and holds its majority (without
   * `expectedMembers`: once it has met another member, or after 60 s alone); delta mode: also when
   * the state transfer from an older member finished.
   */
  async ready(): Promise<void> {
    await this.#manager.ready();
  }

  /**
   * A user's live sessions on every member, oldest first (needs option `principal`). Asks the
   * principal's two index holders, so it survives one member's failure. Rejects with
   * `SessionUnavailableError` when neither answers.
   */
  async sessionsOf(principal: string): Promise<PrincipalSession[]> {
    this.#ensureRunning();
    return this.#principals.sessionsOf(principal);
  }

  /**
   * Log out everywhere: destroys every session of `principal` but `except` (a handle from `sessionsOf`,
   * or a session id such as the current request's), each as durably as a logout (promise 2).
   * Resolves to how many it destroyed; fires `sessionDestroyed` with reason `revoked` for each.
   * Asks every live member, and rejects with `SessionUnavailableError` when it cannot be sure to find
   * every session (a member silent, or as many cut off as a session has copies). Idempotent: call it
   * again after that error.
   */
  async destroySessions(principal: string, options: { except?: string } = {}): Promise<number> {
    this.#ensureRunning();
    return this.#principals.destroySessions(principal, options.except);
  }

  /** The public, stable handle of a session id (as `sessionsOf` lists it); undefined for a malformed id. */
  handleOf(sessionId: string): string | undefined {
    const id = parseSessionId(sessionId);
    return id === undefined ? undefined : this.#principals.handleOf(id.base);
  }

  #ensureRunning(): void {
    if (this.#state !== 'running') throw new ClusterStateError(`the session cluster is ${this.#state}: sessionsOf and destroySessions need a running member`);
  }

  /** Live members, self included. */
  members(): ClusterMember[] {
    const own = this.#channel.self;
    const toMember = (m: MemberInfo, self: boolean): ClusterMember => ({
      id: m.id,
      route: m.route,
      host: m.host,
      port: m.port,
      self,
      startTime: m.startTime,
    });
    return [toMember(own, true), ...this.#channel.members().map((m) => toMember(m, false))];
  }

  /**
   * Koa middleware that takes over sessions bound to another member and rewrites their id to this
   * member's route. Place it before koa-session; it sets the cookie with the options of the
   * koa-session installed on the app (`options` only where it cannot read them). `session()` does both.
   */
  routeBinder(options?: RouteBinderOptions): Middleware {
    return createRouteBinder(this.#manager, this.route, this.#logger, options, undefined, this.#options.unknownIds);
  }

  /**
   * koa-session and the route binder as one middleware, configured from one options object, so the
   * cookie after a takeover carries exactly the attributes koa-session sets:
   * `app.use(cluster.session(app, { maxAge: 3_600_000, sameSite: 'lax' }))`. `store` and `genid`
   * are filled in (giving them throws `ClusterOptionsError`).
   */
  session(app: Koa, koaSessionOptions?: ClusterSessionOptions): Middleware {
    return createClusterSession(
      app,
      {
        store: this.store,
        genid: this.genid,
        routeBinder: (sessionOptions) => createRouteBinder(this.#manager, this.route, this.#logger, {}, sessionOptions, this.#options.unknownIds),
      },
      koaSessionOptions,
    );
  }

  /** The store core and route binding for an adapter; each framework names its own options in errors. */
  #adapterParts(hints: { genid: string; binder: string }): { access: SessionAccess; binding: RouteBinding } {
    const running = () => this.#state === 'running' || this.#state === 'stopping';
    return {
      access: new SessionAccess(this.#manager, this.route, this.#logger, running, this.#principals, hints),
      binding: new RouteBinding(this.#manager, this.route, this.#logger, this.#options.unknownIds),
    };
  }

  #expressParts(): ExpressParts {
    this.#express ??= {
      ...this.#adapterParts({
        genid: 'use cluster.expressSession(), or pass { genid: cluster.genid } to express-session',
        binder: 'use cluster.expressSession(), or cluster.expressRouteBinder() before express-session',
      }),
      guard: new CommitGuard(this.#logger),
      genid: this.genid,
    };
    return this.#express;
  }

  /**
   * Express middleware: express-session (its own options; `secret` required) with the cluster's store
   * and id generator, behind the route binder, which re-signs the rebound cookie as express-session
   * signs it: `app.use(cluster.expressSession({ secret, cookie: { maxAge: 3_600_000 } }))`. The
   * response waits for the store: a session that cannot be saved fails the request (503 with
   * Retry-After when the cluster cannot tell now), never a 200 whose write was lost. Loads
   * express-session, an optional peer dependency, on first call.
   * @throws ClusterOptionsError for a missing secret, or a `store`/`genid` option.
   * @throws PeerDependencyError when express-session is not installed.
   */
  expressSession(options: ExpressSessionOptions): ExpressMiddleware {
    return createExpressSession(this.#expressParts(), options);
  }

  /**
   * An express-session `Store`, for the two-step form: `app.use(cluster.expressRouteBinder({ secret }))`
   * then `app.use(session({ secret, store: cluster.expressStore, genid: cluster.genid }))`.
   * @throws PeerDependencyError when express-session is not installed.
   */
  get expressStore(): ExpressStore {
    this.#expressStore ??= makeExpressStore(this.#expressParts(), 'cluster.expressStore');
    return this.#expressStore;
  }

  /**
   * The route binder for the two-step Express form, placed before express-session and given its
   * `name`, `secret` and `proxy`. It also holds each response until the store acknowledged.
   */
  expressRouteBinder(options: ExpressBinderOptions): ExpressMiddleware {
    return createExpressRouteBinder(this.#expressParts(), options);
  }

  /**
   * A Fastify plugin: @fastify/session (its own options) with the cluster's store and id generator,
   * behind the route binder: `app.register(cluster.fastifySession, { secret, cookie: { secure: false } })`.
   * Registers @fastify/cookie first if the app has not. Loads @fastify/session, an optional peer
   * dependency, on first access.
   * @throws PeerDependencyError when @fastify/session or @fastify/cookie is not installed.
   */
  get fastifySession(): FastifySessionPlugin {
    if (this.#fastify === undefined) {
      const parts: FastifyParts = {
        ...this.#adapterParts({
          genid: 'register cluster.fastifySession, or pass { idGenerator: cluster.genid } to @fastify/session',
          binder: 'register cluster.fastifySession instead of @fastify/session',
        }),
        genid: this.genid,
      };
      this.#fastify = createFastifySession(parts);
    }
    return this.#fastify;
  }

  /**
   * An @koa/router serving `GET /cluster/status` and `GET /cluster/metrics`, and with
   * `{ dashboard: true }` the HTML status page at `GET /cluster/dashboard` (and `/cluster/`).
   * `authorize(ctx)` returning false answers 403 on every route of the router. A string argument is
   * the prefix (the earlier form).
   * @throws ClusterOptionsError naming a wrong option.
   */
  statusRouter(options?: string | StatusRouterOptions): Router {
    return createStatusRouter(this.#statusSource(), options);
  }

  /**
   * The status router's routes as a Node request handler, for Express (`app.use(cluster.statusHandler())`)
   * and Fastify (a route on `/cluster` and `/cluster/*` that hands `request.raw` and `reply.raw` to it
   * after `reply.hijack()`); requests outside the prefix go to `next`. Same options as `statusRouter`;
   * `authorize` gets a Koa context (`ctx.ip`, `ctx.get(header)`).
   */
  statusHandler(options?: string | StatusRouterOptions): StatusHandler {
    return createStatusHandler(this.statusRouter(options), parseStatusRouterOptions(options).prefix);
  }

  /** The status JSON that `/cluster/status` serves. */
  status(): Record<string, unknown> {
    return statusOf(this.#statusSource());
  }

  /** The Prometheus text that `/cluster/metrics` serves. */
  metricsText(): string {
    return renderMetrics(this.#statusSource());
  }

  #statusSource(): StatusSource {
    return {
      route: this.route,
      mode: this.mode,
      ack: this.#options.ack,
      members: () => this.members(),
      sessions: () => this.#sessions(),
      majority: () => this.#manager.majority(),
      tombstones: () => this.#manager.table.tombstoneCount(),
      clusterMetrics: (): ClusterMetrics => this.#channel.metrics(),
      replicationMetrics: (): ReplicationMetrics => this.#manager.metrics(),
      memberState: (id) => this.#watch.stateOf(id),
      departed: () => this.#watch.departed(),
      events: () => this.#watch.events.list(),
      peers: (history) => this.#peers.gather(history),
      protocol: () => this.#channel.protocolStatus?.(),
      capacity: () => this.#capacity.status(),
    };
  }

  #sessions(): Census {
    const live = this.#channel.members().map((m) => m.route);
    const table = this.#manager.table;
    return census(this.mode, this.route, table.held(), live, table.now(), this.#options.backups);
  }

  /** What this member tells the others' status pages about itself. */
  #counts(history: boolean): MemberCounts {
    const r = this.#manager.metrics();
    return {
      id: this.#channel.self.id,
      route: this.route,
      sessions: this.#sessions(),
      writes: r.writes,
      takeovers: r.takeovers,
      reprotected: r.reprotected,
      ackLatencyMs: { ...r.ackLatencyMs },
      capacity: capacityCounts(this.#capacity.status()),
      ...(history ? { history: this.#watch.history() } : {}),
    };
  }
}
