/**
 * `app.register(cluster.fastifySession, options)`: @fastify/session with the cluster's store and id
 * generator, behind the route binder, made from @fastify/session's own options so the rebound cookie
 * is named, signed (@fastify/cookie's `Signer`, every secret verifies, the first signs) and set
 * exactly as @fastify/session sets its own. Registers @fastify/cookie first when the app has not.
 *
 * Hooks, in the order Fastify runs them (the plugin is not encapsulated, like @fastify/session):
 *
 *   onRequest: route binder ─▶ @fastify/session loads ─▶ (request scope)
 *   preHandler: request scope, for the handler's regenerate/destroy/save/reload
 *   onSend: request scope, no second save after a failed one ─▶ @fastify/session saves ─▶ rebound cookie
 */
import { ClusterOptionsError, SessionUnavailableError } from '../errors.js';
import type { RouteBinding, Rebound } from '../adapter/route-binding.js';
import { UNAVAILABLE } from '../adapter/route-binding.js';
import type { SessionAccess } from '../adapter/session-access.js';
import type { CookieSettings } from '../adapter/cookie-session.js';
import { fastifyPeer, type CookieSigner } from './fastify-peer.js';
import { RequestScope, createFastifyStore } from './fastify-store.js';

/** @fastify/session's cookie options. */
export interface FastifyCookieOptions extends CookieSettings {
  secure?: boolean | 'auto';
  sameSite?: boolean | 'lax' | 'strict' | 'none';
}

/** @fastify/session's options, without `store` and `idGenerator`, which the cluster provides. */
export interface FastifySessionOptions {
  /** At least 32 characters, an array of them (the first signs, all verify), or a signer `{ sign, unsign }`. */
  secret: string | string[] | CookieSigner;
  /** The cookie's name; @fastify/session's default `sessionId`. */
  cookieName?: string;
  cookie?: FastifyCookieOptions;
  rolling?: boolean;
  saveUninitialized?: boolean;
  cookiePrefix?: string;
  algorithm?: string;
}

/** `cluster.fastifySession`: a Fastify plugin taking @fastify/session's options. */
export type FastifySessionPlugin = (instance: unknown, options: FastifySessionOptions) => Promise<void>;

/** What the cluster hands the Fastify adapter. */
export interface FastifyParts {
  access: SessionAccess;
  binding: RouteBinding;
  genid: () => string;
}

/** The parts of a Fastify instance, request and reply the plugin uses. */
interface Instance {
  hasRequestDecorator(name: string): boolean;
  register(plugin: unknown, options?: unknown): PromiseLike<unknown>;
  addHook(name: string, hook: (...args: never[]) => unknown): void;
}
interface Request {
  cookies: Record<string, string | undefined> | null;
  session?: { sessionId?: string; encryptedSessionId?: string; cookie?: { secure?: unknown; toJSON(): Record<string, unknown> } } | null;
  ip: string;
  protocol: string;
}
interface Reply {
  code(status: number): Reply;
  header(name: string, value: string): Reply;
  type(type: string): Reply;
  send(body: string): Reply;
  getHeader(name: string): unknown;
  setCookie(name: string, value: string, options: Record<string, unknown>): Reply;
}
type Done = (err?: Error) => void;

const RESERVED = ['store', 'idGenerator'] as const;

function signerOf(peer: ReturnType<typeof fastifyPeer>, o: FastifySessionOptions): CookieSigner {
  const s = o.secret as unknown;
  if (typeof s === 'string' || Array.isArray(s)) return new peer.cookie.Signer(s as string | string[], o.algorithm ?? 'sha256');
  if (typeof s === 'object' && s !== null && typeof (s as CookieSigner).sign === 'function' && typeof (s as CookieSigner).unsign === 'function') return s as CookieSigner;
  throw new ClusterOptionsError('fastifySession.secret', 'cluster.fastifySession: options.secret must be @fastify/session\'s secret: a string of 32+ characters, an array of them, or a signer { sign, unsign }');
}

