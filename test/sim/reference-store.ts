/**
 * A linearizable in-memory store shared by every member, with the real store's delta semantics
 * (only the keys a request changed against what it read are applied): what a correct cluster looks
 * like from outside. The checker must find nothing against it; with `fault` set, it breaks one
 * promise on purpose, and the checker must find that. Used only to test the checker.
 */
import type { KoaSessionStore } from '../../src/koa/session-store.js';
import { parseSessionId } from '../../src/replication/session-id.js';

export type ReferenceFault = 'none' | 'lose-writes' | 'resurrect' | 'forget-sessions' | 'phantom';

type Data = Record<string, unknown>;

export class ReferenceStore {
  readonly #sessions = new Map<string, Data>();
  readonly #destroyed = new Map<string, Data>();
  readonly #reads = new WeakMap<object, Map<string, Data>>();
  #writes = 0;
  #gets = 0;

  constructor(readonly fault: ReferenceFault = 'none') {}

  /** The store koa-session would call on one member (they all share this state). */
  storeFor(): KoaSessionStore {
    return {
      get: (key, _maxAge, { ctx }) => {
        const base = parseSessionId(key)?.base;
        if (base === undefined) return Promise.resolve(undefined);
        this.#gets++;
        let s = this.#sessions.get(base);
        if (s === undefined && this.fault === 'resurrect') s = this.#destroyed.get(base);
        if (s !== undefined && this.fault === 'forget-sessions' && this.#gets % 7 === 0) s = undefined;
        if (s === undefined) return Promise.resolve(undefined);
        if (this.fault === 'phantom' && this.#gets % 9 === 0) s = { ...s, n: 1_000_000 };
        this.#readsOf(ctx)?.set(base, { ...s });
        return Promise.resolve({ ...s, _expire: Date.now() + 86_400_000, _maxAge: 86_400_000 });
      },
      set: (key, sess, _maxAge, { ctx }) => {
        const base = parseSessionId(key)!.base;
        const read = this.#readsOf(ctx)?.get(base);
        const written: Data = {};
        for (const k of Object.keys(sess)) if (k[0] !== '_') written[k] = sess[k];
        const current = this.#sessions.get(base);
        if (current === undefined && read !== undefined) return Promise.reject(Object.assign(new Error('session gone; write refused'), { code: 'ERR_STALE_OWNER' }));
        this.#writes++;
        if (this.fault === 'lose-writes' && this.#writes % 5 === 0) return Promise.resolve();
        const next: Data = { ...(current ?? {}) };
        for (const k of Object.keys(written)) if (read === undefined || JSON.stringify(read[k]) !== JSON.stringify(written[k])) next[k] = written[k];
        for (const k of Object.keys(read ?? {})) if (!(k in written)) delete next[k];
        this.#sessions.set(base, next);
        this.#readsOf(ctx)?.set(base, { ...next });
        return Promise.resolve();
      },
      destroy: (key) => {
        const base = parseSessionId(key)?.base;
        if (base === undefined) return Promise.resolve();
        const s = this.#sessions.get(base);
        if (s !== undefined) this.#destroyed.set(base, s);
        this.#sessions.delete(base);
        return Promise.resolve();
      },
    };
  }

  #readsOf(ctx: unknown): Map<string, Data> | undefined {
    if (typeof ctx !== 'object' || ctx === null) return undefined;
    let m = this.#reads.get(ctx);
    if (m === undefined) this.#reads.set(ctx, (m = new Map()));
    return m;
  }
}
