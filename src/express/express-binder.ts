/**
 * The route binder for express-session: reads its cookie as express-session does (the `cookie`
 * module's parse, `s:` + cookie-signature, every secret tried in turn, so secrets rotate), takes the
 * session over through the shared `RouteBinding`, and hands express-session the rebound id, signed with
 * the first secret, in the request's Cookie header. The response gets the rebound cookie with the
 * session's own cookie settings (`req.session.cookie`, express-session's serializer), unless
 * express-session sets one itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SessionUnavailableError } from '../errors.js';
import { UNAVAILABLE, rewriteCookieHeader, type Rebound, type RouteBinding } from '../adapter/route-binding.js';
import type { CommitGuard } from './commit-guard.js';
import type { ExpressMiddleware, ExpressPeer, ExpressSessionObject } from './express-peer.js';

/** The express-session options the binder needs (the same values given to express-session). */
export interface ExpressBinderOptions {
  /** The session cookie's name; express-session's default `connect.sid`. */
  name?: string;
  /** express-session's `secret`: the first signs, every one verifies. */
  secret: string | string[];
  /** express-session's `proxy`: trust `X-Forwarded-Proto` for `secure` cookies. */
  proxy?: boolean;
}

/** express-session's default cookie name. */
export const EXPRESS_SESSION_COOKIE = 'connect.sid';

type SessionRequest = IncomingMessage & { sessionID?: string; session?: ExpressSessionObject | null; ip?: string; secure?: boolean };

/** Whether the request came over TLS, as express-session decides it (its `issecure`). */
function isSecure(req: SessionRequest, trustProxy: boolean | undefined): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted === true) return true;
  if (trustProxy === false) return false;
  if (trustProxy !== true) return req.secure === true;
  const header = req.headers['x-forwarded-proto'];
  const first = (Array.isArray(header) ? header[0] : header ?? '').split(',')[0];
  return first.trim().toLowerCase() === 'https';
}

function hasCookie(res: ServerResponse, name: string): boolean {
  const set = res.getHeader('Set-Cookie');
  const all = Array.isArray(set) ? set : set === undefined ? [] : [String(set)];
  return all.some((c) => c.startsWith(`${name}=`));
}

export class ExpressBinder {
  readonly #binding: RouteBinding;
  readonly #peer: ExpressPeer;
  readonly #guard: CommitGuard;
  readonly #name: string;
  readonly #secrets: string[];
  readonly #proxy: boolean | undefined;

  constructor(binding: RouteBinding, peer: ExpressPeer, guard: CommitGuard, options: ExpressBinderOptions) {
    this.#binding = binding;
    this.#peer = peer;
    this.#guard = guard;
    this.#name = options.name ?? EXPRESS_SESSION_COOKIE;
    this.#secrets = Array.isArray(options.secret) ? options.secret : [options.secret];
    this.#proxy = options.proxy;
  }

  /** The session id in the request's cookie, signature checked with every secret; undefined if none verifies. */
  #verify(signed: string): string | undefined {
    for (const secret of this.#secrets) {
      const id = this.#peer.signature.unsign(signed, secret);
      if (id !== false) return id;
    }
    return undefined;
  }

  async #bind(req: SessionRequest): Promise<Rebound | undefined> {
    const header = req.headers.cookie;
    if (header === undefined) return undefined;
    const raw = this.#peer.cookie.parse(header)[this.#name];
    // express-session ignores unsigned values: no session, nothing to bind.
    if (raw === undefined || !raw.startsWith('s:')) return undefined;
    const signed = raw.slice(2);
    if (!this.#binding.needsBinding(signed.slice(0, signed.lastIndexOf('.')))) return undefined;
    const rebound = await this.#binding.bind(this.#verify(signed), req.ip ?? req.socket.remoteAddress ?? '');
    if (rebound !== undefined) {
      const value = encodeURIComponent(`s:${this.#peer.signature.sign(rebound.id, this.#secrets[0])}`);
      req.headers.cookie = rewriteCookieHeader(header, new Map([[this.#name, value]]));
    }
    return rebound;
  }

  /** Adds the rebound cookie, as express-session's would read, unless the session changed id or express-session set one. */
  #reboundCookie(req: SessionRequest, res: ServerResponse, id: string): void {
    const session = req.session;
    if (req.sessionID !== id || session == null || hasCookie(res, this.#name)) return;
    if (session.cookie.secure === true && !isSecure(req, this.#proxy)) return;
    const cookie = session.cookie.serialize(this.#name, `s:${this.#peer.signature.sign(id, this.#secrets[0])}`);
    const prev = res.getHeader('Set-Cookie');
    res.setHeader('Set-Cookie', prev === undefined ? [cookie] : [...(Array.isArray(prev) ? prev : [String(prev)]), cookie]);
  }

  /** Answers 503 with Retry-After: the session may exist but cannot be served now. */
  unavailable(res: ServerResponse, err: SessionUnavailableError): void {
    this.#binding.unavailable(err);
    res.statusCode = UNAVAILABLE.status;
    res.setHeader('Retry-After', UNAVAILABLE.retryAfter);
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.end(UNAVAILABLE.body);
  }

  /** The middleware, placed before express-session. */
  middleware(): ExpressMiddleware {
    return (req: SessionRequest, res, next) => {
      this.#bind(req).then(
        (rebound) => {
          this.#guard.install(req, res, rebound === undefined ? undefined : () => this.#reboundCookie(req, res, rebound.id));
          next();
        },
        (err: unknown) => {
          if (err instanceof SessionUnavailableError) this.unavailable(res, err);
          else next(err);
        },
      );
    };
  }
}
