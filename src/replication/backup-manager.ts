/**
 * Backup mode (Tomcat's BackupManager): each session lives on its primary and on one backup, the
 * first live member other than the primary in the ring's order for the session's base. Any member
 * can compute where a copy lives, so no location broadcast is needed for new sessions.
 *
 * A takeover is granted by the member holding the session (the owner if it is alive, else the best
 * copy), one taker at a time under that member's lock: two members taking one session at once end
 * with one owner, and the other follows it or answers 503.
 */
import type { MemberInfo } from '../cluster/types.js';
import { messages, type ApplyReply, type SessionCopy, type SessionDeltaMessage } from '../codec/messages.js';
import { ClusterRequestError, ReplicationError, SessionUnavailableError, StaleOwnerError } from '../errors.js';
import { backupFor, owners } from '../ring/index.js';
import { Replicator, describeReplies, type ReplicatorOptions, type Survey } from './replicator.js';
import { MSG } from './message-types.js';
import { RateQueue } from './rate-queue.js';
import { PAST_A_SILENT_OWNER, adopt, compareHeld, destroyCovers, fence, grantTo, installGranted, olderOwnership, toCopy } from './copies.js';
import type { SessionEntry } from './session-table.js';
import { shortId } from './session-id.js';

const AUDIT_BATCH = 256;
const SCAN_MS = 1000;
/** Entries `#scan` looks at per turn of the event loop. */
const SCAN_SLICE = 2000;
const MAX_HOPS = 5;
/** Copies checked per tick by the background sweep when nothing else needs checking. */
const SWEEP_BATCH = 64;
/** How long after a membership change the sweep keeps going round. */
const SWEEP_AFTER_CHANGE_MS = 60_000;

/** The backup-mode replication manager. */
/** A copy's ownership as one comparable value. */
function ownership(e: SessionEntry | undefined): string | undefined {
  return e === undefined ? undefined : `${e.epoch}/${e.owner}`;
}

export class BackupManager extends Replicator {
  readonly mode = 'backup' as const;
  readonly #protect: RateQueue<string>;
  /** Sessions to check against the other members (anti-entropy): after a pause, a partition, a loss. */
  readonly #toAudit = new Set<string>();
  #auditing = false;
  /** Membership changed since the last scan: backups may belong elsewhere on the ring. */
  #dirty = false;
  #lastScan = 0;
  /** The scan in progress, if any (`#scan`). */
  #scanning: { entries: Iterator<SessionEntry>; ring: boolean } | undefined;
  #warnedAlone = false;
  /** Copies still to visit in the current round of `#sweepCopies`, and those it put up for checking. */
  #sweepQueue: string[] = [];
  readonly #sweeping = new Set<string>();
  /** Until when the sweep runs (a while after the last membership change). */
  #sweepUntil = 0;
  /** Sessions granted to a taker a moment ago, whose grant may still be on its way (checked later). */
  readonly #granting = new Map<string, object>();
  /** The last member removed for failure on each route: drops owed to it are sent if it comes back. */
  readonly #lastSeen = new Map<string, MemberInfo>();
  #protectStarted = 0;
  #protectCount = 0;

