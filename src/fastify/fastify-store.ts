/**
 * The @fastify/session store over the adapters' store core: get, set and destroy by session id.
 * @fastify/session hands the store neither the request nor anything that leads to it, so the plugin
 * runs each request's session work inside an `AsyncLocalStorage` scope (`RequestScope`), and the store
 * finds there what the request read (to replicate only the keys it changed), whether its session is
 * being regenerated, and whether a save of it already failed.
 *
 * The session's `cookie` is kept as one key without `expires` and `originalExpires`, which are the
 * copies' own expiry; `get` puts `expires` back, and @fastify/session ends a session past it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Packed } from '../replication/packed-entries.js';
import { parseSessionId } from '../replication/session-id.js';
import type { SessionData } from '../codec/types.js';
import type { SessionAccess, SessionMeta } from '../adapter/session-access.js';
import { splitCookieSession, withCookie } from '../adapter/cookie-session.js';

type Callback<T = void> = (err?: unknown, value?: T) => void;

/** The store @fastify/session calls. */
export interface FastifyStore {
  get(sessionId: string, callback: Callback<Record<string, unknown>>): void;
  set(sessionId: string, session: Record<string, unknown>, callback: Callback): void;
  destroy(sessionId: string, callback: Callback): void;
}

/** A Fastify request, as far as the adapter looks at it. */
export interface ScopedRequest {
  session?: { sessionId?: string } | Record<string, unknown> | null;
}

/** What the adapter keeps per request. */
interface RequestState {
  /** Snapshots read, per session base. */
  reads: Map<string, Packed>;
  /** The id of the session being regenerated (its replacement's id was just generated). */
  regenerating: string | undefined;
  /** A save failed: the error response must not save it again. */
  saveFailed: boolean;
}

/** The request a piece of session work belongs to, across @fastify/session's callbacks. */
export class RequestScope {
  readonly #als = new AsyncLocalStorage<ScopedRequest>();
  readonly #states = new WeakMap<ScopedRequest, RequestState>();

  /** Runs `fn` (the rest of a hook chain) in `request`'s scope. */
  run(request: ScopedRequest, fn: () => void): void {
    this.#als.run(request, fn);
  }

  current(): ScopedRequest | undefined {
    return this.#als.getStore();
  }

  state(request: ScopedRequest): RequestState {
    let s = this.#states.get(request);
    if (s === undefined) {
      s = { reads: new Map(), regenerating: undefined, saveFailed: false };
      this.#states.set(request, s);
    }
    return s;
  }

  /** The cluster's id generator as @fastify/session calls it: notes a regenerate (a new id while a session is current). */
  idGenerator(genid: () => string): (request?: ScopedRequest) => string {
    return (request) => {
      const current = request?.session as { sessionId?: unknown } | null | undefined;
      if (request !== undefined && typeof current?.sessionId === 'string') this.state(request).regenerating = current.sessionId;
      return genid();
    };
  }
}

/** A @fastify/session `Session` minus its expiry: the values to replicate and when it ends. */
export function splitFastifySession(session: Record<string, unknown>): { data: SessionData; meta: SessionMeta } {
  return splitCookieSession(session, ['expires', 'originalExpires']);
}

function settleWith<T>(work: Promise<T | undefined>, callback: Callback<T>): void {
  work.then(
    (value) => callback(undefined, value),
    (err: unknown) => callback(err),
  );
}

export function createFastifyStore(StoreBase: new () => object, access: SessionAccess, scope: RequestScope): FastifyStore {
  class ClusterFastifyStore extends StoreBase implements FastifyStore {
    get(sessionId: string, callback: Callback<Record<string, unknown>>): void {
      const request = scope.current();
      settleWith(
        access.load(sessionId).then((read) => {
          if (read === undefined) return undefined;
          if (request !== undefined) scope.state(request).reads.set(parseSessionId(sessionId)!.base, read.snapshot);
          return withCookie(read);
        }),
        callback,
      );
    }

    set(sessionId: string, session: Record<string, unknown>, callback: Callback): void {
      const request = scope.current();
      const state = request === undefined ? undefined : scope.state(request);
      const base = parseSessionId(sessionId)?.base;
      const work = (async () => {
        const { data, meta } = splitFastifySession(session);
        // Outside a request (an application's own `store.set`): the whole session replaces what is held.
        const snapshot = base === undefined ? undefined : state !== undefined ? state.reads.get(base) : (await access.load(sessionId))?.snapshot;
        const committed = await access.save(sessionId, data, meta, snapshot);
        if (state !== undefined && base !== undefined) state.reads.set(base, committed);
      })();
      work.catch(() => {
        if (state !== undefined) state.saveFailed = true;
      });
      settleWith(work, callback);
    }

    destroy(sessionId: string, callback: Callback): void {
      const request = scope.current();
      const state = request === undefined ? undefined : scope.state(request);
      const base = parseSessionId(sessionId)?.base;
      // An id this request neither read nor saved was generated by it (a new session regenerated at
      // login): stored nowhere, so nothing to ask the cluster.
      if (state !== undefined && base !== undefined && !state.reads.delete(base)) {
        setImmediate(() => callback());
        return;
      }
      const reason = state?.regenerating === sessionId ? 'regenerate' : 'logout';
      settleWith(access.remove(sessionId, reason), callback);
    }
  }
  return new ClusterFastifyStore();
}
