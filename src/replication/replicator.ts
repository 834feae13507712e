/**
 * The request path both modes share: acquire (take over if needed), read, write (plan, replicate,
 * commit) and remove, each under the session's lock. The managers differ in where copies go, how a
 * takeover works and what a membership change triggers.
 *
 * Every "cannot tell now" is a `SessionUnavailableError` (503), never "no session": koa-session would
 * hand out a new cookie and log the user out for good.
 */
import type { SessionData } from '../codec/types.js';
import { messages, type RemoveMessage, type SessionDeltaMessage } from '../codec/messages.js';
import type { MemberInfo } from '../cluster/types.js';
import { ClusterRequestError, SessionCapacityError, SessionUnavailableError, StaleOwnerError } from '../errors.js';
import { capacityRefusal } from './capacity.js';
import { CopyHolder } from './copy-holder.js';
import type { SessionRead } from './member-core.js';
import { fenceUntil, type SessionEntry } from './session-table.js';
import { NO_ENTRIES, entryValues, type Packed } from './packed-entries.js';
import { shortId } from './session-id.js';
import { planWrite } from './write-plan.js';
import { DecodedCache } from './decoded-cache.js';
import { InFlight } from './in-flight.js';
import { copySession } from './session-value.js';
import { applyPolicy, mergedValues, type SessionPolicy } from './session-policy.js';

import { MSG } from './message-types.js';
export { MSG } from './message-types.js';
export type { ReplicatorOptions, ReplicationMetrics, SessionRead, Survey } from './member-core.js';
export { describeReplies } from './member-core.js';

const NEGATIVE_CACHE_MS = 5000;

/** Sessions kept decoded by default (about 2 KB each for a typical session). */
export const DEFAULT_DECODED_CACHE = 10_000;

/** The shared core of `BackupManager` and `DeltaManager`. */
export abstract class Replicator extends CopyHolder {
  /** Store calls under way (acquire, write, remove): a graceful stop waits for them before it leaves. */
  readonly #inFlight = new InFlight(this.clock);
  /** Bases recently found nowhere: a bad cookie must not cost a broadcast per request. */
  readonly #missing = new Map<string, number>();
  /** Decoded values of the sessions read most recently here (primary only). */
  readonly #decoded = new DecodedCache(this.options.decodedCache ?? DEFAULT_DECODED_CACHE);
  /** Whose each session is and when it must end at the latest (set by the cluster from its options). */
  policy: SessionPolicy = {};

  /** Sends a write to the copy holders; resolves when they acknowledged (sync) or at once (async). */
  protected abstract replicate(entry: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void>;
  /**
   * Makes this member the session's primary (a takeover). Resolves false only when the session surely
   * exists nowhere (destroyed, expired, never existed); throws `SessionUnavailableError` when that
   * cannot be told now. Called with the session's lock held.
   */
  protected abstract takeOver(base: string): Promise<boolean>;
  /**
   * After a write failed: the copy holders get the whole session as the primary holds it, at a version
   * of its own (`resyncCopy`), so none keeps the failed write under a version the primary reuses.
   */
  protected abstract resyncCopies(e: SessionEntry): Promise<void>;
  /** Members a destroy must reach before the request is answered (the rest get it in the background). */
  protected abstract mustAcknowledgeRemoval(e: SessionEntry): MemberInfo[];
  /** The live members that should hold `base` (its id naming `route`) where nothing has moved it. */
  protected abstract expectedHolders(base: string, route: string): MemberInfo[];

  /**
   * Whether a member where the ring puts `base` holds it (or its destruction): a question to one or two
   * members, not to all. For a client that spent its budget of unknown ids: a session that failed over
   * is found this way, while a random id costs the cluster little.
   */
  async heldWhereExpected(base: string, route: string): Promise<boolean> {
    if (this.table.get(base) !== undefined || this.table.tombstone(base) !== undefined) return true;
    const body = messages.locate.encode({ base });
    const answers = await Promise.all(
      this.expectedHolders(base, route).map((m) =>
        this.channel.request(m.id, MSG.locate, body, { timeoutMs: this.options.ackTimeout }).then(
          (raw) => messages.locateReply.decode(raw),
          () => undefined,
        ),
      ),
    );
    return answers.some((r) => r !== undefined && (r.found || r.removed || r.owner !== ''));
  }

  /**
   * Until when a destruction made now fences the copies of a session that ends at `expire`: its end, or
   * two drop times from now if that is later, plus the clock margin of `fenceUntil`.
   */
  #destructionUntil(expire: number): number {
    return fenceUntil(Math.max(expire, this.clock.now() + 2 * this.options.dropTime));
  }