  constructor(options: ReplicatorOptions) {
    super(options);
    this.#protect = new RateQueue<string>({
      perSecond: options.reprotectRate,
      concurrency: 32,
      work: (base) => this.#protectOne(base),
      clock: this.clock,
    });
  }

  override install(): void {
    super.install();
    this.channel.handle(MSG.take, (from, body) => this.#onTake(from, messages.take.decode(body)));
    this.channel.handle(MSG.handoff, (from, body) => this.#onHandoff(from, messages.copy.decode(body)));
    this.channel.handle(MSG.leaving, async (from) => {
      // A member leaving gracefully: move every copy it holds for us elsewhere before it goes.
      this.leaving.add(from.route);
      this.#scan(true, Infinity); // all of it now: what it queues must be drained before we answer
      await this.#protect.drained();
      return Buffer.alloc(0);
    });
  }

  /** The member that should hold `base`'s backup now. */
  #backupTarget(base: string): MemberInfo | undefined {
    const route = backupFor(base, this.route, this.liveRoutes());
    return route === undefined ? undefined : this.memberByRoute(route);
  }

  protected needsVerification(e: SessionEntry): boolean {
    this.#toAudit.add(e.base); // copies too: their owner may have moved on meanwhile
    return e.role === 'primary';
  }

  protected recheck(base: string): void {
    this.#toAudit.add(base);
  }

  protected mustAcknowledgeRemoval(e: SessionEntry): MemberInfo[] {
    // The acknowledged backup, and where the ring puts it now (with ack 'async' a removal can come
    // before the first copy's acknowledgement).
    const routes = new Set([e.backup, backupFor(e.base, this.route, this.liveRoutes())]);
    return this.channel.members().filter((m) => routes.has(m.route));
  }

  protected async replicate(e: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void> {
    const work = this.#replicateTo(e, delta, next);
    if (this.options.ack === 'sync') return work;
    // async: the response does not wait; a failure is logged, counted and repaired by re-protection.
    work.catch((err: unknown) => {
      this.counters.replicationFailures++;
      next.backup = undefined;
      next.resync = true;
      this.log.warn({ err, session: shortId(e.base) }, 'asynchronous replication failed; re-protecting');
      this.#protect.push(e.base, e.base);
    });
  }

  async #replicateTo(e: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void> {
    let backup = e.resync === true ? undefined : e.backup;
    // Holders a failed attempt may have reached (its answer was lost): told to drop what they got.
    const reached: MemberInfo[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      if (attempt > 0 && this.options.ack === 'async') {
        // Without the lock (async acks), a removal or a newer write may have come meanwhile: resending
        // this copy after the removal reached the backup would bring the session back there.
        const current = this.table.get(e.base);
        if (current === undefined || current.version > next.version) return;
      }
      const target = this.#backupTarget(e.base);
      if (target === undefined) {
        if (!this.#warnedAlone) {
          this.#warnedAlone = true;
          this.log.warn('no other member is alive: sessions are held in one copy until a member joins');
        }
        next.backup = undefined;
        return;
      }
      if (e.backup !== undefined && e.backup !== target.route && this.memberByRoute(e.backup) === undefined && !this.isolation.ownerReleased(e.backup)) {
        // The backup went silent a moment ago: we may be the cut-off side, where a backup chosen now
        // would acknowledge writes the other side never sees. Wait out its grace (503 until then).
        throw this.unavailable(e.base, `its backup ${e.backup} went silent a moment ago`);
      }
      try {
        // Where the backup moved (a join, a loss) or may differ (a failed write), it gets the whole session.
        let reply: ApplyReply =
          backup === target.route ? await this.requestApply(target, MSG.delta, messages.delta.encode(delta)) : await this.sendCopy(target, next);
        if (reply.status === 'NEED_FULL') reply = await this.sendCopy(target, next);
        if (reply.status === 'STALE') throw this.staleError(e.base, reply);
        if (reply.status !== 'OK') throw new ReplicationError(`session ${shortId(e.base)}…: backup answered ${reply.status}`);
        // The old holder must let go before the write counts: a copy left behind would be a stale
        // stray that a partition's other side could take over.
        if (e.backup !== undefined && e.backup !== target.route && !(await this.#dropAt(e.backup, next))) {
          throw new ReplicationError(`session ${shortId(e.base)}…: its former backup ${e.backup} did not drop its copy`);
        }
        next.backup = target.route;
        const strays = reached.filter((m) => m.route !== target.route);
        if (strays.length > 0) void this.removals.start({ base: e.base, owner: this.route, epoch: e.epoch, destroy: false, until: next.expire }, strays, true);
        return;
      } catch (err) {
        // The backup died under us: choose the next one and send it everything.
        if (err instanceof ClusterRequestError && ['ERR_MEMBER_GONE', 'ERR_NOT_CONNECTED'].includes(err.code)) {
          reached.push(target);
          backup = undefined;
          continue;
        }
        throw err instanceof ReplicationError || err instanceof StaleOwnerError
          ? err
          : new ReplicationError(`session ${shortId(e.base)}…: backup ${target.route} did not acknowledge the write: ${String(err)}`, {
              cause: err,
            });
      }
    }
    throw new ReplicationError(`session ${shortId(e.base)}…: no backup acknowledged the write after 3 attempts`);
  }

  /**
   * Tells a former copy holder to drop its copy, once the new backup acknowledged. True when it did,
   * or when it is gone for good (refused, left, or silent past its grace).
   */
  async #dropAt(route: string, e: SessionEntry): Promise<boolean> {
    const m = this.memberByRoute(route);
    if (m !== undefined) return this.#drop(m, e);
    if (!this.isolation.ownerReleased(route)) return false;
    // Gone for good, or across a partition for long: if it comes back with its copy, it drops it then.
    const last = this.#lastSeen.get(route);
    if (last !== undefined) void this.removals.start({ base: e.base, owner: this.route, epoch: e.epoch, destroy: false, until: e.expire }, [last], true);
    return true;
  }

  async #drop(m: MemberInfo, e: SessionEntry): Promise<boolean> {
    const body = messages.remove.encode({ base: e.base, owner: this.route, epoch: e.epoch, destroy: false, until: 0 });
    try {
      await this.requestApply(m, MSG.remove, body);
      return true; // OK, or STALE: it knows a newer owner, and holds nothing of ours
    } catch (err) {
      this.log.debug({ err, session: shortId(e.base), holder: m.route }, 'a copy holder did not drop its copy');
      return err instanceof ClusterRequestError && err.code === 'ERR_MEMBER_GONE' && this.isolation.ownerReleased(m.route);
    }
  }

  /**
   * A member asks for a session to take it over. The owner grants it; a copy holder grants it only when
   * the owner is gone (past the grace of a silent owner) or said it does not hold it, and otherwise
   * names the owner. Either way the granting member keeps the data as a copy of the taker's.
   */
  async #onTake(from: MemberInfo, m: { base: string; timeoutMs: number; force: boolean }): Promise<Buffer> {
    const received = this.clock.now();
    return this.locks.run(m.base, () => {
      // The taker gave up long ago: granting now would leave the session with no primary. A request
      // read right after a pause of ours may have waited in the socket all along, so none is granted then.
      if ((m.timeoutMs > 0 && this.clock.now() - received > m.timeoutMs / 2) || this.isolation.recovering()) {
        throw new SessionUnavailableError(`session ${shortId(m.base)}…: the take request waited too long here`);
      }
      // Not from the smaller side of a partition: an epoch granted there is one the larger side cannot
      // see, and it would tie with the epoch the larger side takes the session over at.
      if (!this.isolation.hasQuorum()) throw new SessionUnavailableError(`session ${shortId(m.base)}…: this member does not see a majority of the cluster`);
      // Only to a member we see: one we evicted (paused, cut off) may be about to learn it lost its sessions.
      if (this.channel.members().every((x) => x.id !== from.id)) {
        throw new SessionUnavailableError(`session ${shortId(m.base)}…: ${from.route} is not a live member here (yet)`);
      }
      const e = this.table.get(m.base);
      const t = this.table.tombstone(m.base);
      let copy: SessionCopy | null = null;
      let movedTo: string | null = null;
      if (e === undefined) {
        if (t?.kind === 'moved' && t.owner !== from.route) movedTo = t.owner;
      } else if (e.role === 'primary' && e.owner === this.route) {
        copy = grantTo(e, from.route);
        this.log.info({ session: shortId(m.base), to: from.route, epoch: e.epoch }, 'session taken over by another member');
      } else if (e.owner === from.route) {
        copy = toCopy(e); // granted before; the answer was lost
      } else if (this.memberByRoute(e.owner) !== undefined && !m.force) {
        movedTo = e.owner;
      } else if (this.memberByRoute(e.owner) === undefined && !this.isolation.ownerReleased(e.owner)) {
        throw new SessionUnavailableError(`session ${shortId(m.base)}…: its owner ${e.owner} went silent a moment ago`);
      } else {
        // The owner is gone (or disowned it): past any epoch it may have granted on its own side.
        copy = grantTo(e, from.route, this.memberByRoute(e.owner) === undefined ? PAST_A_SILENT_OWNER : 1);
      }
      if (copy !== null) {
        // If the taker never got our answer (it timed out, its connection broke), nobody serves the
        // session: once the taker can no longer install it, check that it did, or adopt it back.
        // Until then its "not held" only means the answer is still on its way.
        const grant = {};
        this.#granting.set(m.base, grant);
        this.clock.setTimeout(() => {
          // Only this grant's mark: a later grant of the same session keeps its own time.
          if (this.#granting.get(m.base) === grant) this.#granting.delete(m.base);
          this.#toAudit.add(m.base);
        }, 2 * this.options.ackTimeout);
      }
      return Promise.resolve(messages.takeReply.encode({ copy, movedTo, removed: copy === null && t?.kind === 'removed' }));
    });
  }

  protected async takeOver(base: string): Promise<boolean> {
    let force: string | undefined;
    let mine: SessionEntry | undefined;
    let holders: MemberInfo[] = [];
    let askedAfterMove = false;
    for (let hop = 0; hop < MAX_HOPS && mine === undefined; hop++) {
      // Each hop waits on the network: a majority seen when the request came may be gone by now.
      if (!this.isolation.hasQuorum()) throw this.unavailable(base, 'this member lost the majority of the cluster during a takeover');
      const { replies, failed } = (await this.survey([base])).get(base)!;
      this.log.debug({ session: shortId(base), hop, failed, replies: describeReplies(replies) }, 'takeover: where the session is');
      // A member that did not answer may hold a newer copy, or the tombstone of a logout.
      if (failed > 0) {
        // A member that just died (its connection reset) is removed in milliseconds: ask again once the
        // verdict is in, rather than answer 503 to the first request after a crash.
        if (hop < 2) {
          await this.waitForVerdict(Math.min(250, this.options.dropTime / 4));
          continue;
        }
        throw this.unavailable(base, `${failed} member(s) did not answer where the session is`);
      }
      holders = replies.filter((x) => x.r.found || x.r.removed).map((x) => x.m);
      const local = this.table.get(base);
      const removed = this.newestRemoval(base, replies);
      const held = replies.filter((x) => x.r.found).sort((a, b) => compareHeld(b.r, a.r) || Number(b.r.primary) - Number(a.r.primary));
      const best = held[0];
      const localBest = local !== undefined && (best === undefined || compareHeld(local, best.r) >= 0);
      const top = localBest ? local : best?.r;
      // Destroyed by its owner (or a later one) than every copy found: it stays destroyed.
      if (removed !== undefined && (top === undefined || destroyCovers(removed.epoch, top.epoch))) {
        this.table.destroy(base, removed.epoch, removed.owner, this.clock.now() + 2 * this.options.dropTime);
        return false;
      }
      if (top === undefined) {
        // A holder let it go to a newer owner that answered before it installed the session (answers
        // are not one instant): the new owner holds it by now, ask again once.
        if (!askedAfterMove && replies.some((x) => !x.r.found && !x.r.removed && x.r.owner !== '')) {
          askedAfterMove = true;
          continue;
        }
        if (!this.isolation.settled() || this.isolation.silentRoutes().length > 0) {
          throw this.unavailable(base, 'not found on the members that answered, and some members cannot be asked now');
        }
        return false;
      }
      if (localBest && local.role === 'primary' && local.owner === this.route) {
        local.unverified = false; // checked after a possible cut-off: nobody took it over meanwhile
        return true;
      }
      const owner = top.owner === this.route ? undefined : this.memberByRoute(top.owner);
      if (owner === undefined && this.ownerMayServe(top.owner)) {
        throw this.unavailable(base, `its owner ${top.owner} may still be serving it (silent a moment ago, or not met yet)`);
      }
      // A live owner is always asked first, under its lock (it may be taking the session over itself
      // right now); only when it answered that it does not hold the session is a copy granted instead.
      const bypass = force === top.owner;
      if (owner === undefined || bypass) {
        if (localBest) {
          // The best copy is ours and its owner is gone or disowned it: we are the one to grant it.
          adopt(local, this.route);
          mine = local;
          break;
        }
      }
      const grantor = owner !== undefined && !bypass ? owner : best.m;
      let reply;
      try {
        reply = messages.takeReply.decode(
          await this.channel.request(
            grantor.id,
            MSG.take,
            messages.take.encode({ base, newOwner: this.route, timeoutMs: this.options.ackTimeout, force: bypass }),
            { timeoutMs: this.options.ackTimeout },
          ),
        );
      } catch (err) {
        if (err instanceof ClusterRequestError && ['ERR_NOT_CONNECTED', 'ERR_MEMBER_GONE'].includes(err.code) && hop < MAX_HOPS - 1) {
          await this.waitForVerdict(Math.min(250, this.options.dropTime / 4)); // it is dying
          continue;
        }
        throw this.unavailable(base, `${grantor.route} did not grant the takeover`, err);
      }
      if (reply.copy !== null) {
        await this.schemas.learn(reply.copy.entries, grantor);
        const granted = { ...reply.copy, owner: this.route };
        if (fence(this.table, base, granted.epoch, granted.owner) !== undefined) throw this.unavailable(base, 'a newer owner appeared during the takeover');
        mine = installGranted(this.table, granted);
      } else if (reply.removed) {
        return false;
      } else if (grantor.route === top.owner) {
        force = top.owner; // the owner does not hold it (restarted, or let it go): ask the best copy
      } else if (reply.movedTo !== null && this.memberByRoute(reply.movedTo) === undefined && reply.movedTo !== this.route) {
        throw this.unavailable(base, `${grantor.route} says ${reply.movedTo} owns it, and this member cannot reach ${reply.movedTo} now`);
      }
    }
    if (mine === undefined) throw this.unavailable(base, 'the session kept moving during the takeover');
    this.log.info({ session: shortId(base), epoch: mine.epoch }, 'took over session');
    // The newest version must be on a backup before the request goes on.
    if ((await this.#protectEntry(mine)) === 'lost') throw this.unavailable(base, 'lost the session to a newer owner during the takeover');
    // Every member that held a copy drops it before we serve: a copy left behind would be a stale
    // stray that the other side of a partition could take over. The others are told in passing.
    const others = this.channel.members().filter((m) => m.route !== mine.backup);
    const dropped = await Promise.all(others.filter((m) => holders.includes(m)).map((m) => this.#drop(m, mine)));
    const rest = others.filter((m) => !holders.includes(m));
    // Retried in the background until each has it: a member that missed it may get a stray copy late.
    if (rest.length > 0) void this.removals.start({ base, owner: this.route, epoch: mine.epoch, destroy: false, until: mine.expire }, rest, true);
    if (dropped.includes(false)) {
      mine.unverified = true; // checked again before it is served
      throw this.unavailable(base, 'a former copy holder did not let go of the session');
    }
    return true;
  }

  /** Sends the whole entry to its ring backup, if it has none there yet. */
  async #protectEntry(e: SessionEntry): Promise<'ok' | 'lost' | 'failed'> {
    // Holders a failed attempt may have reached (its answer was lost): told to drop what they got.
    const reached: MemberInfo[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const target = this.#backupTarget(e.base);
      if (target === undefined) {
        e.backup = undefined;
        return 'ok';
      }
      try {
        const reply = await this.sendCopy(target, e);
        if (reply.status === 'OK') {
          const old = e.backup;
          // Until the former backup let go, it stays recorded: the next repair drops it again.
          if (old !== undefined && old !== target.route && !(await this.#dropAt(old, e))) return 'failed';
          e.backup = target.route;
          e.resync = false;
          const strays = reached.filter((m) => m.route !== target.route);
          if (strays.length > 0) void this.removals.start({ base: e.base, owner: this.route, epoch: e.epoch, destroy: false, until: e.expire }, strays, true);
          return 'ok';
        }
        if (reply.status === 'STALE') {
          this.log.warn({ session: shortId(e.base), owner: reply.owner }, 'lost a session to a newer owner while protecting it');
          // Only if it is still ours here: the winner's copy may have replaced it meanwhile.
          if (this.table.get(e.base) === e) this.table.moved(e.base, reply.epoch, reply.owner);
          return 'lost';
        }
      } catch (err) {
        if (!(err instanceof ClusterRequestError)) throw err;
        reached.push(target);
        this.log.warn({ err, session: shortId(e.base), backup: target.route }, 'backup copy failed; trying again');
      }
    }
    this.log.error({ session: shortId(e.base) }, 'session has one copy: no backup acknowledged it');
    return 'failed';
  }

  async #protectOne(base: string): Promise<void> {
    await this.locks.run(base, async () => {
      const e = this.table.get(base);
      if (e === undefined || e.role !== 'primary' || e.owner !== this.route || !this.isolation.hasQuorum()) return;
      const target = this.#backupTarget(base);
      if (target?.route === e.backup && e.resync !== true) return;
      await this.#protectEntry(e);
      this.counters.reprotected++;
      this.#protectCount++;
    });
    if (this.#protect.size <= 1 && this.#protectCount > 0) {
      this.log.info(
        { sessions: this.#protectCount, ms: this.clock.now() - this.#protectStarted },
        're-protection done: every session has a backup again',
      );
      this.#protectCount = 0;
    }
  }

  /**
   * Finds what needs repair: primaries without a backup where the ring puts it (`ring`: after a
   * membership change), unverified primaries, and copies whose owner is gone. It walks the table a
   * slice per turn of the event loop (all of it when `slice` is Infinity): in one go, the walk over
   * 50k entries at a member's loss held up the requests in flight for tens of ms.
   */
  #scan(ring: boolean, slice = SCAN_SLICE): void {
    if (this.#protect.size === 0) this.#protectStarted = this.clock.now();
    // A scan in progress that looks at the ring keeps doing so when a plain one replaces it.
    this.#scanning = { entries: this.table.held(), ring: ring || this.#scanning?.ring === true };
    this.#scanSlice(this.#scanning, slice);
  }

  #scanSlice(scan: { entries: Iterator<SessionEntry>; ring: boolean }, slice: number): void {
    if (this.#scanning !== scan || this.stopping) return;
    const live = this.liveRoutes();
    const alive = new Set(live);
    const now = this.clock.now();
    for (let n = 0; n < slice; n++) {
      const next = scan.entries.next();
      if (next.done === true) {
        this.#scanning = undefined;
        return;
      }
      const e = next.value;
      if (e.expire <= now) continue;
      if (e.role === 'primary' && e.owner === this.route) {
        if (e.unverified === true) this.#toAudit.add(e.base);
        else if (e.backup === undefined || !alive.has(e.backup) || e.resync === true || (scan.ring && backupFor(e.base, this.route, live) !== e.backup)) {
          if (live.length > 1) this.#protect.push(e.base, e.base);
        }
      } else if (!alive.has(e.owner) && this.isolation.ownerReleased(e.owner)) {
        this.#toAudit.add(e.base);
      }
    }
    this.clock.setTimeout(() => this.#scanSlice(scan, slice), 0);
  }

  /**
   * A slow, rotating check of every session held here: a copy left behind by a lost drop (its holder
   * was slow, paused or cut off when the owner moved on), or a primary another member took over unseen,
   * is found and let go, even if nobody asks for it. The sweep only lets go of what a newer owner or a
   * destruction has superseded; it never adopts or verifies (it may run while the others move on).
   */
  #sweepCopies(): void {
    // Strays come from faults: the sweep runs for a while after each membership change, not forever.
    const now = this.clock.now();
    if (this.#toAudit.size > 0 || now > this.#sweepUntil) return;
    // Rounds follow each other tick by tick: pacing them (one per half drop time) let a stray found
    // after a partition healed miss the convergence limit in CI's chaos run.
    if (this.#sweepQueue.length === 0) this.#sweepQueue = this.table.bases();
    for (const base of this.#sweepQueue.splice(0, SWEEP_BATCH)) {
      this.#toAudit.add(base);
      this.#sweeping.add(base);
    }
  }

  protected maintain(): void {
    // Not while catching up after a pause: the others may not have seen us back yet, and may still
    // adopt what we hold; our audit answers would be out of date the moment they arrive.
    if (!this.isolation.hasQuorum() || this.isolation.recovering()) return;
    const now = this.clock.now();
    if (this.#dirty || (now - this.#lastScan >= SCAN_MS && this.#scanning === undefined)) {
      this.#scan(this.#dirty);
      this.#dirty = false;
      this.#lastScan = now;
    }
    if (!this.#auditing) this.#sweepCopies();
    this.#auditNext();
  }

  /**
   * Checks the next batch of `#toAudit`. After a member is lost, its sessions wait here to be adopted:
   * a batch that settled every session it checked is followed at once by the next (one batch per tick
   * made adoption take 8 s for 100k sessions); one that left some undecided waits for the next tick.
   */
  #auditNext(): void {
    if (this.#toAudit.size === 0 || this.#auditing || this.stopping) return;
    this.#auditing = true;
    const batch = [...this.#toAudit].slice(0, AUDIT_BATCH);
    for (const b of batch) this.#toAudit.delete(b);
    let settled = false;
    this.#audit(batch)
      .then(() => (settled = batch.every((b) => !this.#toAudit.has(b))))
      .catch((err: unknown) => {
        for (const b of batch) this.#toAudit.add(b);
        this.log.warn({ err }, 'anti-entropy round failed; retrying');
      })
      .finally(() => {
        this.#auditing = false;
        if (settled && this.isolation.hasQuorum() && !this.isolation.recovering()) this.#auditNext();
      });
  }

  /** Anti-entropy: checks each of `bases` with every live member and repairs what it finds. */
  async #audit(bases: string[]): Promise<void> {
    // Who owned each session when the survey went out: answers given before an ownership change that
    // reached us during the survey describe the old one (a new owner's "not held" read as "lost it").
    const asked = new Map(bases.map((b) => [b, ownership(this.table.get(b))]));
    const surveys = await this.survey(bases);
    for (const base of bases) {
      await this.locks.run(base, () => {
        this.#reconcile(base, surveys.get(base)!, asked.get(base));
        return Promise.resolve();
      });
    }
  }

  #reconcile(base: string, { replies, failed }: Survey, asked: string | undefined): void {
    const swept = this.#sweeping.delete(base);
    const e = this.table.get(base);
    if (e === undefined) return;
    if (ownership(e) !== asked) {
      if (!swept) this.#toAudit.add(base); // checked again with fresh answers
      return;
    }
    this.log.debug(
      { session: shortId(base), held: `${e.role}@${e.epoch}/${e.owner}v${e.version}`, failed, replies: describeReplies(replies) },
      'anti-entropy check',
    );
    const removed = replies.find((x) => x.r.removed && destroyCovers(x.r.epoch, e.epoch));
    if (removed !== undefined) {
      this.table.destroy(base, removed.r.epoch, removed.r.owner, e.expire);
      return;
    }
    const newer = replies.filter((x) => x.r.found && olderOwnership(e.epoch, e.owner, x.r.epoch, x.r.owner)).sort((a, b) => compareHeld(b.r, a.r))[0];
    if (newer !== undefined) {
      // A copy goes only once the newer owner itself holds the session: a grantor's word alone is not
      // enough, since its grant may still be on its way (or lost with the grantor) and ours may be
      // the last copy of the data.
      const installed = replies.some((x) => x.m.route === newer.r.owner && x.r.found && x.r.primary && !olderOwnership(x.r.epoch, x.r.owner, newer.r.epoch, newer.r.owner));
      if (e.role !== 'primary' && !installed) {
        if (!swept) this.#toAudit.add(base);
        return;
      }
      if (e.role === 'primary') this.log.info({ session: shortId(base), owner: newer.r.owner }, 'a newer owner took this session over meanwhile; letting go');
      this.table.moved(base, newer.r.epoch, newer.r.owner);
      return;
    }
    if (failed > 0 || !this.isolation.hasQuorum()) {
      if (!swept) this.#toAudit.add(base); // cannot tell yet
      return;
    }
    if (e.role === 'primary' && e.owner === this.route) {
      if (!swept) e.unverified = false;
      return;
    }
    // A copy: fine while its owner holds it, unless the owner keeps its backup on another live member
    // and has written since, or our copy is older than any backup change in progress (a copy left
    // behind when the backup moved); adopted when the owner is gone or lost it (not by the sweep).
    const owner = replies.find((x) => x.m.route === e.owner && x.r.found && x.r.epoch === e.epoch && x.r.owner === e.owner);
    const settledCopy = owner !== undefined && (owner.r.version > e.version || this.clock.now() - (e.touchedAt ?? 0) > this.options.dropTime);
    if (owner !== undefined && settledCopy && owner.r.backup !== '' && owner.r.backup !== this.route && this.memberByRoute(owner.r.backup) !== undefined) {
      this.log.debug({ session: shortId(base), owner: e.owner, backup: owner.r.backup }, 'dropping a copy the owner no longer keeps here');
      this.table.moved(base, e.epoch, e.owner);
      return;
    }
    // A grant on its way to a live taker: wait for it (checked again when the grant's time is up).
    if (swept || owner !== undefined || (this.#granting.has(base) && this.memberByRoute(e.owner) !== undefined)) return;
    if (this.memberByRoute(e.owner) === undefined && !this.isolation.ownerReleased(e.owner)) {
      this.#toAudit.add(base);
      return;
    }
    const peers = replies.filter((x) => x.r.found && x.r.epoch === e.epoch && x.r.owner === e.owner);
    const top = Math.max(e.version, ...peers.map((x) => x.r.version));
    if (e.version < top) return; // a member with a newer version adopts it
    const first = owners(base, [this.route, ...peers.filter((x) => x.r.version === top).map((x) => x.m.route)])[0];
    if (first !== this.route) return;
    adopt(e, this.route);
    this.log.info({ session: shortId(base), epoch: e.epoch }, 'adopted the session of a member that is gone');
    this.#protect.push(base, base);
  }

  protected onMemberAdded(member: MemberInfo): void {
    if (this.stopping) return;
    // A restarted member holds nothing: the copies we keep for it must find an owner again.
    for (const e of this.table.entries()) if (e.role === 'backup' && e.owner === member.route) this.#toAudit.add(e.base);
    this.#rescan();
  }

  /** After a membership change: backups may belong elsewhere on the ring now. */
  #rescan(): void {
    this.#sweepUntil = this.clock.now() + SWEEP_AFTER_CHANGE_MS;
    if (!this.isolation.hasQuorum()) {
      this.#dirty = true; // scanned when the majority is back
      return;
    }
    this.#scan(true);
    this.#lastScan = this.clock.now();
  }

  protected onMemberRemoved(member: MemberInfo, reason: 'left' | 'failed', refused: boolean): void {
    // Drops are owed only to a member that may come back as it was (silent, across a partition): a
    // dead process returns with a new id and an empty table. Owing 25k drops to a killed member made
    // every later copy slower (re-protection of 100k sessions took 30 s).
    if (reason === 'failed' && !refused) this.#lastSeen.set(member.route, member);
    else this.#lastSeen.delete(member.route);
    if (this.stopping) return;
    this.log.info({ member: member.route, reason }, 'member gone: re-protecting the sessions it held');
    this.#rescan();
  }

  /**
   * Graceful leave: peers first move the copies we hold for them, then each of our sessions is
   * granted to the member that holds its backup, which makes it its own and gives it a new backup.
   */
  async leave(): Promise<void> {
    this.stopping = true;
    const peers = this.channel.members();
    await Promise.allSettled(
      peers.map((m) => this.channel.request(m.id, MSG.leaving, Buffer.alloc(0), { timeoutMs: this.options.stateTransferTimeout })),
    );
    const queue = this.table.entries().filter((e) => e.role === 'primary' && e.owner === this.route);
    let handed = 0;
    let failed = 0;
    const worker = async (): Promise<void> => {
      for (let e = queue.shift(); e !== undefined; e = queue.shift()) {
        const base = e.base;
        await this.locks.run(base, async () => {
          const entry = this.table.get(base);
          if (entry === undefined || entry.role !== 'primary' || entry.owner !== this.route) return;
          const live = this.liveRoutes().filter((r) => r !== this.route); // not those leaving too
          const heir = this.memberByRoute(entry.backup !== undefined && live.includes(entry.backup) ? entry.backup : (owners(base, live)[0] ?? ''));
          if (heir === undefined) {
            failed++;
            return;
          }
          const granted = { ...toCopy(entry), owner: heir.route, epoch: entry.epoch + 1 };
          try {
            const reply = await this.requestApply(heir, MSG.handoff, messages.copy.encode(granted));
            if (reply.status === 'OK') {
              this.table.moved(base, granted.epoch, heir.route);
              handed++;
            } else failed++;
          } catch (err) {
            failed++;
            this.log.warn({ err, session: shortId(base), heir: heir.route }, 'hand-off failed; the session keeps its backup copy');
          }
        });
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    this.#protect.stop();
    this.log.info({ handed, failed }, 'graceful leave: sessions handed off');
  }

  /** A leaving member grants us one of its sessions: we make it ours and give it a backup. */
  async #onHandoff(from: MemberInfo, c: SessionCopy): Promise<Buffer> {
    await this.schemas.learn(c.entries, from);
    return this.locks.run(c.base, async () => {
      const stale = fence(this.table, c.base, c.epoch, c.owner);
      if (stale !== undefined) return messages.applyReply.encode(stale);
      const e = installGranted(this.table, c);
      await this.#protectEntry(e);
      return messages.applyReply.encode({ status: 'OK', epoch: 0, owner: '' });
    });
  }
}
