/**
 * The route binder (Tomcat's JvmRouteBinderValve): a request carrying `base.nodeA` that reaches
 * `nodeB` makes nodeB take the session over, and the id becomes `base.nodeB`, in this request (so
 * koa-session reads it) and in the response's cookie, set with koa-session's own options
 * (`session-cookie.ts`), so the two never disagree on name, signing or attributes.
 */
import type { Context, Middleware, Next } from 'koa';
import type { Replicator } from '../replication/replicator.js';
import { formatSessionId, parseSessionId, shortId } from '../replication/session-id.js';
import type { Logger } from 'pino';
import { SessionUnavailableError } from '../errors.js';
import { KOA_SESSION_COOKIE_DEFAULTS, cookieAttributes, cookieName, sessionOptionsOf } from './session-cookie.js';
import type { SessionCookieOptions } from './session-cookie.js';
import { LookupBudget } from './lookup-budget.js';

/**
 * Cookie settings for the binder where it cannot read koa-session's own (`ctx.sessionOptions`,
 * present whenever koa-session is installed on the app, which then wins). koa-session's defaults.
 */
export type RouteBinderOptions = SessionCookieOptions;

interface Signer {
  sign(data: string): string;
}

/** Replaces (or adds) cookies in a Cookie request header. */
function rewriteCookieHeader(header: string, replacements: Map<string, string>): string {
  const seen = new Set<string>();
  const parts = header
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .map((p) => {
      const eq = p.indexOf('=');
      const name = eq < 0 ? p : p.slice(0, eq);
      const value = replacements.get(name);
      if (value === undefined) return p;
      seen.add(name);
      return `${name}=${value}`;
    });
  for (const [name, value] of replacements) if (!seen.has(name)) parts.push(`${name}=${value}`);
  return parts.join('; ');
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
  unknownIds: { burst: number; perSecond: number } = { burst: 100, perSecond: 20 },
): Middleware {
  const fallback: SessionCookieOptions = { ...KOA_SESSION_COOKIE_DEFAULTS, ...options };
  const log = logger.child({ component: 'route-binder' });
  const budget = new LookupBudget(unknownIds);
  let warnedDisagree = false;
  let warnedProxy = false;
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
    // The common case, a session this member serves, costs no signature check here: koa-session
    // checks it right after. Only a takeover (which moves data) needs the signature checked first.
    const raw = ctx.cookies.get(key, { signed: false });
    const unverified = parseSessionId(raw);
    if (unverified === undefined || (unverified.route === route && manager.isPrimary(unverified.base))) {
      await next();
      return;
    }
    const value = signed ? ctx.cookies.get(key, { signed: true }) : raw;
    const id = parseSessionId(value);
    // Malformed, unsigned or unknown ids are koa-session's "no session": never an error page.
    if (value === undefined || id === undefined) {
      await next();
      return;
    }
    // A source that sent many ids nobody holds is asked about only where the ring puts the session.
    if (!budget.allows(ctx.ip) && !(await manager.heldWhereExpected(id.base, id.route))) {
      if (!warnedProxy && !ctx.app.proxy && ctx.get('x-forwarded-for') !== '') {
        warnedProxy = true;
        log.warn({ ip: ctx.ip }, 'requests carry X-Forwarded-For but app.proxy is off: every client behind the balancer shares one budget of unknown session ids; set app.proxy = true');
      }
      throw new SessionUnavailableError(`session ${shortId(id.base)}…: too many unknown sessions from ${ctx.ip}; retry later`);
    }
    // "Cannot tell now" (SessionUnavailableError) propagates: the caller answers 503, never "no session".
    const acquired = await manager.acquire(id.base);
    if (!acquired) budget.missed(ctx.ip);
    if (acquired && id.route !== route) {
      const newId = formatSessionId(id.base, route);
      const replacements = new Map([[key, newId]]);
      const signer = (ctx.cookies as unknown as { keys?: Signer }).keys;
      if (signed && signer !== undefined) replacements.set(`${key}.sig`, signer.sign(`${key}=${newId}`));
      ctx.request.headers.cookie = rewriteCookieHeader(ctx.request.headers.cookie ?? '', replacements);
      const read = await manager.read(id.base);
      ctx.cookies.set(key, newId, cookieAttributes(cookie, read === undefined || read.maxAge === 'session' ? 'session' : read.expire));
      log.info({ session: shortId(id.base), from: id.route }, 'session rebound to this member');
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
      log.warn({ err: { code: err.code, message: err.message } }, 'session unavailable right now: 503, retry');
      ctx.status = 503;
      ctx.set('Retry-After', '1');
      ctx.body = 'session temporarily unavailable, retry';
    }
  };
}
