/**
 * The koa-session external store (`store` option): get, set and destroy by session id. It remembers
 * what each request read, so that a write replicates only the keys that request changed.
 */
import type { Logger } from 'pino';
import type { Replicator } from '../replication/replicator.js';
import type { DestroyReason } from '../replication/session-events.js';
import type { SessionEntry } from '../replication/session-table.js';
import type { Packed } from '../replication/packed-entries.js';
import { parseSessionId, shortId } from '../replication/session-id.js';
import { setOwn } from '../replication/session-value.js';
import type { SessionData } from '../codec/types.js';
import { ClusterStateError } from '../errors.js';

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

/** What the store tells the principal index and the session events (`Principals`). */
export interface StoreHooks {
  accessed(base: string): void;
  /** May refuse the write (the per-principal cap). */
  beforeWrite(base: string, written: SessionData): Promise<void>;
  written(e: SessionEntry): Promise<void>;
  removed(e: SessionEntry, reason: DestroyReason): Promise<void>;
}

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
function splitMeta(sess: Record<string, unknown>, maxAgeArg: number | 'session' | undefined): {
  data: SessionData;
  expire: number;
  maxAge: number | 'session';
} {
  const data: SessionData = {};
  for (const k of Object.keys(sess)) if (k[0] !== '_') setOwn(data, k, sess[k]);
  if (sess._session === true || maxAgeArg === 'session') {
    // Browser-session cookies have no server-side expiry in koa-session; copies live a day unused.
    return { data, expire: Date.now() + ONE_DAY, maxAge: 'session' };
  }
  const maxAge = typeof sess._maxAge === 'number' ? sess._maxAge : typeof maxAgeArg === 'number' ? maxAgeArg : ONE_DAY;
  const expire = typeof sess._expire === 'number' ? sess._expire : Date.now() + maxAge;
  return { data, expire, maxAge };
}

/** Makes the store koa-session calls. `isRunning` guards use before `start()` and after `stop()`. */
export function createSessionStore(manager: Replicator, route: string, logger: Logger, isRunning: () => boolean, hooks?: StoreHooks): KoaSessionStore {
  const log = logger.child({ component: 'store' });
  let warnedForeign = false;
  const ensureRunning = () => {
    if (!isRunning()) throw new ClusterStateError('the session cluster is not running: await cluster.start() before serving requests');
  };
  return {
    async get(key, _maxAge, { ctx }) {
      ensureRunning();
      const id = parseSessionId(key);
      if (id === undefined) return undefined; // not one of ours: no session, never an error page
      if (!(await manager.acquire(id.base))) return undefined;
      const read = await manager.read(id.base);
      if (read === undefined) return undefined;
      hooks?.accessed(id.base);
      requestReads(ctx)?.set(id.base, read.snapshot);
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
      ensureRunning();
      const id = parseSessionId(key);
      if (id === undefined) {
        throw new ClusterStateError(
          `session id "${String(key).slice(0, 12)}…" was not made by cluster.genid: pass { genid: cluster.genid } to koa-session`,
        );
      }
      if (id.route !== route && !warnedForeign) {
        warnedForeign = true;
        log.warn({ route: id.route }, 'a session bound to another member is written here: install cluster.routeBinder() before koa-session');
      }
      const { data, expire, maxAge: age } = splitMeta(sess, maxAge);
      const reads = requestReads(ctx);
      await hooks?.beforeWrite(id.base, data);
      const committed = await manager.write(id.base, data, { expire, maxAge: age }, reads?.get(id.base));
      // A second save in the same request (manuallyCommit) compares against what the first wrote.
      reads?.set(id.base, committed.packed);
      await hooks?.written(committed);
    },

    async destroy(key, { ctx }) {
      ensureRunning();
      const id = parseSessionId(key);
      if (id === undefined) return;
      requestReads(ctx)?.delete(id.base);
      const removed = await manager.remove(id.base);
      if (removed !== undefined) await hooks?.removed(removed, destroyReason(ctx));
      log.debug({ session: shortId(id.base) }, 'session removed');
    },
  };
}

