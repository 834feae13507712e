/**
 * koa-session-cluster: session replication for Koa without an external store.
 *
 * ```ts
 * const cluster = createSessionCluster({ route: 'node1', secret, membership, receiver });
 * await cluster.start();
 * app.use(cluster.routeBinder());
 * app.use(session({ store: cluster.store, genid: cluster.genid }, app));
 * app.use(cluster.statusRouter().routes());
 * ```
 * @packageDocumentation
 */
import { parseOptions, type SessionClusterOptions } from './options.js';
import { SessionCluster } from './session-cluster.js';

/**
 * Validates `options` and makes a cluster member; call `start()` on it.
 * @throws ClusterOptionsError (`code` `ERR_CLUSTER_OPTIONS`) naming the first wrong option.
 */
export function createSessionCluster(options: SessionClusterOptions): SessionCluster {
  return new SessionCluster(parseOptions(options));
}

export {
  SessionCluster,
  type ClusterMember,
  type PrincipalSession,
  type SessionEvent,
  type SessionEvents,
  type DestroyReason,
  type ExpiryReason,
} from './session-cluster.js';
export type { SessionClusterOptions, ResolvedOptions, RegisteredType } from './options.js';
export { optionsSchema, ROUTE_PATTERN } from './options.js';
export type { RouteBinderOptions } from './koa/route-binder.js';
export type { StatusRouterOptions } from './koa/status-router.js';
export type { StatusHandler } from './koa/status-handler.js';
export type { KoaSessionStore } from './koa/session-store.js';
export type { ExpressSessionOptions, ExpressCookieOptions } from './express/express-session.js';
export type { ExpressBinderOptions } from './express/express-binder.js';
export type { ExpressMiddleware } from './express/express-peer.js';
export type { ExpressStore } from './express/express-store.js';
export type { FastifySessionOptions, FastifyCookieOptions, FastifySessionPlugin } from './fastify/fastify-session.js';
export * from './errors.js';
