/**
 * Sessions by user: the principal index, `sessionsOf`, `destroySessions`, the per-principal cap and
 * the session events. It sits beside the replication manager and uses only its public request path
 * (`remove`) and its session table, so the managers' protocol code carries no hook for it.
 *
 * The index is soft state, rebuilt from the sessions themselves: every owner announces its sessions
 * (principal, route, epoch, times) to the principal's first two members in ring order, at once after a
 * write that sets or changes the principal, and from a once-a-second diff of what it owns against
 * what it announced (new owners after takeovers and adoptions, principals that changed, sessions that
 * ended, expiries and last accesses that moved by `INDEX_REFRESH_MS`). After any membership change it
 * announces everything again to the holders of the new ring. A lookup asks both holders and merges:
 * after one member fails, the other still holds what was announced before. `destroySessions` does
 * not trust the index alone: it asks every live member (see `#scan`).
 */
import type { Logger } from 'pino';
import type { ClusterChannel } from '../cluster/types.js';
import { messages, type IndexItem } from '../codec/messages.js';
import type { SessionData } from '../codec/types.js';
import { SessionLimitError, SessionUnavailableError } from '../errors.js';
import { owners } from '../ring/index.js';
import type { Clock } from './clock.js';
import { MSG } from './message-types.js';
import { INDEX_REFRESH_MS, PrincipalIndex, mergeItems, notDestroyed } from './principal-index.js';
import type { Replicator } from './replicator.js';
import { expiryReason, firesExpiry, type DestroyReason, type SessionEvent, type SessionEvents } from './session-events.js';
import { sessionHandle } from './session-handle.js';
import { parseSessionId, shortId } from './session-id.js';
import { principalOf } from './session-policy.js';
import type { SessionEntry } from './session-table.js';

/** One of a principal's sessions, as `cluster.sessionsOf` lists it. */
export interface PrincipalSession {
  /** Stable, non-secret name of the session (a keyed hash of its id): never usable as a cookie. */
  handle: string;
  /** The member serving it. */
  route: string;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms of the last request that used it (to within `INDEX_REFRESH_MS`, 10 s). */
  lastAccessAt: number;
  /** Epoch ms when it ends unless used again (to within 10 s). */
  expiresAt: number;
}

export interface PrincipalsOptions {
  manager: Replicator;
  channel: ClusterChannel;
  route: string;
  clock: Clock;
  logger: Logger;
  handleKey: Buffer;
  ackTimeout: number;
  maxSessionsPerPrincipal: number | undefined;
  onSessionLimit: 'destroy-oldest' | 'refuse';
  absoluteMaxAge: number | undefined;
  emit: (name: keyof SessionEvents, event: SessionEvent) => void;
}

/** What this owner last announced of one session. */
interface Announced {
  principal: string;
  epoch: number;
  expire: number;
  lastAccessAt: number;
  /** Membership generation it was announced under: a change re-announces to the new holders. */
  generation: number;
}

const TICK_MS = 1000;
/** Announcements per tick at most (the rest wait for the next one). */
const TICK_BATCH = 2000;
/** Attempts of one removal answered 503 (the session moving, a member just gone) before giving up. */
const REMOVE_ATTEMPTS = 5;
/** Lookup rounds of `destroySessions`: sessions created while it runs are destroyed too. */
const DESTROY_ROUNDS = 3;

export class Principals {
  readonly #o: PrincipalsOptions;
  readonly #log: Logger;
  readonly #index = new PrincipalIndex();
  readonly #announced = new Map<string, Announced>();
  readonly #lastAccess = new Map<string, number>();
  #generation = 0;
  #ticking = false;
  #timer: unknown;

