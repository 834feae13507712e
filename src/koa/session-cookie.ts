/**
 * The session cookie's settings come from one place, koa-session's own options object, so the
 * route binder's rebound cookie carries exactly the attributes koa-session sets: a cookie that
 * lost its SameSite, or a second cookie under another path or domain, would make the browser
 * keep two ids and trigger a takeover on every other request.
 */
import type { Context } from 'koa';

/** koa-session's options that shape its cookie (koa-session hands the whole object to `ctx.cookies.set`). */
export interface SessionCookieOptions {
  /** Cookie name. koa-session's default `koa.sess`. */
  key?: string;
  /** Signed with `app.keys` (a `.sig` cookie beside it). Default true. */
  signed?: boolean;
  httpOnly?: boolean;
  path?: string;
  domain?: string;
  /** Unset: secure exactly when the request is (Koa's `ctx.secure`, which honours `app.proxy`). */
  secure?: boolean;
  sameSite?: 'strict' | 'lax' | 'none' | boolean;
  partitioned?: boolean;
  priority?: 'low' | 'medium' | 'high';
  overwrite?: boolean;
  /** ms, or `'session'` for a cookie that ends with the browser session. */
  maxAge?: number | 'session';
}

/** koa-session 7's defaults for the options above (`SessionOptions.parse({})`). */
export const KOA_SESSION_COOKIE_DEFAULTS = Object.freeze({ key: 'koa.sess', signed: true, httpOnly: true, overwrite: true });

/**
 * The cookie attributes the `cookies` module reads. Only the ones present in the options are
 * passed: an explicit `path: undefined` removes the path, an absent one leaves the module's `/`.
 */
const ATTRIBUTES = ['path', 'domain', 'secure', 'httpOnly', 'sameSite', 'partitioned', 'priority', 'overwrite', 'signed'] as const;

/** Attributes for `ctx.cookies.set` (the `cookies` module also knows `partitioned`; its types do not yet). */
export type CookieSetOptions = NonNullable<Parameters<Context['cookies']['set']>[2]> & { partitioned?: boolean };

/**
 * The options of the koa-session installed on this request's app: `ctx.sessionOptions`
 * (documented by koa-session), defined on `app.context` as soon as `session(opts, app)` was made.
 */
export function sessionOptionsOf(ctx: Context): SessionCookieOptions | undefined {
  const o = (ctx as { sessionOptions?: unknown }).sessionOptions;
  return typeof o === 'object' && o !== null ? o : undefined;
}

/** Name and signing of the cookie koa-session reads. */
export function cookieName(o: SessionCookieOptions): { key: string; signed: boolean } {
  return { key: o.key ?? KOA_SESSION_COOKIE_DEFAULTS.key, signed: o.signed ?? KOA_SESSION_COOKIE_DEFAULTS.signed };
}

/**
 * What koa-session would pass to `ctx.cookies.set` for this session: its attributes, and an expiry
 * at the session's own `expire` (koa-session sets `now + maxAge` when it saves, which is what the
 * store keeps as `expire`), or none for a browser-session cookie.
 */
export function cookieAttributes(o: SessionCookieOptions, expire: number | 'session'): CookieSetOptions {
  const out: Record<string, unknown> = {};
  for (const k of ATTRIBUTES) if (Object.hasOwn(o, k)) out[k] = o[k];
  out.signed = cookieName(o).signed;
  if (expire !== 'session' && o.maxAge !== 'session') out.expires = new Date(expire);
  return out;
}