function hasCookie(reply: Reply, name: string): boolean {
  const set = reply.getHeader('set-cookie');
  const all = Array.isArray(set) ? (set as unknown[]) : set === undefined ? [] : [set];
  return all.some((c) => String(c).startsWith(`${name}=`));
}

/** Makes the plugin (wrapped by fastify-plugin, so its hooks apply to the application). */
export function createFastifySession(parts: FastifyParts): FastifySessionPlugin {
  const peer = fastifyPeer('cluster.fastifySession');
  const scope = new RequestScope();
  async function clusterFastifySession(app: Instance, options: FastifySessionOptions): Promise<void> {
    if (typeof options !== 'object' || options === null) {
      throw new ClusterOptionsError('fastifySession', 'cluster.fastifySession: expected @fastify/session\'s options, with at least `secret`');
    }
    for (const k of RESERVED) {
      if (Object.hasOwn(options, k)) {
        throw new ClusterOptionsError(`fastifySession.${k}`, `cluster.fastifySession: options.${k} is set by the cluster (its replicated store and route-suffixed ids); remove it`);
      }
    }
    const signer = signerOf(peer, options);
    const name = options.cookieName ?? 'sessionId';
    const prefix = options.cookiePrefix ?? '';
    const rebound = new WeakMap<Request, Rebound>();
    if (!app.hasRequestDecorator('cookies')) await app.register(peer.cookie);

    // The route binder: before @fastify/session reads the cookie.
    app.addHook('onRequest', (request: Request, reply: Reply, done: Done) => {
      const raw = request.cookies?.[name];
      const signed = raw !== undefined && raw.startsWith(prefix) ? raw.slice(prefix.length) : undefined;
      if (signed === undefined || !parts.binding.needsBinding(signed.slice(0, signed.lastIndexOf('.')))) {
        scope.run(request, done);
        return;
      }
      const verified = signer.unsign(signed);
      parts.binding.bind(verified.valid ? (verified.value ?? undefined) : undefined, request.ip).then(
        (r) => {
          if (r !== undefined) {
            rebound.set(request, r);
            // @fastify/session loads the rebound id, and sees the cookie it will set as the one it read.
            request.cookies![name] = `${prefix}${signer.sign(r.id)}`;
          }
          scope.run(request, done);
        },
        (err: unknown) => {
          if (!(err instanceof SessionUnavailableError)) return done(err instanceof Error ? err : new Error(String(err)));
          parts.binding.unavailable(err);
          reply.code(UNAVAILABLE.status).header('Retry-After', UNAVAILABLE.retryAfter).type('text/plain; charset=utf-8').send(UNAVAILABLE.body);
        },
      );
    });
    // A save that failed makes the request an error; Fastify runs onSend again for the error's answer,
    // and @fastify/session would save again: the failed request commits nothing and sets no cookie.
    app.addHook('onSend', (request: Request, _reply: Reply, _payload: unknown, done: Done) => {
      if (scope.state(request).saveFailed) request.session = null;
      scope.run(request, done);
    });

    const store = createFastifyStore(peer.session.Store, parts.access, scope);
    await app.register(peer.session, { ...options, store, idGenerator: scope.idGenerator(parts.genid) });

    app.addHook('preHandler', (request: Request, _reply: Reply, done: Done) => scope.run(request, done));
    // After @fastify/session's onSend: a rebound session it did not save still gets its new cookie.
    app.addHook('onSend', (request: Request, reply: Reply, _payload: unknown, done: Done) => {
      const r = rebound.get(request);
      const session = request.session;
      if (r !== undefined && session?.sessionId === r.id && session.encryptedSessionId !== undefined && session.cookie !== undefined && !hasCookie(reply, name)) {
        if (!(session.cookie.secure === true && request.protocol !== 'https')) reply.setCookie(name, `${prefix}${session.encryptedSessionId}`, session.cookie.toJSON());
      }
      done();
    });
  }
  return peer.plugin(clusterFastifySession, { name: 'koa-session-cluster', fastify: '5.x' }) as unknown as FastifySessionPlugin;
}
