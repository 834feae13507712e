/**
 * The framework-free half of the route binder (Tomcat's JvmRouteBinderValve): from the session id a
 * request carries, decide whether this member must take the session over, take it over, and name its
 * new id. Each framework's adapter only reads its own cookie (checking the signature the way that
 * framework does) and writes the rebound one, signed the same way.
 */
import type { Logger } from 'pino';
import type { Replicator } from '../replication/replicator.js';
import { formatSessionId, parseSessionId, shortId } from '../replication/session-id.js';
import { SessionCapacityError, SessionUnavailableError } from '../errors.js';
import { LookupBudget } from './lookup-budget.js';

/** What a request's session became when this member took it over from another route. */
export interface Rebound {
  /** The new id, `<base>.<this route>`. */
  id: string;
  /** The session's expiry (epoch ms), or `'session'` for a browser-session cookie. */
  expire: number | 'session';
}

/** Misses per client address before the binder answers 503 instead of asking the cluster. */
export interface UnknownIdBudget {
  burst: number;
  perSecond: number;
}

/** What every adapter answers when a session cannot be told present or absent right now (promise 3). */
export const UNAVAILABLE = Object.freeze({ status: 503, retryAfter: '1', body: 'session temporarily unavailable, retry' });

/** Whether the request came through a proxy the app does not trust, and the setting that would. */
export interface ProxyHint {
  forwardedUntrusted: boolean;
  /** E.g. `app.proxy = true` (Koa), `app.set('trust proxy', …)` (Express). */
  setting: string;
}

export class RouteBinding {
  #warnedProxy = false;
  readonly #manager: Replicator;
  readonly #route: string;
  readonly #budget: LookupBudget;
  /** The binder's logger (component `route-binder`), for the adapters' own lines too. */
  readonly log: Logger;

  constructor(manager: Replicator, route: string, logger: Logger, unknownIds: UnknownIdBudget = { burst: 100, perSecond: 20 }) {
    this.#manager = manager;
    this.#route = route;
    this.#budget = new LookupBudget(unknownIds);
    this.log = logger.child({ component: 'route-binder' });
  }

  /**
   * Whether a request carrying `unverified` (the cookie's id, its signature not checked yet) needs the
   * binder: a well-formed id that this member does not serve. The common case, a session served here,
   * costs no signature check: the framework checks it right after. Only a takeover, which moves data,
   * needs the signature checked first.
   */
  needsBinding(unverified: string | undefined): boolean {
    const id = parseSessionId(unverified);
    return id !== undefined && !(id.route === this.#route && this.#manager.isPrimary(id.base));
  }

  /**
   * Makes this member the primary of the session `verified` names (an id whose signature the adapter
   * checked). Resolves with its new id when it was bound to another route, undefined when there is
   * nothing to rebind: malformed, unsigned or unknown ids are the framework's "no session", never an
   * error page. Throws `SessionUnavailableError` when that cannot be told now, or when `source` (the
   * client's address) sent too many ids nobody holds.
   */
  async bind(verified: string | undefined, source: string, proxied?: ProxyHint): Promise<Rebound | undefined> {
    const id = parseSessionId(verified);
    if (id === undefined) return undefined;
    // A source that sent many ids nobody holds is asked about only where the ring puts the session (one
    // or two members): a session that failed over is found there, a random id costs the cluster little.
    if (!this.#budget.allows(source) && !(await this.#manager.heldWhereExpected(id.base, id.route))) {
      if (!this.#warnedProxy && proxied?.forwardedUntrusted === true) {
        this.#warnedProxy = true;
        this.log.warn({ ip: source, setting: proxied.setting }, `requests carry X-Forwarded-For but the app does not trust it: every client behind the balancer shares one budget of unknown session ids; set ${proxied.setting}`);
      }
      throw new SessionUnavailableError(`session ${shortId(id.base)}…: too many unknown sessions from ${source}; retry later`);
    }
    const acquired = await this.#manager.acquire(id.base);
    if (!acquired) {
      this.#budget.missed(source);
      return undefined;
    }
    if (id.route === this.#route) return undefined;
    const read = await this.#manager.read(id.base);
    this.log.info({ session: shortId(id.base), from: id.route }, 'session rebound to this member');
    return { id: formatSessionId(id.base, this.#route), expire: read === undefined || read.maxAge === 'session' ? 'session' : read.expire };
  }

  /**
   * Logs a request answered 503: the session may exist but cannot be served now (moving, owner
   * suspected, this member stopping). 503 with Retry-After makes a balancer or browser retry, where an
   * empty session would make the framework hand out a new cookie and log the user out for good.
   */
  unavailable(err: SessionUnavailableError): void {
    // A flood's refusals are logged by the capacity, at most once per 10 s per reason.
    if (err instanceof SessionCapacityError) return;
    this.log.warn({ err: { code: err.code, message: err.message } }, 'session unavailable right now: 503, retry');
  }
}

/** Replaces (or adds) cookies in a Cookie request header, so the framework reads the rebound id. */
export function rewriteCookieHeader(header: string, replacements: ReadonlyMap<string, string>): string {
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
