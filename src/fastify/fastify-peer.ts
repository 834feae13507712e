/**
 * @fastify/session, @fastify/cookie (whose `Signer` @fastify/session signs its cookie with) and
 * fastify-plugin, loaded on first use from @fastify/session's own dependencies: optional peer
 * dependencies, which a Koa application never loads. Typed by what this adapter uses.
 */
import { PeerDependencyError } from '../errors.js';
import { loadPeer } from '../adapter/optional-peer.js';

/** @fastify/cookie's signer (`value.signature`, HMAC with the first secret, every one verifies). */
export interface CookieSigner {
  sign(value: string): string;
  unsign(signed: string): { valid: boolean; renew?: boolean; value: string | null };
}

/** A Fastify plugin function, as `register` takes it. */
export type PluginFunction = (instance: never, options: never) => Promise<void> | void;

export interface FastifySessionModule {
  (instance: never, options: never, done: (err?: Error) => void): void;
  Store: new () => object;
}

export interface FastifyPeer {
  session: FastifySessionModule;
  cookie: PluginFunction & { Signer: new (secrets: string | string[], algorithm?: string) => CookieSigner };
  plugin: <T>(fn: T, meta: { name: string; fastify?: string; dependencies?: string[] }) => T;
}

let loaded: FastifyPeer | undefined;

/** @throws PeerDependencyError when @fastify/session is not installed. */
export function fastifyPeer(usedBy: string): FastifyPeer {
  if (loaded === undefined) {
    const { module, require } = loadPeer<FastifySessionModule>('@fastify/session', usedBy);
    // Resolved as @fastify/session resolves them: the Signer it signs with, the plugin helper it uses.
    const sibling = <T>(name: string): T => {
      try {
        return require(name) as T;
      } catch (err) {
        throw new PeerDependencyError(name, usedBy, { cause: err });
      }
    };
    loaded = { session: module, cookie: sibling('@fastify/cookie'), plugin: sibling('fastify-plugin') };
  }
  return loaded;
}
