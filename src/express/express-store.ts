/**
 * The express-session `Store` over the adapters' store core: get, set, destroy and touch by session
 * id, plus `regenerate` and `createSession` (express-session's own Store methods, extended, not
 * replaced). express-session hands `set` the whole session; to replicate only the keys a request
 * changed, the store remembers what each request read: `get` has no request, but express-session
 * passes what `get` returned to `createSession(req, sess)` right after, and every later `set` gets
 * `req.session`, which carries its request.
 *
 * The session's `cookie` is kept as one key without its `expires`, which is the copies' own expiry
 * (so a touch moves no value); `get` puts it back.
 */
import type { IncomingMessage } from 'node:http';
import type { Packed } from '../replication/packed-entries.js';
import { parseSessionId } from '../replication/session-id.js';
import type { SessionData } from '../codec/types.js';
import type { SessionAccess, SessionMeta } from '../adapter/session-access.js';
import { splitCookieSession, withCookie } from '../adapter/cookie-session.js';
import type { DestroyReason } from '../replication/session-events.js';
import type { CommitGuard } from './commit-guard.js';
import type { ExpressSessionObject, ExpressStore, ExpressStoreBase } from './express-peer.js';

export type { ExpressStore } from './express-peer.js';

type Callback<T = void> = (err?: unknown, value?: T) => void;

/** What one request read (its encoded snapshot), per session base. */
const readsByRequest = new WeakMap<object, Map<string, Packed>>();

function readsOf(req: object): Map<string, Packed> {
  let reads = readsByRequest.get(req);
  if (reads === undefined) {
    reads = new Map();
    readsByRequest.set(req, reads);
  }
  return reads;
}

/** express-session's session minus its expiry: the values to replicate and when it ends. */
export function splitExpressSession(sess: Record<string, unknown>): { data: SessionData; meta: SessionMeta } {
  return splitCookieSession(sess, ['expires']);
}

/** Calls `callback` with the outcome of `work`, never synchronously and never twice. */
function settleWith<T>(work: Promise<T | undefined>, callback: Callback<T> | undefined, after?: (err?: unknown) => void): void {
  work.then(
    (value) => {
      after?.();
      callback?.(undefined, value);
    },
    (err: unknown) => {
      after?.(err);
      callback?.(err);
    },
  );
}

/** Makes a store instance; each express-session middleware needs its own (it sets `generate` on it). */
export function createExpressStore(StoreBase: new () => ExpressStoreBase, access: SessionAccess, guard: CommitGuard): ExpressStore {
  /** What `get` returned, until express-session hands it to `createSession` with its request. */
  const loaded = new WeakMap<object, { base: string; snapshot: Packed }>();

  class ClusterExpressStore extends StoreBase implements ExpressStore {
    get(sid: string, callback: Callback<Record<string, unknown>>): void {
      settleWith(
        access.load(sid).then((read) => {
          if (read === undefined) return undefined;
          const sess = withCookie(read);
          loaded.set(sess, { base: parseSessionId(sid)!.base, snapshot: read.snapshot });
          return sess;
        }),
        callback,
      );
    }

    override createSession(req: IncomingMessage, sess: Record<string, unknown>): ExpressSessionObject {
      const read = loaded.get(sess);
      if (read !== undefined) readsOf(req).set(read.base, read.snapshot);
      return super.createSession(req, sess) as ExpressSessionObject;
    }

    set(sid: string, session: Record<string, unknown>, callback?: Callback): void {
      const req = (session as Partial<ExpressSessionObject>).req;
      const base = parseSessionId(sid)?.base;
      const { data, meta } = splitExpressSession(session);
      guard.begin(req);
      const work = (async () => {
        // Called without a request (an application's own `store.set`): the whole session replaces
        // what is held, as a store's `set` does.
        const snapshot = base === undefined ? undefined : req !== undefined ? readsOf(req).get(base) : (await access.load(sid))?.snapshot;
        const committed = await access.save(sid, data, meta, snapshot);
        // A second save in the same request compares against what the first wrote.
        if (req !== undefined && base !== undefined) readsOf(req).set(base, committed);
      })();
      settleWith(work, callback, (err) => guard.settle(req, err));
    }

    touch(sid: string, session: Record<string, unknown>, callback?: Callback): void {
      const req = (session as Partial<ExpressSessionObject>).req;
      guard.begin(req);
      settleWith(access.touch(sid, splitExpressSession(session).meta), callback, (err) => guard.settle(req, err));
    }

    destroy(sid: string, callback?: Callback): void {
      this.#destroy(sid, 'logout', guard.requestDestroying(sid), callback);
    }

    #destroy(sid: string, reason: DestroyReason, req: IncomingMessage | undefined, callback?: Callback): void {
      const base = parseSessionId(sid)?.base;
      if (req !== undefined && base !== undefined) {
        // An id this request neither read nor saved was generated by it (express-session's login
        // example regenerates a new session too): stored nowhere, so nothing to ask the cluster.
        if (!readsOf(req).delete(base)) {
          setImmediate(() => callback?.());
          return;
        }
      }
      guard.begin(req);
      settleWith(access.remove(sid, reason), callback, (err) => guard.settle(req, err));
    }

    /** express-session's own `regenerate` (destroy, then a new session), telling the events why. */
    override regenerate(req: IncomingMessage, fn: (err?: unknown) => void): void {
      const sid = (req as IncomingMessage & { sessionID?: string }).sessionID ?? '';
      this.#destroy(sid, 'regenerate', req, (err) => {
        this.generate?.(req);
        fn(err);
      });
    }
  }
  return new ClusterExpressStore();
}