  /** How long a request waits for its session's lock before it answers 503 (a takeover may hold it). */
  #lockWait(): number {
    return 2 * this.options.ackTimeout;
  }

  /** Throws when this member must not serve sessions now (stopping, or without a majority). */
  protected checkServing(base: string): void {
    const why = this.stopping
      ? 'this member is stopping'
      : !this.isolation.hasQuorum()
        ? 'this member does not see a majority of the cluster'
        : this.isolation.recovering()
          ? 'this process was paused and is catching up with the cluster'
          : undefined;
    if (why !== undefined) throw this.unavailable(base, why);
  }

  /**
   * Makes sure this member is the primary of `base`, taking it over from wherever it lives. Resolves
   * false when no member holds it (destroyed, expired, never existed); throws SessionUnavailableError
   * when that cannot be told now.
   */
  async acquire(base: string): Promise<boolean> {
    return this.#inFlight.run(() => this.#acquire(base));
  }

  /** Whether `base` expired here as this member's own (not destroyed, not moved on) lately. */
  #expiredAsOurs(base: string): boolean {
    return this.table.tombstone(base) === undefined && this.table.expiredTrace(base)?.owner === this.route;
  }

  /** Resolves when no store call runs, or after `maxMs` (a stop must not hang on a stuck call). */
  protected drained(maxMs: number): Promise<void> {
    return this.#inFlight.drained(maxMs);
  }

  async #acquire(base: string): Promise<boolean> {
    this.checkServing(base);
    if (this.isPrimary(base)) return true;
    // A recent miss answers at once, unless a copy arrived since: a takeover elsewhere that raced with
    // the one that missed sends its copy here, and the session must then be found (promise 3). So too
    // when the copy has moved on since (a 'moved' tombstone names its owner now): a write that failed
    // but reached a holder late may have given the session a new life after the miss.
    const missUntil = this.#missing.get(base);
    if (missUntil !== undefined && missUntil > this.clock.monotonic() && this.table.get(base) === undefined && this.table.tombstone(base)?.kind !== 'moved') return false;
    const ok = await this.locks.run(
      base,
      () => {
        this.checkServing(base);
        return this.isPrimary(base) ? Promise.resolve(true) : this.takeOver(base);
      },
      this.#lockWait(),
    );
    if (ok) {
      this.counters.takeovers++;
      this.#missing.delete(base);
    } else {
      this.counters.takeoverMisses++;
      if (this.#missing.size > 10_000) this.#missing.clear();
      this.#missing.set(base, this.clock.monotonic() + NEGATIVE_CACHE_MS);
    }
    return ok;
  }

  /**
   * Reads a session this member is primary of (call `acquire` first). Undefined when it was destroyed
   * meanwhile; a session that moved to another member meanwhile (a concurrent request elsewhere took it
   * over) is SessionUnavailableError: the retry follows it.
   */
  async read(base: string): Promise<SessionRead | undefined> {
    const e = this.table.get(base);
    if (e !== undefined && e.role === 'primary' && e.owner === this.route) {
      this.capacity?.touched(base);
      return { values: await this.#valuesForRequest(e), snapshot: e.packed, expire: e.expire, maxAge: e.maxAge };
    }
    if (this.table.tombstone(base)?.kind === 'removed') return undefined;
    // Expired here while this request ran (a takeover's claim took the last moments of its life): ended,
    // as for every later request, not 503 (delta seed 64 of the `definite` oracle).
    if (this.#expiredAsOurs(base)) return undefined;
    throw this.unavailable(base, 'the session moved to another member while this request ran');
  }

  /** Decodes packed entries (fetching unknown writer schemas); the values are new objects each time. */
  protected valuesOf(packed: Packed): Promise<SessionData> {
    return this.schemas.decode(entryValues(packed));
  }

  /** The values of a session for one request: its own copy of the cached decoded values, or decoded. */
  async #valuesForRequest(e: SessionEntry): Promise<SessionData> {
    const cached = this.#decoded.get(e.base, e.packed);
    if (cached !== undefined) return copySession(cached);
    const values = await this.valuesOf(e.packed);
    if (this.table.get(e.base) === e) this.#decoded.set(e.base, e.packed, copySession(values));
    return values;
  }

  /** Decoded values of `packed` to compare against, never handed out: cached ones if they are current. */
  async #valuesToCompare(base: string, packed: Packed): Promise<SessionData> {
    return this.#decoded.get(base, packed) ?? (await this.valuesOf(packed));
  }

  /**
   * The write path. `snapshot` is what this request read (`SessionRead.snapshot`; undefined for a new
   * session): only the keys that changed against it are replicated and applied onto the current copy.
   * Resolves to the snapshot of what was committed (a second save in the same request diffs against it).
   */
  async write(
    base: string,
    written: SessionData,
    meta: { expire: number; maxAge: number | 'session' },
    snapshot: Packed | undefined,
  ): Promise<SessionEntry> {
    return this.#inFlight.run(() => this.#write(base, written, meta, snapshot));
  }

  async #write(
    base: string,
    written: SessionData,
    meta: { expire: number; maxAge: number | 'session' },
    snapshot: Packed | undefined,
  ): Promise<SessionEntry> {
    return this.locks.run(base, async () => {
      // A creation admitted at capacity holds its place until it ends: copies arriving meanwhile count it.
      let admitted = false;
      try {
        this.checkServing(base);
        let e = this.table.get(base);
        // Held here as a copy only, or unverified: take it over first (a write without the route binder).
        if (e !== undefined && !this.isPrimary(base)) e = (await this.takeOver(base)) ? this.table.get(base) : undefined;
        const fresh = e === undefined;
        if (e === undefined) {
          // Only a session nobody ever wrote may be created: one this request read, or one with a
          // tombstone, was destroyed or moved meanwhile.
          if (snapshot !== undefined || this.table.tombstone(base) !== undefined) {
            this.counters.staleWritesRefused++;
            throw this.unavailable(base, 'the session was destroyed or moved while this request ran; the write was refused');
          }
          // A new session: refused (or room made) at capacity, before it costs a copy anywhere.
          await this.capacity?.admitSession(base, this.expectedHolders(base, this.route).find((m) => this.fullMembers.has(m.route))?.route);
          admitted = this.capacity !== undefined;
          e = { base, owner: this.route, epoch: 1, version: 0, expire: meta.expire, maxAge: meta.maxAge, packed: NO_ENTRIES, role: 'primary', backup: undefined, unverified: false, resync: false, touchedAt: 0, createdAt: this.clock.now(), principal: undefined };
        }
        let plan;
        try {
          // Usually the request read what is held now, and it is cached: nothing is decoded.
          const current = fresh ? {} : await this.#valuesToCompare(base, e.packed);
          const read = snapshot === undefined ? {} : snapshot === e.packed ? current : await this.valuesOf(snapshot);
          plan = planWrite(this.codec, this.options.maxSessionBytes, e, current, written, read, meta);
          applyPolicy(plan, this.policy, this.clock.now(), mergedValues(current, written, plan.message));
        } catch (err) {
          this.counters.writesRefused++;
          throw err;
        }
        const started = performance.now();
        // A lease that lapsed while the write was on its way, even if held again by its end: meanwhile
        // the others may have taken the session over, and a new backup chosen since (one that never
        // heard of that takeover) would acknowledge it (backup seed 3651, promise 1).
        const lapses = this.isolation.lapses;
        try {
          await this.replicate(e, plan.message, plan.next);
          // An ownership change that came while we waited (a takeover, a destroy), or a lost majority,
          // wins over this write: the holders applied it, but it is not committed here.
          if (this.table.get(base) !== (fresh ? undefined : e) || !this.isolation.hasQuorum() || this.isolation.lapses !== lapses) {
            throw this.unavailable(base, 'the session changed owner, or this member lost the majority, while the write was replicated');
          }
        } catch (err) {
          if (!fresh && this.table.get(base) === e) {
            // The holders may have applied it: never reuse its version, and resend everything next time.
            // Resent now, at a version of its own: a holder that applied the failed write late (it was
            // paused) must not keep it under a version the primary holds other content at.
            e.version = plan.next.version;
            e.resync = true;
            if (e.owner === this.route && e.role === 'primary' && !(err instanceof StaleOwnerError)) await this.resyncCopies(e).catch(() => undefined);
          } else if (this.table.get(base) === undefined && (fresh || this.#expiredAsOurs(base))) {
            // A session whose creation failed never reached its client: take back any copy that was made.
            // So too a session that expired here while its write was on its way: a holder that applied
            // the write would keep it to the write's later expiry, and answer 503 for it till then, its
            // owner having nothing left to hand over (delta seed 278 of the `definite` oracle).
            const until = this.#destructionUntil(meta.expire);
            this.table.destroy(base, e.epoch, this.route, until);
            void this.removals.start({ base, owner: this.route, epoch: e.epoch, destroy: true, until }, this.channel.members());
          }
          // A new session a copy holder had no room for: refused for capacity, logged rate-limited there.
          if (fresh && capacityRefusal(err) !== undefined) throw this.capacity?.copyHolderRefused(base) ?? new SessionCapacityError('copy-holder-full', 'a copy holder is full');
          if (err instanceof StaleOwnerError) {
            this.counters.staleWritesRefused++;
            if (this.table.get(base) === e && e.owner === this.route && err.owner !== undefined) this.lostTo(e, err.owner, err.epoch ?? e.epoch + 1);
          } else this.counters.replicationFailures++;
          this.log.error({ err, session: shortId(base) }, 'session write not replicated; the request fails and nothing was committed');
          throw err instanceof SessionUnavailableError ? err : this.unavailable(base, 'the write was not acknowledged by the copy holders', err);
        }
        this.counters.ackLatencyMs.sum += performance.now() - started;
        this.counters.ackLatencyMs.count++;
        this.counters.writes++;
        // A pause or a lost lease while the write was on its way marked the entry to be checked before it
        // is served again: the committed entry keeps that mark.
        if (!fresh && e.unverified === true) plan.next.unverified = true;
        this.table.set(plan.next);
        this.capacity?.touched(base);
        // A session created here after a look-up found it nowhere (a store's own `set` of a new id) exists now.
        if (fresh) this.#missing.delete(base);
        // A session read recently stays decoded (a read-modify-write request then decodes nothing).
        if (this.#decoded.has(base)) this.#decoded.set(base, plan.next.packed, plan.nextValues());
        return plan.next;
      } finally {
        if (admitted) this.capacity?.creationEnded(base);
      }
    }, this.#lockWait());
  }

  /**
   * Logout, `ctx.session = null`, regenerate: destroys the session here and on every member. Copy
   * holders keep a tombstone that fences every older copy until the session would have expired.
   * Resolves with the entry destroyed, or undefined when the session existed nowhere.
   */
  async remove(base: string): Promise<SessionEntry | undefined> {
    return this.#inFlight.run(() => this.#remove(base));
  }

  async #remove(base: string): Promise<SessionEntry | undefined> {
    return this.locks.run(base, async () => {
      this.checkServing(base);
      if (!this.isPrimary(base) && !(await this.takeOver(base))) return undefined; // exists nowhere: nothing to do
      const e = this.table.get(base)!;
      const until = this.#destructionUntil(e.expire);
      this.#decoded.delete(base);
      const message: RemoveMessage = { base, owner: this.route, epoch: e.epoch, destroy: true, until };
      const lapses = this.isolation.lapses; // as for a write: a lapse meanwhile may have let others move it on
      const required = this.mustAcknowledgeRemoval(e);
      this.table.destroy(base, e.epoch, this.route, until);
      const outcomes = this.removals.start(message, this.channel.members());
      const check = outcomes.then((results) => {
        for (const [m, r] of results) {
          if (!(r instanceof Error) && r.status === 'STALE') {
            throw this.unavailable(base, `${m.route} knows a newer owner (${r.owner}, epoch ${r.epoch}); the removal did not apply`);
          }
          // A holder removed for good (refused, left, or silent past its grace) has no copy anyone will
          // serve; one that went silent a moment ago may be serving it on the other side of a partition.
          const gone = r instanceof ClusterRequestError && r.code === 'ERR_MEMBER_GONE' && this.isolation.ownerReleased(m.route);
          if (r instanceof Error && required.includes(m) && !gone) {
            throw this.unavailable(base, `copy holder ${m.route} did not acknowledge the removal`, r);
          }
        }
        if (!this.isolation.hasQuorum() || this.isolation.lapses !== lapses) throw this.unavailable(base, 'this member lost the majority while removing the session');
      });
      if (this.options.ack === 'sync') await check;
      else check.catch((err: unknown) => this.log.warn({ err, session: shortId(base) }, 'asynchronous removal not acknowledged; retrying'));
      return e;
    }, this.#lockWait());
  }

}
