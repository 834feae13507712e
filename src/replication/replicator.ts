/**
 * What backup and delta modes share: the local write path (diff, validate, encode, replicate, commit),
 * the handlers every copy holder runs, schema fetching, expiry, and the counters. The two managers
 * differ in where copies go, how a takeover works and what a membership change triggers.
 */
import type { Logger } from 'pino';
import type { ClusterChannel, MemberInfo } from '../cluster/types.js';
import type { SessionCodec, SessionData } from '../codec/types.js';
import { messages, type ApplyReply, type SessionCopy, type SessionDeltaMessage, type EncodedEntry } from '../codec/messages.js';
import {
  ClusterRequestError,
  ReplicationError,
  SessionTooLargeError,
  StaleOwnerError,
  UnknownSchemaError,
} from '../errors.js';
import { applyCopy, applyDelta, applyRemove, fromCopy, maxAgeToWire, toCopy } from './copies.js';
import { KeyLock } from './key-lock.js';
import { diffSession, setOwn } from './session-value.js';
import { SessionTable, type Role, type SessionEntry } from './session-table.js';
import { shortId } from './session-id.js';

/** What a manager needs from the layers below and the options. */
export interface ReplicatorOptions {
  channel: ClusterChannel;
  codec: SessionCodec;
  route: string;
  ack: 'sync' | 'async';
  ackTimeout: number;
  maxSessionBytes: number;
  reprotectRate: number;
  stateTransferTimeout: number;
  /** Sessions per page of a state transfer (delta mode). */
  stateTransferBatch: number;
  /** Membership's drop time: a pause of this process longer than it may have got us evicted. */
  dropTime: number;
  logger: Logger;
}

/** A session as the store reads it. */
export interface SessionRead {
  values: SessionData;
  expire: number;
  maxAge: number | 'session';
}

/** Replication counters for `/cluster/metrics`. */
export interface ReplicationMetrics {
  writes: number;
  writesRefused: number;
  replicationFailures: number;
  takeovers: number;
  takeoverMisses: number;
  reprotected: number;
  staleWritesRefused: number;
  ackLatencyMs: { sum: number; count: number };
  expired: number;
}

/** Message type names on the cluster channel. */
export const MSG = {
  delta: 'session.delta',
  copy: 'session.copy',
  remove: 'session.remove',
  locate: 'session.locate',
  take: 'session.take',
  fetch: 'session.fetch',
  schema: 'session.schema',
  leaving: 'session.leaving',
  handoff: 'session.handoff',
  statePage: 'session.state-page',
} as const;

const SWEEP_MS = 5000;
const NEGATIVE_CACHE_MS = 5000;

/** The shared core of `BackupManager` and `DeltaManager`. */
export abstract class Replicator {
  abstract readonly mode: 'backup' | 'delta';
  readonly table = new SessionTable();
  protected readonly channel: ClusterChannel;
  protected readonly codec: SessionCodec;
  protected readonly route: string;
  protected readonly log: Logger;
  protected readonly options: ReplicatorOptions;
  protected readonly locks = new KeyLock();
  protected readonly counters: ReplicationMetrics = {
    writes: 0,
    writesRefused: 0,
    replicationFailures: 0,
    takeovers: 0,
    takeoverMisses: 0,
    reprotected: 0,
    staleWritesRefused: 0,
    ackLatencyMs: { sum: 0, count: 0 },
    expired: 0,
  };
  /** Routes that announced a graceful leave: never chosen for a new copy. */
  protected readonly leaving = new Set<string>();
  /** Bases recently looked up and found nowhere: a bad cookie must not cost a broadcast per request. */
  readonly #missing = new Map<string, number>();
  #sweeper: NodeJS.Timeout | undefined;
  #pauseWatch: NodeJS.Timeout | undefined;
  #failures: number[] = [];
  /** Until when this member may be on the cut-off side of a partition (epoch ms). */
  #isolatedUntil = 0;
  #knownFingerprints = new Set<string>();
  protected stopping = false;

  constructor(options: ReplicatorOptions) {
    this.options = options;
    this.channel = options.channel;
    this.codec = options.codec;
    this.route = options.route;
    this.log = options.logger.child({ component: 'replication' });
  }

