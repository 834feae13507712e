/**
 * The route binder (Tomcat's JvmRouteBinderValve): a request carrying `base.nodeA` that reaches
 * `nodeB` makes nodeB take the session over, and the id becomes `base.nodeB`, in this request (so
 * koa-session reads it) and in the response's cookie, set with koa-session's own options
 * (`session-cookie.ts`), so the two never disagree on name, signing or attributes. Deciding, taking
 * over and naming the new id are every adapter's (`adapter/route-binding.ts`); this file reads and
 * writes koa-session's cookie.
 */
import type { Context, Middleware, Next } from 'koa';
import type { Replicator } from '../replication/replicator.js';
import type { Logger } from 'pino';
import { SessionUnavailableError } from '../errors.js';
import { RouteBinding, UNAVAILABLE, rewriteCookieHeader, type UnknownIdBudget } from '../adapter/route-binding.js';
import { KOA_SESSION_COOKIE_DEFAULTS, cookieAttributes, cookieName, sessionOptionsOf } from './session-cookie.js';
import type { SessionCookieOptions } from './session-cookie.js';

/**
 * Cookie settings for the binder where it cannot read koa-session's own (`ctx.sessionOptions`,
 * present whenever koa-session is installed on the app, which then wins). koa-session's defaults.
 */
export type RouteBinderOptions = SessionCookieOptions;

interface Signer {
  sign(data: string): string;
}

/**
 * Makes the route-binder middleware for this member. Cookie settings, first found: `sessionOptions`
 * (the very object given to koa-session, from `cluster.session()`), the request's koa-session
 * options (`ctx.sessionOptions`), `options`.
 */
export function createRouteBinder(
  manager: Replicator,
  route: string,
  logger: Logger,
  options: RouteBinderOptions = {},
  sessionOptions?: SessionCookieOptions,
  unknownIds: UnknownIdBudget = { burst: 100, perSecond: 20 },
): Middleware {
  const fallback: SessionCookieOptions = { ...KOA_SESSION_COOKIE_DEFAULTS, ...options };
  const binding = new RouteBinding(manager, route, logger, unknownIds);
  const log = binding.log;
  let warnedDisagree = false;
  const cookieOptions = (ctx: Context): SessionCookieOptions => {
    if (sessionOptions !== undefined) return sessionOptions;
    const installed = sessionOptionsOf(ctx);
    if (installed === undefined) return fallback;
    if (!warnedDisagree && (options.key !== undefined || options.signed !== undefined)) {
      const a = cookieName(installed);
      const b = cookieName(fallback);
      if (a.key !== b.key || a.signed !== b.signed) {
        warnedDisagree = true;
        log.warn({ koaSession: a, routeBinder: b }, 'routeBinder() options disagree with koa-session\'s; using koa-session\'s (cluster.session() configures both at once)');
      }
    }
    return installed;
  };
  const routeBinder = async function routeBinder(ctx: Context, next: Next): Promise<void> {
    const cookie = cookieOptions(ctx);
    const { key, signed } = cookieName(cookie);
    if (!binding.needsBinding(ctx.cookies.get(key, { signed: false }))) {
      await next();
      return;
    }
    // "Cannot tell now" (SessionUnavailableError) propagates: the caller answers 503, never "no session".
    const proxied = { forwardedUntrusted: !ctx.app.proxy && ctx.get('x-forwarded-for') !== '', setting: 'app.proxy = true' };
    const rebound = await binding.bind(ctx.cookies.get(key, { signed }), ctx.ip, proxied);
    if (rebound !== undefined) {
      // The request carries the new id from here on (koa-session reads it), and so does the response.
      const replacements = new Map([[key, rebound.id]]);
      const signer = (ctx.cookies as unknown as { keys?: Signer }).keys;
      if (signed && signer !== undefined) replacements.set(`${key}.sig`, signer.sign(`${key}=${rebound.id}`));
      ctx.request.headers.cookie = rewriteCookieHeader(ctx.request.headers.cookie ?? '', replacements);
      ctx.cookies.set(key, rebound.id, cookieAttributes(cookie, rebound.expire));
    }
    await next();
  };
  return async function unavailableAs503(ctx: Context, next: Next): Promise<void> {
    try {
      await routeBinder(ctx, next);
    } catch (err) {
      // The session may exist but cannot be served now (moving, owner suspected, this member
      // stopping): 503 + Retry-After makes a balancer or browser retry, where an empty session
      // would make koa-session hand out a new cookie and log the user out for good.
      if (!(err instanceof SessionUnavailableError)) throw err;
      binding.unavailable(err);
      ctx.status = UNAVAILABLE.status;
      ctx.set('Retry-After', UNAVAILABLE.retryAfter);
      ctx.body = UNAVAILABLE.body;
    }
  };
}
