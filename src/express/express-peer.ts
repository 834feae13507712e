/**
 * express-session, and the two modules it signs and reads its cookie with, loaded on first use (an
 * optional peer dependency: a Koa application never loads it). Typed by what this adapter uses.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { loadPeer } from '../adapter/optional-peer.js';

/** A Connect/Express middleware. */
export type ExpressMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** express-session's `Cookie`, as a loaded session carries it. */
export interface ExpressCookie {
  expires: Date | null | false | undefined;
  originalMaxAge: number | null | undefined;
  secure?: boolean | 'auto';
  /** What express-session passes to the `cookie` module's `serialize`. */
  readonly data: Record<string, unknown>;
  /** The Set-Cookie value for `name=val` with this cookie's attributes (the `cookie` module, as express-session uses it). */
  serialize(name: string, val: string): string;
  toJSON(): Record<string, unknown>;
}

/** express-session's `Session` (`req.session`): the request rides along, not enumerable. */
export interface ExpressSessionObject {
  readonly id: string;
  readonly req?: IncomingMessage;
  cookie: ExpressCookie;
  [key: string]: unknown;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- loose on purpose: this type must be assignable to
   @types/express-session's `Store` (whose session types this package does not depend on), so that
   `session({ store: cluster.expressStore })` type-checks in an application that has them. */
/** express-session's `Store` base class (an EventEmitter; `generate` is set on it by the middleware). */
export interface ExpressStoreBase extends EventEmitter {
  generate?(req: IncomingMessage): void;
  createSession(req: any, sess: any): any;
  regenerate(req: any, fn: (err?: any) => any): void;
  load(sid: string, fn: (err: any, session?: any) => any): void;
}

/** The store express-session calls, as this adapter makes it (an instance of express-session's `Store`). */
export interface ExpressStore extends ExpressStoreBase {
  get(sid: string, callback: (err: any, session?: any) => void): void;
  set(sid: string, session: any, callback?: (err?: any) => void): void;
  destroy(sid: string, callback?: (err?: any) => void): void;
  touch(sid: string, session: any, callback?: (err?: any) => void): void;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export interface ExpressSessionModule {
  (options: Record<string, unknown>): ExpressMiddleware;
  Store: new () => ExpressStoreBase;
}

/** cookie-signature, the signer express-session uses (`s:` + `sign(id, secret)`). */
export interface CookieSignature {
  sign(value: string, secret: string): string;
  unsign(signed: string, secret: string): string | false;
}

/** The `cookie` module express-session parses the Cookie header with. */
export interface CookieModule {
  parse(header: string): Record<string, string | undefined>;
}

export interface ExpressPeer {
  session: ExpressSessionModule;
  signature: CookieSignature;
  cookie: CookieModule;
}

let loaded: ExpressPeer | undefined;

/** @throws PeerDependencyError when express-session is not installed. */
export function expressPeer(usedBy: string): ExpressPeer {
  if (loaded === undefined) {
    const { module, require } = loadPeer<ExpressSessionModule>('express-session', usedBy);
    loaded = { session: module, signature: require('cookie-signature') as CookieSignature, cookie: require('cookie') as CookieModule };
  }
  return loaded;
}
