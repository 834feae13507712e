/**
 * `cluster.session(app, options)`: koa-session and the route binder as one middleware, made from
 * one options object, so the cookie koa-session sets and the one the binder rebinds after a
 * takeover cannot differ (issue 13). koa-session fills its defaults into that object; the binder
 * reads the same object.
 */
import type Koa from 'koa';
import type { Middleware } from 'koa';
import session from 'koa-session';
import type { CreateSessionOptions } from 'koa-session';
import { ClusterOptionsError } from '../errors.js';
import type { SessionCookieOptions } from './session-cookie.js';

/**
 * koa-session's options, without those the cluster provides; plus the cookie attributes koa-session
 * passes through to `ctx.cookies.set` without declaring them.
 */
export type ClusterSessionOptions = Omit<CreateSessionOptions, 'store' | 'genid' | 'ContextStore'> &
  Pick<SessionCookieOptions, 'path' | 'domain' | 'partitioned' | 'priority'>;

/** What the cluster hands in. */
export interface ClusterSessionParts {
  store: NonNullable<CreateSessionOptions['store']>;
  genid: (ctx?: unknown) => string;
  /** The route binder, configured with koa-session's (completed) options object. */
  routeBinder(sessionOptions: SessionCookieOptions): Middleware;
}

/** Options only the cluster may set: another store or id generator would bypass replication and routes. */
const RESERVED = ['store', 'genid', 'ContextStore'] as const;

/** Builds koa-session with the cluster's `store` and `genid`, behind the route binder. */
export function createClusterSession(app: Koa, parts: ClusterSessionParts, options: ClusterSessionOptions = {}): Middleware {
  if (typeof (app as { use?: unknown } | undefined)?.use !== 'function') {
    throw new ClusterOptionsError('app', 'cluster.session(app, options): expected the Koa application as the first argument');
  }
  for (const k of RESERVED) {
    if (Object.hasOwn(options, k)) {
      throw new ClusterOptionsError(
        `session.${k}`,
        `cluster.session(app, options): options.${k} is set by the cluster (its replicated store and route-suffixed ids); remove it`,
      );
    }
  }
  // koa-session completes this object with its defaults and keeps it; the binder reads the same one.
  const opts = { ...options, store: parts.store, genid: parts.genid } as CreateSessionOptions;
  const koaSession = session(opts, app);
  const routeBinder = parts.routeBinder(opts as SessionCookieOptions);
  return async function clusterSession(ctx, next) {
    await routeBinder(ctx, () => koaSession(ctx, next));
  };
}
