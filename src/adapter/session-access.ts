/**
 * The store half every framework adapter shares: read a session by id (taking it over if another
 * member holds it), write what a request changed against what it read, extend its expiry, destroy
 * it. The adapters only translate: koa-session's `_expire`/`_maxAge`, express-session's and
 * @fastify/session's `cookie`, and where each framework lets a store remember what one request read.
 */
import type { Logger } from 'pino';
import type { Replicator, SessionRead } from '../replication/replicator.js';
import type { DestroyReason } from '../replication/session-events.js';
import type { SessionEntry } from '../replication/session-table.js';
import type { Packed } from '../replication/packed-entries.js';
import { parseSessionId, shortId } from '../replication/session-id.js';
import type { SessionData } from '../codec/types.js';
import { ClusterStateError } from '../errors.js';

/** What the store tells the principal index and the session events (`Principals`). */
export interface StoreHooks {
  accessed(base: string): void;
  /** May refuse the write (the per-principal cap). */
  beforeWrite(base: string, written: SessionData): Promise<void>;
  written(e: SessionEntry): Promise<void>;
  removed(e: SessionEntry, reason: DestroyReason): Promise<void>;
}

/** When a session ends, as every copy keeps it. */
export interface SessionMeta {
  /** Epoch ms after which every copy drops the session. */
  expire: number;
  /** The framework's max age in ms, or `'session'` for a browser-session cookie. */
  maxAge: number | 'session';
}

/** Browser-session cookies have no server-side expiry in these frameworks; copies live a day unused. */
export const BROWSER_SESSION_MS = 24 * 60 * 60 * 1000;

/**
 * The meta of a session from the expiry and max age its framework gives (either may be missing):
 * neither means a browser-session cookie.
 */
export function sessionMeta(expire: number | undefined, maxAge: number | undefined, now = Date.now()): SessionMeta {
  if (maxAge === undefined && expire === undefined) return { expire: now + BROWSER_SESSION_MS, maxAge: 'session' };
  const age = maxAge ?? Math.max(0, expire! - now);
  return { expire: expire ?? now + age, maxAge: age };
}

/**
 * A touch (an expiry moved forward, no value changed) is replicated only when it moves the expiry by
 * more than this, so that a request that only reads costs no network: 1 % of the max age, at most a
 * minute. An idle session may so end up to that much before the cookie that a rolling framework
 * renewed at its last request.
 */
export function touchSlack(maxAge: number | 'session'): number {
  return maxAge === 'session' ? 60_000 : Math.min(60_000, maxAge / 100);
}

/** What an adapter's error messages tell the application to do; each framework names its own options. */
export interface AdapterHints {
  /** How to give the framework the cluster's id generator. */
  genid: string;
  /** How to install the route binder. */
  binder: string;
}

export class SessionAccess {
  readonly #manager: Replicator;
  readonly #route: string;
  readonly #isRunning: () => boolean;
  readonly #hooks: StoreHooks | undefined;
  readonly #hints: AdapterHints;
  readonly log: Logger;
  #warnedForeign = false;

  /** `isRunning` guards use before `start()` and after `stop()`. */
  constructor(manager: Replicator, route: string, logger: Logger, isRunning: () => boolean, hooks: StoreHooks | undefined, hints: AdapterHints) {
    this.#manager = manager;
    this.#route = route;
    this.#isRunning = isRunning;
    this.#hooks = hooks;
    this.#hints = hints;
    this.log = logger.child({ component: 'store' });
  }

  #ensureRunning(): void {
    if (!this.#isRunning()) throw new ClusterStateError('the session cluster is not running: await cluster.start() before serving requests');
  }

  /**
   * The session `key` names, made this member's first if another holds it. Undefined when no member
   * holds it, or when `key` is not one of ours (no session, never an error page). Throws
   * `SessionUnavailableError` when that cannot be told now. `values` are this request's own copy.
   */
  async load(key: string): Promise<SessionRead | undefined> {
    this.#ensureRunning();
    const id = parseSessionId(key);
    if (id === undefined) return undefined;
    if (!(await this.#manager.acquire(id.base))) return undefined;
    const read = await this.#manager.read(id.base);
    if (read === undefined) return undefined;
    this.#hooks?.accessed(id.base);
    return read;
  }

  #idOf(key: string): { base: string; route: string } {
    const id = parseSessionId(key);
    if (id === undefined) {
      throw new ClusterStateError(`session id "${String(key).slice(0, 12)}…" was not made by cluster.genid: ${this.#hints.genid}`);
    }
    if (id.route !== this.#route && !this.#warnedForeign) {
      this.#warnedForeign = true;
      this.log.warn({ route: id.route }, `a session bound to another member is written here: ${this.#hints.binder}`);
    }
    return id;
  }

  /**
   * Writes `data` (the whole session, as the framework hands it) with `meta`. `snapshot` is what this
   * request read (`SessionRead.snapshot`; undefined for a new session): only the keys that changed
   * against it are replicated. Resolves to the snapshot of what was committed, for a second save in
   * the same request to diff against.
   */
  async save(key: string, data: SessionData, meta: SessionMeta, snapshot: Packed | undefined): Promise<Packed> {
    this.#ensureRunning();
    const { base } = this.#idOf(key);
    await this.#hooks?.beforeWrite(base, data);
    const committed = await this.#manager.write(base, data, meta, snapshot);
    await this.#hooks?.written(committed);
    return committed.packed;
  }

  /**
   * Moves the expiry of a session whose values did not change (express-session's `touch`). Replicated
   * only past `touchSlack`; a session that exists nowhere is left alone, as express-session expects.
   */
  async touch(key: string, meta: SessionMeta): Promise<void> {
    this.#ensureRunning();
    const read = await this.load(key);
    if (read === undefined) return;
    if (read.maxAge === meta.maxAge && Math.abs(meta.expire - read.expire) <= touchSlack(meta.maxAge)) return;
    await this.save(key, read.values, meta, read.snapshot);
  }

  /** Destroys the session everywhere (logout, regenerate); nothing to do when it exists nowhere. */
  async remove(key: string, reason: DestroyReason): Promise<void> {
    this.#ensureRunning();
    const id = parseSessionId(key);
    if (id === undefined) return;
    const removed = await this.#manager.remove(id.base);
    if (removed !== undefined) await this.#hooks?.removed(removed, reason);
    this.log.debug({ session: shortId(id.base) }, 'session removed');
  }
}