  /** Registers the message handlers and starts expiry. Call before the channel starts. */
  install(): void {
    const c = this.channel;
    c.handle(MSG.delta, (from, body) => this.#onDelta(from, messages.delta.decode(body)));
    c.handle(MSG.copy, (from, body) => this.#onCopy(from, messages.copy.decode(body)));
    c.handle(MSG.remove, (_from, body) => messages.applyReply.encode(applyRemove(this.table, messages.remove.decode(body))));
    c.handle(MSG.locate, (_from, body) => {
      const e = this.table.get(messages.locate.decode(body).base);
      return messages.locateReply.encode(
        e === undefined
          ? { found: false, primary: false, owner: '', epoch: 0, version: 0 }
          : { found: true, primary: e.role === 'primary', owner: e.owner, epoch: e.epoch, version: e.version },
      );
    });
    c.handle(MSG.fetch, (_from, body) => {
      const e = this.table.get(messages.locate.decode(body).base);
      return messages.takeReply.encode({ copy: e === undefined ? null : toCopy(e), movedTo: null });
    });
    c.handle(MSG.schema, (_from, body) =>
      messages.schemaReply.encode({ json: this.codec.schemaFor(messages.schema.decode(body).fingerprint) ?? null }),
    );
    c.on('member-added', (m) => {
      // Back from a partition: the other side may have taken sessions over while we were apart.
      if (this.possiblyIsolated()) this.markUnverified(`member ${m.route} is back after a partition`);
      this.onMemberAdded(m);
    });
    c.on('member-removed', (m, reason) => {
      this.leaving.delete(m.route);
      if (reason === 'failed') this.#noteFailure(m);
      this.onMemberRemoved(m, reason);
    });
    // A process paused longer than the drop time (SIGSTOP, a long GC, a frozen VM) was evicted by
    // the others, who took its sessions over: it must not serve its old copies as if nothing happened.
    let tick = Date.now();
    this.#pauseWatch = setInterval(() => {
      const now = Date.now();
      if (now - tick > Math.max(1000, this.options.dropTime / 2)) this.markUnverified(`this process was paused for ${now - tick} ms`);
      tick = now;
    }, 250);
    this.#pauseWatch.unref();
    this.#sweeper = setInterval(() => {
      this.counters.expired += this.table.sweep();
      const now = Date.now();
      for (const [base, until] of this.#missing) if (until <= now) this.#missing.delete(base);
    }, SWEEP_MS);
    this.#sweeper.unref();
  }

  protected abstract onMemberAdded(member: MemberInfo): void;
  protected abstract onMemberRemoved(member: MemberInfo, reason: 'left' | 'failed'): void;
  /** Sends a write to the copy holders; resolves when they acknowledged (sync) or at once (async). */
  protected abstract replicate(entry: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void>;
  /**
   * Makes this member the session's primary (a takeover); false when the session exists nowhere.
   * Called with the session's lock held.
   */
  protected abstract takeOver(base: string): Promise<boolean>;
  /** Graceful leave: makes sure every session held here lives on elsewhere. */
  abstract leave(): Promise<void>;

  /** Stops timers. The channel is stopped by the owner after `leave()`. */
  close(): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    if (this.#pauseWatch !== undefined) clearInterval(this.#pauseWatch);
    this.#sweeper = undefined;
    this.#pauseWatch = undefined;
  }

  /**
   * If we lost at least as many members as remain, we may be the side that was cut off, and the
   * others may have taken our sessions over. (The majority side, which takes sessions over, skips
   * the check: one failed member in four costs nothing.)
   */
  #noteFailure(m: MemberInfo): void {
    const now = Date.now();
    const window = 2 * this.options.dropTime + 5000;
    this.#failures = this.#failures.filter((t) => now - t < window);
    this.#failures.push(now);
    const live = this.channel.members().length + 1;
    if (this.#failures.length >= live) {
      this.#isolatedUntil = now + window;
      this.markUnverified(`lost ${this.#failures.length} members (last ${m.route}), ${live} remain`);
    }
  }

  /**
   * Whether this member may be on the cut-off side of a partition (it recently lost at least as many
   * members as remain). Such a member takes nothing over by itself: the other side may be serving.
   */
  protected possiblyIsolated(): boolean {
    return Date.now() < this.#isolatedUntil;
  }

  /** Which entries must be checked against the other members after a possible cut-off. */
  protected abstract needsVerification(e: SessionEntry): boolean;

  /** Marks sessions to be checked against the other members before they are served again. */
  protected markUnverified(reason: string): void {
    let n = 0;
    for (const e of this.table.entries()) {
      if (this.needsVerification(e)) {
        e.unverified = true;
        n++;
      }
    }
    if (n > 0) this.log.warn({ sessions: n, reason }, 'this member may have been cut off; sessions are checked with the others before they are served');
  }

  /** Routes of the live members, self included, minus those leaving. */
  protected liveRoutes(): string[] {
    const routes = [this.route];
    for (const m of this.channel.members()) if (!this.leaving.has(m.route)) routes.push(m.route);
    return routes;
  }

  protected memberByRoute(route: string): MemberInfo | undefined {
    return this.channel.members().find((m) => m.route === route);
  }

  /** Whether this member serves `base` now. */
  isPrimary(base: string): boolean {
    const e = this.table.get(base);
    return e !== undefined && e.role === 'primary' && e.owner === this.route && e.unverified !== true;
  }

  /**
   * Makes sure this member is the primary of `base`, taking it over from wherever it lives.
   * Returns false when no member holds it (expired, logged out, or never existed).
   */
  async acquire(base: string): Promise<boolean> {
    if (this.isPrimary(base)) return true;
    const missUntil = this.#missing.get(base);
    if (missUntil !== undefined && missUntil > Date.now()) return false;
    const ok = await this.locks.run(base, () => (this.isPrimary(base) ? Promise.resolve(true) : this.takeOver(base)));
    if (ok) {
      this.counters.takeovers++;
      this.#missing.delete(base);
    } else {
      this.counters.takeoverMisses++;
      if (this.#missing.size > 10_000) this.#missing.clear();
      this.#missing.set(base, Date.now() + NEGATIVE_CACHE_MS);
    }
    return ok;
  }

  /** Reads a session this member is primary of (call `acquire` first). */
  async read(base: string): Promise<SessionRead | undefined> {
    const e = this.table.get(base);
    if (e === undefined || e.role !== 'primary') return undefined;
    return { values: await this.valuesOf(e), expire: e.expire, maxAge: e.maxAge };
  }

  /** Decoded values of an entry, decoding (and fetching unknown writer schemas) once. */
  protected async valuesOf(e: SessionEntry): Promise<SessionData> {
    if (e.values !== undefined) return e.values;
    const list = [...e.encoded.values()];
    // Each unknown writer schema is fetched once, then decoding is tried again.
    for (let attempt = 0; ; attempt++) {
      try {
        e.values = this.codec.decodeEntryList(list);
        return e.values;
      } catch (err) {
        if (!(err instanceof UnknownSchemaError) || attempt >= list.length) throw err;
        await this.fetchSchema(err.fingerprint);
      }
    }
  }

  /** Asks `first`, then every other live member, for the schema with `fingerprint`. */
  protected async fetchSchema(fingerprint: string, first?: MemberInfo): Promise<void> {
    const candidates = [...(first ? [first] : []), ...this.channel.members().filter((m) => m.id !== first?.id)];
    for (const m of candidates) {
      try {
        const reply = messages.schemaReply.decode(
          await this.channel.request(m.id, MSG.schema, messages.schema.encode({ fingerprint }), { timeoutMs: this.options.ackTimeout }),
        );
        if (reply.json !== null) {
          this.codec.addSchema(reply.json);
          this.#knownFingerprints.add(fingerprint);
          this.log.info({ fingerprint: fingerprint.slice(0, 16), from: m.route }, 'fetched writer schema');
          return;
        }
      } catch (err) {
        this.log.warn({ err, from: m.route }, 'schema fetch failed; trying the next member');
      }
    }
    throw new UnknownSchemaError(fingerprint);
  }

  /**
   * Copy holders learn every writer schema when the data arrives, while its writer is surely alive:
   * decoding later (at a takeover) may happen after the writer died.
   */
  protected async learnSchemas(entries: readonly EncodedEntry[], from: MemberInfo): Promise<void> {
    for (const fp of this.#unknownSchemas(entries)) {
      if (this.codec.schemaFor(fp) === undefined) await this.fetchSchema(fp, from);
      this.#knownFingerprints.add(fp);
    }
  }

  /** Writer fingerprints in `entries` not yet known here (usually none: checked without awaiting). */
  #unknownSchemas(entries: readonly EncodedEntry[]): string[] {
    const unknown: string[] = [];
    for (const { value } of entries) {
      const fp = this.codec.fingerprintOf(value);
      if (fp !== undefined && !this.#knownFingerprints.has(fp)) unknown.push(fp);
    }
    return unknown;
  }

  /**
   * Runs `apply` at once when every schema is known. Messages from one owner arrive in order on one
   * connection; applying them without a pause keeps that order (a copy and the removal after it must
   * not swap places). Only a message that needs a schema fetch waits.
   */
  #afterSchemas(entries: readonly EncodedEntry[], from: MemberInfo, apply: () => ApplyReply): Buffer | Promise<Buffer> {
    if (this.#unknownSchemas(entries).length === 0) return messages.applyReply.encode(apply());
    return this.learnSchemas(entries, from).then(() => messages.applyReply.encode(apply()));
  }

  #onDelta(from: MemberInfo, m: SessionDeltaMessage): Buffer | Promise<Buffer> {
    return this.#afterSchemas(m.set, from, () => this.applyIncomingDelta(m, from));
  }

  #onCopy(from: MemberInfo, c: SessionCopy): Buffer | Promise<Buffer> {
    return this.#afterSchemas(c.entries, from, () => this.applyIncomingCopy(c));
  }

  /** Applies a write from the owner; delta mode overrides this to queue during a state transfer. */
  protected applyIncomingDelta(m: SessionDeltaMessage, _from: MemberInfo): ApplyReply {
    return applyDelta(this.table, m, this.copyRole());
  }

  protected applyIncomingCopy(c: SessionCopy): ApplyReply {
    return applyCopy(this.table, c, this.copyRole());
  }

  /** How this member holds a copy it was sent. */
  protected copyRole(): Role {
    return 'backup';
  }

  /**
   * The write path. `read` is what this request read (undefined for a new session): only the keys that
   * changed against it are replicated and applied onto the current copy.
   */
  async write(
    base: string,
    written: SessionData,
    meta: { expire: number; maxAge: number | 'session' },
    read: SessionData | undefined,
  ): Promise<SessionData> {
    return this.locks.run(base, async () => {
      let e = this.table.get(base);
      if (e !== undefined && !this.isPrimary(base)) {
        // Held here as a copy only, or unverified: take it over first (a write without the route binder).
        if (!(await this.takeOver(base))) e = undefined;
        else e = this.table.get(base);
      }
      if (e === undefined) {
        const tomb = this.table.tombstone(base);
        if (read !== undefined || tomb !== undefined) {
          this.counters.staleWritesRefused++;
          throw new StaleOwnerError(
            `session ${shortId(base)}…: this member no longer owns it` +
              (tomb !== undefined ? ` (moved to ${tomb.owner}, epoch ${tomb.epoch})` : '') +
              '; the write was refused, retry the request',
          );
        }
        e = {
          base,
          owner: this.route,
          epoch: 1,
          version: 0,
          expire: meta.expire,
          maxAge: meta.maxAge,
          encoded: new Map(),
          values: {},
          role: 'primary',
          backup: undefined,
        };
      }
      const current = await this.valuesOf(e);
      const delta = diffSession(read ?? {}, written);
      // A key that has a value but no entry of its own came from a schema default (a session written
      // under an older sessionSchema): the first write stores it, or a later decode would lose it.
      // (Only such keys: one that a concurrent request removed meanwhile is absent from `current` and
      // must stay removed.)
      for (const k of Object.keys(written)) {
        if (written[k] !== undefined && !e.encoded.has(k) && Object.hasOwn(current, k) && !Object.hasOwn(delta.set, k)) {
          setOwn(delta.set, k, written[k]);
        }
      }
      // Removing a defaulted key: re-encode one kept key under our schema, which declares the field,
      // so that decoding no longer fills the default in.
      if (delta.removed.some((k) => !e.encoded.has(k) && Object.hasOwn(current, k))) {
        const kept = Object.keys(written).find((k) => written[k] !== undefined && !Object.hasOwn(delta.set, k));
        if (kept !== undefined) setOwn(delta.set, kept, written[kept]);
      }
      // Keys removed by this request but already gone need no traffic.
      const removed = delta.removed.filter((k) => e.encoded.has(k));
      let set: EncodedEntry[];
      try {
        // Encoding checks every value; nothing is committed or sent if any key fails.
        set = Object.keys(delta.set).map((key) => {
          const one: SessionData = {};
          setOwn(one, key, delta.set[key]);
          return { key, value: this.codec.encodeEntries(one) };
        });
      } catch (err) {
        this.counters.writesRefused++;
        throw err;
      }
      const encoded = new Map(e.encoded);
      for (const { key, value } of set) encoded.set(key, value);
      for (const k of removed) encoded.delete(k);
      let size = 0;
      for (const v of encoded.values()) size += v.length;
      if (size > this.options.maxSessionBytes) {
        this.counters.writesRefused++;
        throw new SessionTooLargeError(size, this.options.maxSessionBytes);
      }
      const values: SessionData = { ...current };
      for (const { key } of set) setOwn(values, key, delta.set[key]);
      for (const k of removed) delete values[k];
      const next: SessionEntry = { ...e, encoded, values, version: e.version + 1, expire: meta.expire, maxAge: meta.maxAge };
      const message: SessionDeltaMessage = {
        base,
        owner: this.route,
        epoch: e.epoch,
        version: next.version,
        baseVersion: e.version,
        expire: meta.expire,
        maxAge: maxAgeToWire(meta.maxAge),
        set,
        removed,
      };
      const started = performance.now();
      try {
        await this.replicate(e, message, next);
      } catch (err) {
        if (err instanceof StaleOwnerError) {
          this.counters.staleWritesRefused++;
          // Another member owns it now; drop our primary unless its copy already replaced it here.
          if (this.table.get(base) === e) this.table.delete(base, e.epoch, e.owner);
        } else this.counters.replicationFailures++;
        this.log.error({ err, session: shortId(base) }, 'session write not replicated; the request fails and nothing was committed');
        throw err;
      }
      this.counters.ackLatencyMs.sum += performance.now() - started;
      this.counters.ackLatencyMs.count++;
      this.counters.writes++;
      this.table.set(next);
      return values;
    });
  }

  /** Logout, `ctx.session = null`, regenerate: removes the session here and on its copy holders. */
  async remove(base: string): Promise<void> {
    await this.locks.run(base, async () => {
      const e = this.table.get(base);
      if (e === undefined || e.owner !== this.route) return;
      this.table.delete(base, e.epoch, this.route);
      const targets = this.copyHolders(e);
      const body = messages.remove.encode({ base, owner: this.route, epoch: e.epoch });
      const sends = targets.map((m) => this.requestApply(m, MSG.remove, body));
      if (this.options.ack === 'sync') await this.settle(sends, base);
      else void this.settle(sends, base).catch(() => undefined);
    });
  }

  /** Members that hold a copy of a primary entry (where a remove must go). */
  protected abstract copyHolders(e: SessionEntry): MemberInfo[];

  /** Sends a message whose reply is an `ApplyReply`. */
  protected async requestApply(member: MemberInfo, type: string, body: Buffer): Promise<ApplyReply> {
    return messages.applyReply.decode(await this.channel.request(member.id, type, body, { timeoutMs: this.options.ackTimeout }));
  }

  /** Waits for replies; a member that went away meanwhile is not a failure, anything else is. */
  protected async settle(sends: Promise<ApplyReply>[], base: string): Promise<void> {
    const results = await Promise.allSettled(sends);
    for (const r of results) {
      if (r.status === 'rejected') {
        const err: unknown = r.reason;
        if (err instanceof ClusterRequestError && (err.code === 'ERR_MEMBER_GONE' || err.code === 'ERR_STOPPED')) continue;
        throw new ReplicationError(`session ${shortId(base)}…: a copy holder did not acknowledge: ${String(err)}`, { cause: err });
      }
      if (r.value.status === 'STALE') {
        throw new StaleOwnerError(
          `session ${shortId(base)}…: owned by ${r.value.owner} at epoch ${r.value.epoch}; this member's write was refused`,
        );
      }
    }
  }

  /** Sends the whole entry to `member` to hold as a copy. */
  protected async sendCopy(member: MemberInfo, e: SessionEntry, type: string = MSG.copy): Promise<ApplyReply> {
    return this.requestApply(member, type, messages.copy.encode(toCopy(e)));
  }

  /** Installs a copy fetched in a takeover as this member's primary entry at a new epoch. */
  protected installAsPrimary(copy: SessionCopy, epoch: number): SessionEntry {
    const e = fromCopy(copy, 'primary');
    e.owner = this.route;
    e.epoch = epoch;
    this.table.set(e);
    return e;
  }

  /** Counters for `/cluster/metrics`. */
  metrics(): ReplicationMetrics {
    return { ...this.counters, ackLatencyMs: { ...this.counters.ackLatencyMs } };
  }
}
