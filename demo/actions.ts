/**
 * What the demo does for each route, without a framework: the Express and Fastify members
 * (express-app.ts, fastify-app.ts) call these with their session and answer what they return, so the
 * three demo members (app.ts is the Koa one) serve the same pages and JSON.
 */
import type { Logger } from 'pino';
import type { SessionCluster } from '../src/index.js';
import { loginPage, welcomePage, type ServedBy, type SessionRow } from './pages.js';
import { User } from './user.js';

export const MAX_CART_ITEMS = 50;

/** A request's session, as each framework gives it. */
export interface DemoSession {
  /** The session's values (undefined: no session on this request). */
  values(): Record<string, unknown> | undefined;
  /** The id the response leaves in the cookie. */
  id(): string | undefined;
  /** A new id for the same request (login: session fixation). */
  regenerate(): Promise<void>;
  /** Ends the session everywhere. */
  destroy(): Promise<void>;
}

/** An answer: a page, JSON, a redirect to the page (post/redirect/get), or an error text. */
export type DemoAnswer =
  | { status: number; html: string }
  | { status: number; json: unknown }
  | { status: 303; redirect: string }
  | { status: number; text: string };

export class DemoActions {
  readonly #cluster: SessionCluster;
  readonly #logger: Logger;
  readonly #servedBy: () => ServedBy;

  constructor(cluster: SessionCluster, logger: Logger, servedBy: () => ServedBy) {
    this.#cluster = cluster;
    this.#logger = logger;
    this.#servedBy = servedBy;
  }

  /** The logged-in user, if any. Only a `User` counts: anything else would be a replication bug. */
  user(s: DemoSession): User | undefined {
    const user = s.values()?.user;
    if (user === undefined) return undefined;
    if (user instanceof User) return user;
    this.#logger.warn({ got: typeof user }, 'session.user is not a User instance');
    return undefined;
  }

  #cart(s: DemoSession): string[] {
    const cart = s.values()?.cart;
    return Array.isArray(cart) ? cart.filter((i): i is string => typeof i === 'string') : [];
  }

  #sessionRoute(s: DemoSession): string | undefined {
    const id = s.id();
    return id === undefined ? undefined : id.slice(id.lastIndexOf('.') + 1);
  }

  #me(s: DemoSession, user: User): Record<string, unknown> {
    const route = this.#cluster.route;
    return { user: { username: user.username, since: user.since.toISOString() }, greeting: user.greeting(), cart: this.#cart(s), route, sessionRoute: this.#sessionRoute(s) };
  }

  async #rows(s: DemoSession, user: User): Promise<SessionRow[] | undefined> {
    const id = s.id();
    const current = id === undefined ? undefined : this.#cluster.handleOf(id);
    try {
      const sessions = await this.#cluster.sessionsOf(user.username);
      return sessions.map((x) => ({ route: x.route, createdAt: x.createdAt, lastAccessAt: x.lastAccessAt, current: x.handle === current }));
    } catch (err) {
      this.#logger.warn({ err }, 'could not list the user\'s sessions');
      return undefined;
    }
  }

  async page(s: DemoSession): Promise<DemoAnswer> {
    const user = this.user(s);
    if (user === undefined) return { status: 200, html: loginPage(this.#servedBy()) };
    return { status: 200, html: welcomePage({ user, cart: this.#cart(s), sessionRoute: this.#sessionRoute(s), sessions: await this.#rows(s, user) }, this.#servedBy()) };
  }

  async sessions(s: DemoSession): Promise<DemoAnswer> {
    const user = this.user(s);
    if (user === undefined) return { status: 401, text: 'log in first' };
    return { status: 200, json: { sessions: await this.#rows(s, user) } };
  }

  /** Log out everywhere but here. */
  async revokeOthers(s: DemoSession, form: boolean): Promise<DemoAnswer> {
    const user = this.user(s);
    if (user === undefined) return { status: 401, text: 'log in first' };
    const destroyed = await this.#cluster.destroySessions(user.username, { except: s.id() });
    this.#logger.info({ user: user.username, destroyed }, 'logged the other sessions out');
    return form ? { status: 303, redirect: '/' } : { status: 200, json: { destroyed, route: this.#cluster.route } };
  }

  async login(s: DemoSession, body: Record<string, unknown>, form: boolean): Promise<DemoAnswer> {
    const username = typeof body.username === 'string' ? body.username.trim() : '';
    if (username.length === 0 || username.length > 40) {
      return form
        ? { status: 400, html: loginPage(this.#servedBy(), 'Please enter a username of 1 to 40 characters.') }
        : { status: 400, text: 'expected "username": 1 to 40 characters' };
    }
    // A new session id at login, so an id planted before it (session fixation) is worth nothing.
    await s.regenerate();
    const user = new User(username, new Date());
    const values = s.values()!;
    values.user = user;
    values.cart = [];
    this.#logger.info({ user: username }, 'logged in');
    return form ? { status: 303, redirect: '/' } : { status: 200, json: this.#me(s, user) };
  }

  me(s: DemoSession): DemoAnswer {
    const user = this.user(s);
    return user === undefined ? { status: 401, json: { error: 'not logged in', route: this.#cluster.route } } : { status: 200, json: this.#me(s, user) };
  }

  cart(s: DemoSession, body: Record<string, unknown>, form: boolean): DemoAnswer {
    const user = this.user(s);
    if (user === undefined) return { status: 401, text: 'log in first' };
    const item = typeof body.item === 'string' ? body.item.trim() : '';
    if (item.length === 0 || item.length > 60) return { status: 400, text: 'expected "item": 1 to 60 characters' };
    const cart = this.#cart(s);
    if (cart.length >= MAX_CART_ITEMS) return { status: 409, text: `the cart holds at most ${MAX_CART_ITEMS} items` };
    s.values()!.cart = [...cart, item];
    return form ? { status: 303, redirect: '/' } : { status: 200, json: this.#me(s, user) };
  }

  /** Replicated as a removal: the session is gone from its backup (or every member) too. */
  async logout(s: DemoSession, form: boolean): Promise<DemoAnswer> {
    if (this.user(s) !== undefined) await s.destroy();
    return form ? { status: 303, redirect: '/' } : { status: 200, json: { loggedOut: true, route: this.#cluster.route } };
  }
}
