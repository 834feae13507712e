/** The part of koa-redis 4 (CommonJS, no bundled types) that the bench app uses. */
declare module 'koa-redis' {
  interface RedisStore {
    get(key: string, maxAge?: unknown, data?: unknown): Promise<unknown>;
    set(key: string, sess: unknown, maxAge?: number | 'session', data?: unknown): Promise<void>;
    destroy(key: string, data?: unknown): Promise<void>;
    quit(): Promise<void>;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }
  function redisStore(options: { host?: string; port?: number; enableOfflineQueue?: boolean; lazyConnect?: boolean }): RedisStore;
  export = redisStore;
}
