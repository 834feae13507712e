/**
 * `cluster.expressSession(options)`: express-session with the cluster's store and id generator, behind
 * the route binder and the commit guard, made from one options object (express-session's own), so the
 * cookie rebound after a takeover is named, signed and set exactly like express-session's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ClusterOptionsError, SessionUnavailableError } from '../errors.js';
import type { RouteBinding } from '../adapter/route-binding.js';
import type { SessionAccess } from '../adapter/session-access.js';
import type { CookieSettings } from '../adapter/cookie-session.js';
import { ExpressBinder, type ExpressBinderOptions } from './express-binder.js';
import type { CommitGuard } from './commit-guard.js';
import { expressPeer, type ExpressMiddleware } from './express-peer.js';
import { createExpressStore, type ExpressStore } from './express-store.js';

/** express-session's cookie options. */
export interface ExpressCookieOptions extends CookieSettings {
  secure?: boolean | 'auto';
  sameSite?: boolean | 'lax' | 'strict' | 'none' | 'auto';
  priority?: 'low' | 'medium' | 'high';
}

/**
 * express-session's options, without `store` and `genid`, which the cluster provides. `secret` is
 * required (the binder signs the rebound cookie with its first element). `resave` and
 * `saveUninitialized` default to false, as express-session's README recommends.
 */
export interface ExpressSessionOptions extends ExpressBinderOptions {
  /** Same as `name` (express-session's older spelling). */
  key?: string;
  cookie?: ExpressCookieOptions | ((req: IncomingMessage) => ExpressCookieOptions);
  resave?: boolean;
  rolling?: boolean;
  saveUninitialized?: boolean;
  unset?: 'destroy' | 'keep';
}

/** What the cluster hands the Express adapter. */
export interface ExpressParts {
  access: SessionAccess;
  binding: RouteBinding;
  guard: CommitGuard;
  genid: (req?: unknown) => string;
}

/** Options only the cluster may set: another store or id generator would bypass replication and routes. */
const RESERVED = ['store', 'genid'] as const;

function checkSecret(secret: unknown, where: string): string | string[] {
  const ok = (s: unknown) => typeof s === 'string' && s.length > 0;
  if (ok(secret) || (Array.isArray(secret) && secret.length > 0 && secret.every(ok))) return secret as string | string[];
  throw new ClusterOptionsError(
    `${where}.secret`,
    `${where}(options): options.secret must be express-session's secret, a non-empty string or array of strings (the first signs, all verify)`,
  );
}

/** An express-session store for the two-step form (`session({ store: cluster.expressStore, genid: cluster.genid })`). */
export function makeExpressStore(parts: ExpressParts, usedBy: string): ExpressStore {
  return createExpressStore(expressPeer(usedBy).session.Store, parts.access, parts.guard);
}

/** The route binder alone, for the two-step form: place it before express-session, with the same `name`, `secret` and `proxy`. */
export function createExpressRouteBinder(parts: ExpressParts, options: ExpressBinderOptions): ExpressMiddleware {
  const secret = checkSecret(options?.secret, 'expressRouteBinder');
  return new ExpressBinder(parts.binding, expressPeer('cluster.expressRouteBinder()'), parts.guard, { ...options, secret }).middleware();
}

/** Builds express-session with the cluster's store and genid, behind the route binder and the commit guard. */
export function createExpressSession(parts: ExpressParts, options: ExpressSessionOptions): ExpressMiddleware {
  if (typeof options !== 'object' || options === null) {
    throw new ClusterOptionsError('expressSession', 'cluster.expressSession(options): expected express-session\'s options, with at least `secret`');
  }
  for (const k of RESERVED) {
    if (Object.hasOwn(options, k)) {
      throw new ClusterOptionsError(
        `expressSession.${k}`,
        `cluster.expressSession(options): options.${k} is set by the cluster (its replicated store and route-suffixed ids); remove it`,
      );
    }
  }
  const secret = checkSecret(options.secret, 'expressSession');
  const peer = expressPeer('cluster.expressSession()');
  const store = createExpressStore(peer.session.Store, parts.access, parts.guard);
  const session = peer.session({ resave: false, saveUninitialized: false, ...options, store, genid: parts.genid });
  const binder = new ExpressBinder(parts.binding, peer, parts.guard, { name: options.name ?? options.key, secret, proxy: options.proxy });
  const routeBinder = binder.middleware();
  return function clusterSession(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void {
    routeBinder(req, res, (err) => {
      if (err !== undefined) return next(err);
      session(req, res, (err2) => {
        if (err2 === undefined) return next();
        // A failed commit reaches here too, after the guard answered it: nothing more to do.
        if (parts.guard.answered(req, err2)) return;
        // Loading the session could not tell now: 503, never an empty session.
        if (err2 instanceof SessionUnavailableError && !res.headersSent) return binder.unavailable(res, err2);
        next(err2);
      });
    });
  };
}