  constructor(options: PrincipalsOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'principals' });
  }

  /** Registers the index handlers and the expiry hook; starts the announcer. Before the channel starts. */
  install(): void {
    const { channel, manager, clock } = this.#o;
    channel.handle(MSG.indexAnnounce, (_from, body) => {
      const now = clock.now();
      for (const item of messages.indexAnnounce.decode(body).items) this.#index.apply(item, now);
      return messages.applyReply.encode({ status: 'OK', epoch: 0, owner: '' });
    });
    channel.handle(MSG.indexLookup, (_from, body) =>
      messages.indexLookupReply.encode({ items: this.#heldItems(messages.indexLookup.decode(body).principal) }),
    );
    const changed = () => this.#generation++;
    channel.on('member-added', changed);
    channel.on('member-removed', changed);
    manager.table.onExpire = (e) => this.#expired(e);
    this.#timer = clock.setInterval(() => void this.#tick(), TICK_MS);
  }

  close(): void {
    if (this.#timer !== undefined) this.#o.clock.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  handleOf(base: string): string {
    return sessionHandle(this.#o.handleKey, base);
  }

  // --- The request path (called by the koa-session store) ---

  /**
   * A request read the session here. Only sessions in the index keep a last access: kept for every
   * session, the map grew to all of them and its once-a-second clean-up walked them all.
   */
  accessed(base: string): void {
    if (this.#announced.has(base)) this.#lastAccess.set(base, this.#o.clock.now());
  }

  /**
   * Before a write that may give the session a principal: enforces `maxSessionsPerPrincipal`
   * (`refuse`: throws `SessionLimitError`; `destroy-oldest`: destroys the oldest others first).
   */
  async beforeWrite(base: string, written: SessionData): Promise<void> {
    const { maxSessionsPerPrincipal: max, manager } = this.#o;
    if (max === undefined) return;
    const p = principalOf(manager.policy, written);
    if (p === undefined || manager.table.get(base)?.principal === p) return;
    const others = (await this.#find(p)).filter((x) => x.base !== base).sort((a, b) => a.createdAt - b.createdAt);
    if (others.length < max) return;
    if (this.#o.onSessionLimit === 'refuse') throw new SessionLimitError(max);
    for (const x of others.slice(0, others.length - max + 1)) await this.#destroy(x.base, 'limit');
  }

  /** After a committed write: the creation event, and the index told at once of a new principal. */
  async written(e: SessionEntry): Promise<void> {
    const now = this.#o.clock.now();
    if (e.principal !== undefined || this.#announced.has(e.base)) this.#lastAccess.set(e.base, now);
    if (e.version === 1 && e.epoch === 1) this.#fire('sessionCreated', e, 'created');
    const a = this.#announced.get(e.base);
    if (e.principal === a?.principal && a?.epoch === e.epoch) return;
    await this.#announce(this.#itemsFor(e, a, now));
  }

  /** After a destruction by a request (logout, regenerate): the event, and the index told at once. */
  async removed(e: SessionEntry, reason: DestroyReason): Promise<void> {
    this.#fire('sessionDestroyed', e, reason);
    const a = this.#announced.get(e.base);
    this.#lastAccess.delete(e.base);
    if (a !== undefined || e.principal !== undefined) {
      await this.#announce([this.#item(a?.principal ?? e.principal!, e, 'gone', this.#o.clock.now())]);
    }
  }

  // --- The public API ---

  /** `cluster.sessionsOf`: the principal's live sessions on every member, oldest first. */
  async sessionsOf(principal: string): Promise<PrincipalSession[]> {
    return (await this.#find(principal))
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((x) => ({ handle: this.handleOf(x.base), route: x.route, createdAt: x.createdAt, lastAccessAt: x.lastAccessAt, expiresAt: x.expire }));
  }

  /** `cluster.destroySessions`: destroys each of the principal's sessions but `except` (a handle or a session id). */
  async destroySessions(principal: string, except?: string): Promise<number> {
    const keepId = except === undefined ? undefined : parseSessionId(except);
    const keep = keepId === undefined ? except : this.handleOf(keepId.base);
    const tried = new Set<string>();
    let destroyed = 0;
    for (let round = 0; round < DESTROY_ROUNDS; round++) {
      const targets = (await this.#scan(principal)).filter((x) => !tried.has(x.base) && this.handleOf(x.base) !== keep);
      if (targets.length === 0) break;
      for (const x of targets) {
        tried.add(x.base);
        if (await this.#destroy(x.base, 'revoked')) destroyed++;
      }
    }
    return destroyed;
  }

  // --- Index lookups ---

  /** The principal's two index holders (routes), in ring order over the live members. */
  #holders(principal: string): string[] {
    const live = [this.#o.route, ...this.#o.channel.members().map((m) => m.route)];
    return owners(principal, live).slice(0, 2);
  }

  /** What this member can say of `principal`: its index entries and the sessions it holds itself. */
  #heldItems(principal: string): IndexItem[] {
    const now = this.#o.clock.now();
    const own = this.#o.manager.table.entries().filter((e) => e.principal === principal);
    return [...this.#index.lookup(principal, now), ...own.map((e) => this.#item(principal, e, 'live', now, e.owner))];
  }

  /** Both holders' answers (and this member's), merged; 503 when neither holder answered. */
  async #find(principal: string): Promise<IndexItem[]> {
    const { channel, route, ackTimeout } = this.#o;
    const answers = await Promise.all(
      this.#holders(principal).map(async (r) => {
        if (r === route) return this.#heldItems(principal);
        const m = channel.members().find((x) => x.route === r);
        if (m === undefined) return undefined;
        try {
          const raw = await channel.request(m.id, MSG.indexLookup, messages.indexLookup.encode({ principal }), { timeoutMs: ackTimeout });
          return messages.indexLookupReply.decode(raw).items;
        } catch (err) {
          this.#log.debug({ err, holder: r }, 'an index holder did not answer');
          return undefined;
        }
      }),
    );
    const found = answers.filter((x): x is IndexItem[] => x !== undefined);
    if (found.length === 0) throw new SessionUnavailableError(`the sessions of a user cannot be listed now: no index holder answered; retry`);
    return this.#withOwn(principal, found);
  }

  /**
   * Every live member's answer (its index entries and the sessions it holds, copies included), for a
   * destruction that must miss nothing: the index alone can lack a session whose announcement did not
   * get through (its owner cut off the moment after the login). 503 when a member does not answer or
   * when the members that cannot be asked may hold every copy of some session.
   */
  async #scan(principal: string): Promise<IndexItem[]> {
    const { channel, ackTimeout, manager } = this.#o;
    const doubt = manager.scanDoubt();
    if (doubt !== undefined) throw new SessionUnavailableError(`the sessions of a user cannot all be found now: ${doubt}; retry`);
    const body = messages.indexLookup.encode({ principal });
    const answers = await Promise.all(
      channel.members().map(async (m) => {
        try {
          return messages.indexLookupReply.decode(await channel.request(m.id, MSG.indexLookup, body, { timeoutMs: ackTimeout })).items;
        } catch (err) {
          throw new SessionUnavailableError(`the sessions of a user cannot all be found now: member ${m.route} did not answer; retry`, { cause: err });
        }
      }),
    );
    return this.#withOwn(principal, answers);
  }

  /** Others' answers merged with this member's own; a session destroyed here since (at its epoch) stays destroyed. */
  #withOwn(principal: string, answers: IndexItem[][]): IndexItem[] {
    const table = this.#o.manager.table;
    return notDestroyed(mergeItems([...answers, this.#heldItems(principal)]), (base) => {
      const t = table.tombstone(base);
      return t?.kind === 'removed' ? t.epoch : undefined;
    });
  }

  /** Destroys one session through the request path (durable as a logout); false when it existed nowhere. */
  async #destroy(base: string, reason: DestroyReason): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        const e = await this.#o.manager.remove(base);
        if (e === undefined) return false;
        await this.removed(e, reason);
        return true;
      } catch (err) {
        if (!(err instanceof SessionUnavailableError) || attempt >= REMOVE_ATTEMPTS) throw err;
        this.#log.debug({ err, session: shortId(base), attempt }, 'a session to destroy is unavailable now; retrying');
        await new Promise<void>((resolve) => this.#o.clock.setTimeout(resolve, 200 * attempt));
      }
    }
  }

  // --- Announcing ---

  #item(principal: string, e: SessionEntry, kind: IndexItem['kind'], now: number, route = this.#o.route): IndexItem {
    return {
      principal,
      base: e.base,
      kind,
      route,
      epoch: e.epoch,
      createdAt: e.createdAt ?? now,
      lastAccessAt: this.#lastAccess.get(e.base) ?? e.createdAt ?? now,
      expire: e.expire,
    };
  }

  /** What to announce of an owned session against what was announced (`a`). */
  #itemsFor(e: SessionEntry, a: Announced | undefined, now: number): IndexItem[] {
    const items: IndexItem[] = [];
    if (a !== undefined && a.principal !== e.principal) items.push(this.#item(a.principal, e, 'unlisted', now));
    if (e.principal !== undefined) items.push(this.#item(e.principal, e, 'live', now));
    return items;
  }

  /**
   * Sends items to their principals' holders and records what every holder of an item acknowledged;
   * the rest is announced again at the next tick.
   */
  async #announce(items: IndexItem[]): Promise<void> {
    if (items.length === 0) return;
    const { channel, route, clock, ackTimeout } = this.#o;
    const generation = this.#generation;
    const byHolder = new Map<string, IndexItem[]>();
    for (const x of items) for (const r of this.#holders(x.principal)) byHolder.set(r, [...(byHolder.get(r) ?? []), x]);
    const failed = new Set<IndexItem>();
    await Promise.all(
      [...byHolder].map(async ([r, list]) => {
        if (r === route) {
          for (const x of list) this.#index.apply(x, clock.now());
          return;
        }
        const m = channel.members().find((x) => x.route === r);
        try {
          if (m === undefined) throw new Error(`index holder ${r} is not a live member`);
          await channel.request(m.id, MSG.indexAnnounce, messages.indexAnnounce.encode({ items: list }), { timeoutMs: ackTimeout });
        } catch (err) {
          this.#log.debug({ err, holder: r, items: list.length }, 'index announcement not acknowledged; announcing again later');
          for (const x of list) failed.add(x);
        }
      }),
    );
    for (const x of items) {
      if (failed.has(x)) {
        if (x.kind === 'live') this.#announced.delete(x.base);
        continue;
      }
      if (x.kind === 'live') this.#announced.set(x.base, { principal: x.principal, epoch: x.epoch, expire: x.expire, lastAccessAt: x.lastAccessAt, generation });
      else if (this.#announced.get(x.base)?.principal === x.principal) this.#announced.delete(x.base);
    }
  }

  /**
   * The once-a-second diff of what this member owns against what it announced. It walks the table in
   * place, without a snapshot or a set of what it owns: with 100k sessions those cost more than the
   * walk, every second, on the member serving requests.
   */
  async #tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      const { manager, route, clock } = this.#o;
      const now = clock.now();
      this.#index.prune(now);
      const items: IndexItem[] = [];
      const owns = (e: SessionEntry | undefined): boolean => e !== undefined && e.role === 'primary' && e.owner === route && e.unverified !== true;
      for (const e of manager.table.held()) {
        if (e.expire <= now || !owns(e)) continue;
        const a = this.#announced.get(e.base);
        if (e.principal === undefined && a === undefined) continue;
        const last = this.#lastAccess.get(e.base) ?? 0;
        const stale =
          a === undefined ||
          a.principal !== e.principal ||
          a.epoch !== e.epoch ||
          a.generation !== this.#generation ||
          e.expire - a.expire >= INDEX_REFRESH_MS ||
          last - a.lastAccessAt >= INDEX_REFRESH_MS;
        if (stale) items.push(...this.#itemsFor(e, a, now));
        if (items.length >= TICK_BATCH) break;
      }
      for (const [base, a] of this.#announced) {
        if (items.length >= TICK_BATCH) break;
        const held = manager.table.get(base, now);
        if (held !== undefined && held.owner === route) continue; // owned (or unverified: checked before it is served again)
        const t = manager.table.tombstone(base);
        if (held === undefined && (t === undefined || t.kind === 'removed')) {
          // Expired or destroyed: listed nowhere any more.
          const epoch = Math.max(a.epoch, t?.epoch ?? 0);
          items.push({ principal: a.principal, base, kind: 'gone', route, epoch, createdAt: 0, lastAccessAt: 0, expire: a.expire });
        } else {
          this.#announced.delete(base); // moved: its new owner announces it under a newer epoch
          this.#lastAccess.delete(base);
        }
      }
      await this.#announce(items);
      for (const base of this.#lastAccess.keys()) if (!this.#announced.has(base) && !owns(manager.table.get(base, now))) this.#lastAccess.delete(base);
    } catch (err) {
      this.#log.warn({ err }, 'principal index round failed; retrying');
    } finally {
      this.#ticking = false;
    }
  }

  // --- Events ---

  #expired(e: SessionEntry): void {
    const live = [this.#o.route, ...this.#o.channel.members().map((m) => m.route)];
    if (!firesExpiry(e, this.#o.route, live, this.#o.manager.mode)) return;
    this.#fire('sessionExpired', e, expiryReason(e, this.#o.absoluteMaxAge));
  }

  #fire(name: keyof SessionEvents, e: SessionEntry, reason: SessionEvent['reason']): void {
    const event: SessionEvent = { handle: this.handleOf(e.base), principal: e.principal, route: this.#o.route, reason };
    // Never inside the table's or the lock's code path: a listener that throws must not break them.
    queueMicrotask(() => {
      try {
        this.#o.emit(name, event);
      } catch (err) {
        this.#log.error({ err, event: name }, 'a session event listener threw');
      }
    });
  }
}
