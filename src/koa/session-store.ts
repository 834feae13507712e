/**
 * The koa-session external store (`store` option): get, set and destroy by session id, over the
 * adapters' shared store core (`adapter/session-access.ts`). It remembers what each request read
 * (koa-session hands the store `ctx`), so that a write replicates only the keys that request changed.
 */
import type { Logger } from 'pino';
import type { Replicator } from '../replication/replicator.js';
import type { DestroyReason } from '../replication/session-events.js';
import type { Packed } from '../replication/packed-entries.js';
import { parseSessionId } from '../replication/session-id.js';
import { setOwn } from '../replication/session-value.js';
import type { SessionData } from '../codec/types.js';
import { SessionAccess, sessionMeta, type SessionMeta, type StoreHooks } from '../adapter/session-access.js';

export type { StoreHooks } from '../adapter/session-access.js';

/** koa-session's external store interface, as it calls it. */
export interface KoaSessionStore {
  get(key: string, maxAge: number | 'session' | undefined, data: { rolling: boolean; ctx?: unknown }): Promise<unknown>;
  set(
    key: string,
    sess: Record<string, unknown>,
    maxAge: number | 'session' | undefined,
    data: { rolling: boolean; changed: boolean; ctx?: unknown },
  ): Promise<void>;
  destroy(key: string, data: { ctx?: unknown }): Promise<void>;
}

const ONE_DAY = 24 * 60 * 60 * 1000;

/** koa-session calls `destroy` for `ctx.session = null` (the session reads null then) and for `regenerate()`. */
function destroyReason(ctx: unknown): DestroyReason {
  const s = typeof ctx === 'object' && ctx !== null ? (ctx as { session?: unknown }).session : undefined;
  return s !== null && s !== undefined ? 'regenerate' : 'logout';
}

/** What one request read (its encoded snapshot), per session base. */
const readsByRequest = new WeakMap<object, Map<string, Packed>>();

function requestReads(ctx: unknown): Map<string, Packed> | undefined {
  if (typeof ctx !== 'object' || ctx === null) return undefined;
  let reads = readsByRequest.get(ctx);
  if (reads === undefined) {
    reads = new Map();
    readsByRequest.set(ctx, reads);
  }
  return reads;
}

/** Splits koa-session's bookkeeping keys (`_expire`, `_maxAge`, `_session`) from the user's data. */
function splitMeta(sess: Record<string, unknown>, maxAgeArg: number | 'session' | undefined): { data: SessionData; meta: SessionMeta } {
  const data: SessionData = {};
  for (const k of Object.keys(sess)) if (k[0] !== '_') setOwn(data, k, sess[k]);
  if (sess._session === true || maxAgeArg === 'session') return { data, meta: sessionMeta(undefined, undefined) };
  const maxAge = typeof sess._maxAge === 'number' ? sess._maxAge : typeof maxAgeArg === 'number' ? maxAgeArg : ONE_DAY;
  return { data, meta: sessionMeta(typeof sess._expire === 'number' ? sess._expire : undefined, maxAge) };
}

/** Makes the store koa-session calls. `isRunning` guards use before `start()` and after `stop()`. */
export function createSessionStore(manager: Replicator, route: string, logger: Logger, isRunning: () => boolean, hooks?: StoreHooks): KoaSessionStore {
  const access = new SessionAccess(manager, route, logger, isRunning, hooks, {
    genid: 'pass { genid: cluster.genid } to koa-session',
    binder: 'install cluster.routeBinder() before koa-session',
  });
  return {
    async get(key, _maxAge, { ctx }) {
      const read = await access.load(key);
      if (read === undefined) return undefined;
      requestReads(ctx)?.set(parseSessionId(key)!.base, read.snapshot);
      // Decoded for this request alone: koa-session and the application may change them freely.
      const out = read.values;
      if (read.maxAge === 'session') out._session = true;
      else {
        out._expire = read.expire;
        out._maxAge = read.maxAge;
      }
      return out;
    },

    async set(key, sess, maxAge, { ctx }) {
      const { data, meta } = splitMeta(sess, maxAge);
      const reads = requestReads(ctx);
      const base = parseSessionId(key)?.base;
      const committed = await access.save(key, data, meta, base === undefined ? undefined : reads?.get(base));
      // A second save in the same request (manuallyCommit) compares against what the first wrote.
      if (base !== undefined) reads?.set(base, committed);
    },

    async destroy(key, { ctx }) {
      const base = parseSessionId(key)?.base;
      if (base !== undefined) requestReads(ctx)?.delete(base);
      await access.remove(key, destroyReason(ctx));
    },
  };
}
