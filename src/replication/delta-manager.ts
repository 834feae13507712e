/**
 * Delta mode (Tomcat's DeltaManager): every member holds every session and every write is sent as a
 * delta to all. A member that joins pulls the full state from the longest-running member in bounded
 * pages, queueing the deltas that arrive meanwhile and applying them after, in version order. A member
 * that was paused or cut off pulls the state again and checks every copy it holds with the others.
 */
import { randomUUID } from 'node:crypto';
import type { MemberInfo } from '../cluster/types.js';
import { messages, type ApplyReply, type PackedCopy, type SessionCopy, type SessionDeltaMessage, type TakeReply } from '../codec/messages.js';
import { ClusterRequestError, ReplicationError, SessionUnavailableError, StaleOwnerError, StateTransferError } from '../errors.js';
import { PAST_A_SILENT_OWNER, applyCopy, applyDelta, applyPackedCopy, compareHeld, destroyCovers, expiredPast, fromCopy, grantTo, olderOwnership, toCopy, toPackedCopy } from './copies.js';
import { packedValues } from './packed-entries.js';
import { Replicator, describeReplies, type ReplicatorOptions } from './replicator.js';
import { Settlement } from './settlement.js';
import { MSG } from './message-types.js';
import { fenceUntil, type SessionEntry } from './session-table.js';
import { shortId } from './session-id.js';

const SNAPSHOT_TTL_MS = 120_000;
/** How often (a quarter of a drop time apart) a grant whose taker cannot be asked is checked again before giving up. */
const MAX_GRANT_CHECKS = 120;
const ADVISE_BACKUP_FROM = 4;
/** A state page stops growing past this many bytes of session data (at least one session per page). */
const STATE_PAGE_BYTES = 1024 * 1024;

/** Whether a state page was refused because its source has no state yet (it is pulling its own). */
function notYetReady(err: unknown): boolean {
  const cause = err instanceof StateTransferError ? err.cause : err;
  return cause instanceof ClusterRequestError && cause.code === 'ERR_REMOTE' && cause.remote?.code === 'ERR_SESSION_UNAVAILABLE';
}

/** Whether a request failed because the member has no handler for its message type (an older release). */
function noHandler(err: unknown): boolean {
  return err instanceof ClusterRequestError && err.code === 'ERR_REMOTE' && err.remote?.code === 'ERR_NO_HANDLER';
}

/** The delta-mode replication manager. */
export class DeltaManager extends Replicator {
  readonly mode = 'delta' as const;
  /** Deltas that arrived during our first state transfer, applied after it in arrival order. */
  #queued: SessionDeltaMessage[] | undefined;
  #transferDone = false;
  #transferring: Promise<void> | undefined;
  /** A pause or a partition happened: pull the state again and check every copy. */
  #resyncWanted = false;
  #advised = false;
  /**
   * Sessions served here whose copies may differ from ours: a failed write's content (its resend
   * failed too), or a takeover whose broadcast some members missed. Resent whole in the background
   * until every member has them, not only at the session's next request.
   */
  readonly #unsynced = new Set<string>();
  /** The grant of each session given lately, until its check (`#checkGrant`) is over: a taker that asks again gets it again. */
  readonly #granted = new Map<string, { takerId: string; epoch: number }>();
  #resending = false;
  /** Base lists frozen per transfer, so that a joiner's pages do not skip or repeat sessions. */
  readonly #snapshots = new Map<string, { bases: string[]; until: number }>();
  readonly #ready: Promise<void>;
  #markReady!: () => void;
  /** A lost owner's sessions whose copies it left at different versions, taken over without a request. */
  readonly #settlement: Settlement;

  constructor(options: ReplicatorOptions) {
    super(options);
    this.#ready = new Promise((resolve) => (this.#markReady = resolve));
    this.#settlement = new Settlement({
      route: this.route,
      table: this.table,
      locks: this.locks,
      log: this.log,
      lockWait: 2 * this.options.ackTimeout,
      liveRoutes: () => this.liveRoutes(),
      memberByRoute: (route) => this.memberByRoute(route),
      ownerMayServe: (owner) => this.ownerMayServe(owner),
      survey: (bases) => this.survey(bases),
      takeOver: (base) => this.takeOver(base),
      mayRun: () => !this.stopping && this.#transferDone && this.isolation.hasQuorum() && !this.isolation.recovering(),
    });
  }

  override install(): void {
    super.install();
    this.channel.handle(MSG.statePage, (_from, body) => this.#onStatePage(messages.statePage.decode(body), false));
    this.channel.handle(MSG.statePack, (_from, body) => this.#onStatePage(messages.statePage.decode(body), true));
    this.channel.handle(MSG.take, (from, body) => this.#onTake(from, messages.take.decode(body)));
  }

  /** A member takes one of our sessions over: we stop serving it and hand over what we hold. */
  #onTake(from: MemberInfo, m: { base: string; timeoutMs: number }): Promise<Buffer> {
    const received = this.clock.monotonic();
    return this.locks.run(m.base, () => {
      // A request read right after a pause of ours may have waited in the socket all along: its taker
      // gave up long ago, and a grant now would leave the session with no primary.
      if ((m.timeoutMs > 0 && this.clock.monotonic() - received > m.timeoutMs / 2) || this.isolation.recovering()) {
        throw new SessionUnavailableError(`session ${shortId(m.base)}…: the take request waited too long here`);
      }
      this.refuseUnadmitted(from); // granted to a member we do not see, our copy would name an owner we think gone
      // Not from the smaller side of a partition: an epoch granted there would tie with the larger side's.
      if (!this.isolation.hasQuorum()) throw new SessionUnavailableError(`session ${shortId(m.base)}…: this member does not see a majority of the cluster`);
      const e = this.table.get(m.base);
      if (e === undefined) return Promise.resolve(messages.takeReply.encode({ copy: null, movedTo: null, removed: this.table.tombstone(m.base)?.kind === 'removed' }));
      // Granted to this very taker a moment ago, and asked again: its answer was lost or slow (delta
      // seed 26798). The same grant again, checked from now; under our lock, as our check of it is.
      const given = this.#granted.get(m.base);
      if (given !== undefined && given.takerId === from.id && e.owner === from.route && e.epoch === given.epoch && e.role === 'backup') {
        this.#watchGrant(m.base, from, e.epoch, true);
        return Promise.resolve(messages.takeReply.encode({ copy: toCopy(e), movedTo: null, removed: false }));
      }
      // Every member keeps a copy: ours stays, as the taker's from the next epoch on (fenced for us).
      if (e.owner !== this.route) return Promise.resolve(messages.takeReply.encode({ copy: null, movedTo: e.owner, removed: false }));
      // A copy naming our route that we do not serve: our previous incarnation's session (pulled in a
      // state transfer). It is gone, and may have granted the next epoch before it died: past that.
      const bump = e.role === 'primary' ? 1 : PAST_A_SILENT_OWNER;
      const copy = grantTo(e, from.route, bump);
      this.#watchGrant(m.base, from, copy.epoch);
      return Promise.resolve(messages.takeReply.encode({ copy, movedTo: null, removed: false }));
    });
  }

  /**
   * A grant whose answer the taker never got (it timed out on a slow link, the connection broke, this
   * member was paused while granting) leaves the session with no primary: every other taker asks the
   * taker, which names this member. So once the taker has stopped waiting for the answer (an
   * `ackTimeout` from before we got its request, a quarter more for clocks running at other rates), ask
   * it what it holds; if it is below the granted epoch, the session is this member's again, one epoch
   * past the grant. A taker that got the answer and is still installing it (learning its schemas) then
   * finds its whole copy refused by ours (fencing): its takeover fails, and nobody served at the grant.
   */
  #watchGrant(base: string, taker: MemberInfo, epoch: number, again = false): void {
    const grant = { takerId: taker.id, epoch };
    this.#granted.set(base, grant);
    // A taker whose answer was slow asks once more at its timeout: the first grant's check waits for
    // that ask too, half an ackTimeout more (delta seed 4839: a check that took the session back just
    // before the second ask arrived left it 503).
    this.#checkGrant(base, taker, grant, 0, Math.ceil(this.options.ackTimeout * (again ? 1.25 : 1.75)));
  }

  /** One check of `grant` (see `#watchGrant`); a grant given again since has its own. */
  #checkGrant(base: string, taker: MemberInfo, grant: { takerId: string; epoch: number }, tries: number, delay: number): void {
    const epoch = grant.epoch;
    const over = () => {
      if (this.#granted.get(base) === grant) this.#granted.delete(base);
    };
    if (tries > MAX_GRANT_CHECKS) {
      over();
      this.log.warn({ session: shortId(base), taker: taker.route, epoch }, 'could not check that the taker installed our grant; a request at any member checks again');
      return;
    }
    this.clock.setTimeout(() => {
      if (this.stopping) return over();
      this.locks
        .run(
          base,
          async () => {
            if (this.#granted.get(base) !== grant) return true; // given again since: that check runs
            const e = this.table.get(base);
            // Destroyed, or moved past the grant: the taker installed it (or a later owner came along).
            if (e === undefined || e.owner !== taker.route || e.epoch !== epoch || e.role !== 'backup') return true;
            if (!this.channel.members().some((x) => x.id === taker.id)) {
              // Restarted: the new process grants a copy naming its route past anything the old one held.
              if (this.memberByRoute(taker.route) !== undefined) return true;
              // Removed, but it may be back (a partition): checked until then, or until the session moved or ended.
              return 'away';
            }
            if (!this.isolation.hasQuorum() || this.isolation.recovering()) return false;
            const raw = await this.channel.request(taker.id, MSG.locate, messages.locate.encode({ base }), { timeoutMs: this.options.ackTimeout });
            const r = messages.locateReply.decode(raw);
            // What the taker holds, or its trace: a copy, a logout, a newer owner it let the session go
            // to, a copy that expired there. One at the grant's epoch or later says it installed the
            // grant (and what came after may have ended the session: taking it back would bring back
            // an old copy, delta seed 1679). Nothing at all says it never did: a take that waited in a
            // cut until its taker gave up is granted when it arrives (delta seed 2310).
            if (r.removed || (r.owner !== '' && r.epoch >= epoch) || this.table.get(base) !== e) return true;
            this.log.info({ session: shortId(base), taker: taker.route, epoch }, 'the taker never installed our grant: taking the session back');
            await this.#claim(base, { ...e, role: 'primary', owner: this.route, epoch: epoch + 1 });
            return true;
          },
          2 * this.options.ackTimeout,
        )
        .then(
          (done) => {
            if (done === 'away') this.#checkGrant(base, taker, grant, tries, this.options.dropTime);
            else if (!done) this.#checkGrant(base, taker, grant, tries + 1, this.options.dropTime / 4);
            else over();
          },
          (err: unknown) => {
            if (err instanceof ClusterRequestError && err.code === 'ERR_STOPPED') return over();
            this.log.debug({ err, session: shortId(base) }, 'checking a grant failed; retrying');
            this.#checkGrant(base, taker, grant, tries + 1, this.options.dropTime / 4);
          },
        );
    }, delay);
  }

  /** Resolves when the first state transfer finished (or there was no one to transfer from) and a majority is seen. */
  override async ready(): Promise<void> {
    await Promise.all([this.#ready, super.ready()]);
  }

  protected needsVerification(): boolean {
    return true; // every member holds everything, and a cut-off member missed deltas
  }

  /**
   * A pause or a lost lease: besides checking its copies, this member pulls what the others created
   * meanwhile, also when it held nothing (delta seed 8644: a member cut off with no session never
   * reconciled, and a session created on the far side, whose owner then died, stayed off it).
   */
  protected override markUnverified(reason: string): void {
    this.#resyncWanted = true;
    // The others may take a moment to admit us again, and what they create until then reaches us by
    // no delta: a second pass, once they surely have, picks it up.
    this.clock.setTimeout(() => (this.#resyncWanted = true), 2 * this.options.dropTime);
    super.markUnverified(reason);
  }

  protected override lostTo(e: SessionEntry, owner: string, epoch: number): void {
    // Every member keeps a copy. Its version may have been burnt by the failed write (the content is
    // older than the number says): no version, so the newer owner's next write resends it whole.
    e.owner = owner;
    e.epoch = epoch;
    e.version = -1;
    e.role = 'backup';
  }

  protected recheck(): void {
    this.#resyncWanted = true;
  }

  #holders(): MemberInfo[] {
    return this.channel.members().filter((m) => !this.leaving.has(m.route));
  }

  protected mustAcknowledgeRemoval(): MemberInfo[] {
    return this.#holders();
  }

  protected expectedHolders(): MemberInfo[] {
    // Every member holds every session: this one does not, so ask one other (the first admitted).
    return this.#holders().slice(0, 1);
  }

  protected override onRemoved(base: string): void {
    // Writes queued during our state transfer are older than a destruction of their session: applied
    // after it, once its tombstone is forgotten, they would bring the session back.
    if (this.#queued !== undefined) this.#queued = this.#queued.filter((m) => m.base !== base);
  }

  protected override applyIncomingDelta(m: SessionDeltaMessage): ApplyReply {
    if (this.#queued !== undefined && this.table.get(m.base) === undefined) {
      this.#queued.push(m);
      return { status: 'OK', epoch: 0, owner: '' };
    }
    return applyDelta(this.table, m, 'backup');
  }

  /**
   * Sends to every live member; a member that went away meanwhile is not a failure (it reconciles when
   * it comes back), a refusal or a silence is.
   *
   * Members removed for failure a moment ago are not waited for. Every member this one counts toward
   * its lease is live here (a removal withdraws its answers, lease.ts), so the members that acknowledge
   * make a majority with this one, and any takeover on another side (a majority of the same seats,
   * once every promise to us ran out) asks one of them. (A guard that answered 503 here until the
   * removed member's grace ended was shown unnecessary by the mutation run: it survived 1,700 seeds with
   * every nemesis, resets on one side only among them; it cost every write 503 for a lease after any
   * member died.)
   */
  async #toAll(base: string, body: Buffer, full: SessionEntry, sendFull: boolean): Promise<void> {
    const results = await Promise.allSettled(
      this.#holders().map(async (m) => {
        const reply = sendFull ? await this.#sendWhole(m, full) : await this.requestApply(m, MSG.delta, body);
        return reply.status === 'NEED_FULL' ? this.#sendWhole(m, full) : reply;
      }),
    );
    for (const r of results) {
      if (r.status === 'rejected') {
        const err: unknown = r.reason;
        if (err instanceof ClusterRequestError && err.code === 'ERR_MEMBER_GONE' && this.isolation.recentlySilent().length === 0) continue;
        throw new ReplicationError(`session ${shortId(base)}…: a copy holder did not acknowledge: ${String(err)}`, { cause: err });
      }
      if (r.value.status === 'STALE') throw this.staleError(base, r.value);
    }
  }

  /**
   * Sends `full` whole to `m`, once more if the answer was slow: the same copy applied twice is applied
   * once (same epoch and version), and a takeover's claim failed by one message behind a slow one on
   * its connection answered 503 for a live session with no fault left (delta seed 26798).
   */
  async #sendWhole(m: MemberInfo, full: SessionEntry): Promise<ApplyReply> {
    try {
      return await this.sendCopy(m, full);
    } catch (err) {
      if (!(err instanceof ClusterRequestError) || err.code !== 'ERR_REQUEST_TIMEOUT') throw err;
      return this.sendCopy(m, full);
    }
  }

  protected async resyncCopies(e: SessionEntry): Promise<void> {
    // At a version of its own: a member that applied the failed write late must not keep it.
    e.version++;
    try {
      await this.#toAll(e.base, Buffer.alloc(0), e, true);
    } catch (err) {
      // Until it is resent, a crash of this member would let a copy serve the failed write; and served
      // here meanwhile, the older content would be read before the failed write appears elsewhere (a
      // member cut off with its lease running, an ackTimeout shorter than the lease): checked with the
      // others first (a takeover of its own), as the background resend does.
      this.#unsynced.add(e.base);
      e.unverified = true;
      throw err;
    }
    e.resync = false;
    this.#unsynced.delete(e.base);
  }

  /** Resends the sessions left unsynced, one at a time under each one's lock. */
  async #resendUnsynced(): Promise<void> {
    for (const base of [...this.#unsynced]) {
      if (!this.isolation.hasQuorum() || this.isolation.recovering()) return;
      await this.locks
        .run(
          base,
          async () => {
            const e = this.table.get(base);
            // Destroyed, taken over, or written since (a write that succeeded resent it whole): done.
            if (e === undefined || e.resync !== true || e.owner !== this.route || e.role !== 'primary') {
              this.#unsynced.delete(base);
              return;
            }
            const marks = this.unverifiedMarks;
            try {
              await this.resyncCopies(e);
            } catch (err) {
              if (err instanceof StaleOwnerError && err.owner !== undefined && this.table.get(base) === e) {
                this.lostTo(e, err.owner, err.epoch ?? e.epoch + 1);
                this.#unsynced.delete(base);
              }
              throw err;
            }
            // Every live member took the whole session at our epoch and none knew a newer owner.
            this.verified(e, marks);
          },
          2 * this.options.ackTimeout,
        )
        .catch((err: unknown) => this.log.debug({ err, session: shortId(base) }, 'resending a session after a failed write failed again; retrying'));
    }
  }

  protected async replicate(e: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void> {
    const work = this.#toAll(delta.base, messages.delta.encode(delta), next, e.resync === true);
    if (this.options.ack === 'sync') return work;
    work.catch((err: unknown) => {
      this.counters.replicationFailures++;
      next.resync = true;
      this.log.warn({ err, session: shortId(delta.base) }, 'asynchronous replication failed');
    });
  }

  /** What every live member holds of `base` (copies and destruction tombstones). */
  async #fetchAll(base: string): Promise<{ replies: { m: MemberInfo; reply: TakeReply }[]; failed: number }> {
    const replies: { m: MemberInfo; reply: TakeReply }[] = [];
    let failed = 0;
    await Promise.all(
      this.channel.members().map(async (m) => {
        try {
          const raw = await this.channel.request(m.id, MSG.fetch, messages.locate.encode({ base }), { timeoutMs: this.options.ackTimeout });
          replies.push({ m, reply: messages.takeReply.decode(raw) });
        } catch (err) {
          if (!(err instanceof ClusterRequestError && err.code === 'ERR_MEMBER_GONE')) failed++;
        }
      }),
    );
    return { replies, failed };
  }

  protected takeOver(base: string): Promise<boolean> {
    return this.#takeOver(base, 0);
  }

  async #takeOver(base: string, waits: number): Promise<boolean> {
    const { replies, failed, promised } = (await this.survey([base])).get(base)!;
    const local = this.table.get(base);
    this.log.debug(
      { session: shortId(base), failed, local: local === undefined ? '-' : `${local.role}@${local.epoch}/${local.owner}v${local.version}`, replies: describeReplies(replies) },
      'takeover: where the session is',
    );
    const removed = this.newestRemoval(base, replies);
    const held = replies.filter((x) => x.r.found).sort((a, b) => compareHeld(b.r, a.r))[0];
    let best: { copy: SessionCopy; m: MemberInfo | undefined } | undefined = local === undefined ? undefined : { copy: toCopy(local), m: undefined };
    if (held !== undefined && (best === undefined || compareHeld(held.r, best.copy) > 0)) {
      const reply = messages.takeReply.decode(
        await this.channel.request(held.m.id, MSG.fetch, messages.locate.encode({ base }), { timeoutMs: this.options.ackTimeout }),
      );
      if (reply.copy === null) {
        // It ended there since the survey (its copy expired, a logout came): asked again, every member
        // tells how, and the request gets "no session", not 503 (delta seed 347 of `definite`).
        if (waits < 2) return this.#takeOver(base, waits + 1);
        throw this.unavailable(base, `${held.m.route} let the session go while it was being taken over`);
      }
      // Its owner is alive for the holder (a restarted member it admitted, that we have not yet).
      if (reply.movedTo !== null && reply.movedTo !== this.route && this.memberByRoute(reply.movedTo) === undefined) {
        throw this.unavailable(base, `${held.m.route} sees its owner ${reply.movedTo}, which this member has not admitted yet`);
      }
      best = { copy: reply.copy, m: held.m };
      // A newer write may have reached us while we asked: never install an older version over it.
      const now = this.table.get(base);
      if (now !== undefined && compareHeld(now, best.copy) > 0) best = { copy: toCopy(now), m: undefined };
    }
    // Destroyed by its owner (or a later one) than every copy found: it stays destroyed.
    if (removed !== undefined && (best === undefined || destroyCovers(removed.epoch, best.copy.epoch))) {
      this.table.destroy(base, removed.epoch, removed.owner, fenceUntil(local?.expire ?? this.clock.now() + 2 * this.options.dropTime));
      return false;
    }
    // A copy newer than every one found expired (by its holder's clock, ahead of the others'): the
    // session has ended, and an older copy (one a member missed writes on) is never served.
    const expired = expiredPast(this.table, base, replies.map((x) => x.r), best?.copy);
    if (expired !== undefined) {
      if (failed > 0 || !this.isolation.settled() || this.isolation.unreachable() > 0) {
        throw this.unavailable(base, 'a copy of it expired, and some members that may hold a newer one cannot be asked now');
      }
      this.table.outlived(base, expired);
      return false;
    }
    if (best === undefined) {
      if (failed > 0 || !this.isolation.settled() || this.isolation.unreachable() > 0) {
        throw this.unavailable(base, 'not found on the members that answered, and some members cannot be asked now');
      }
      return false;
    }
    // The survey waited on the network: a majority seen when the request came may be gone by now.
    if (!this.isolation.hasQuorum()) throw this.unavailable(base, 'this member lost the majority of the cluster during a takeover');
    const owner = best.copy.owner;
    const ownerMember = owner === this.route ? undefined : this.memberByRoute(owner);
    if (ownerMember === undefined && owner !== this.route && (this.ownerMayServe(owner) || promised.has(owner))) {
      // A killed owner's sessions are released a lease after its last answer: one slow request, not 503s.
      if (waits < 2 && (await this.awaitRelease(owner, promised))) return this.#takeOver(base, waits + 1);
      throw this.unavailable(base, `its owner ${owner} may still be serving it (its lease may not have run out, or it was not met yet)`);
    }
    let stale = false;
    if (ownerMember !== undefined) {
      // A live owner lets go under its lock, after any write it has in flight: the copy it hands over
      // has every write it acknowledged (a copy read from a survey may be one write behind).
      const take = async () =>
        messages.takeReply.decode(
          await this.channel.request(ownerMember.id, MSG.take, messages.take.encode({ base, newOwner: this.route, timeoutMs: this.options.ackTimeout, force: false }), {
            timeoutMs: this.options.ackTimeout,
          }),
        );
      let reply;
      try {
        try {
          reply = await take();
        } catch (err) {
          // The take or its answer was slow (each may be, delta seed 26798): the owner may have
          // granted it. Asked again, once, it gives the same grant under its lock (`#onTake`), or a
          // new one if it took the session back meanwhile.
          if (!(err instanceof ClusterRequestError) || err.code !== 'ERR_REQUEST_TIMEOUT') throw err;
          reply = await take();
        }
      } catch (err) {
        throw this.unavailable(base, `its owner ${owner} did not hand the session over`, err);
      }
      if (reply.copy === null) {
        // Ended there since the survey (its copy expired): asked again, as above (delta seed 493).
        if (reply.movedTo === null && waits < 2) return this.#takeOver(base, waits + 1);
        throw this.unavailable(base, `its owner ${owner} no longer serves the session`);
      }
      best = { copy: reply.copy, m: ownerMember };
      // A grant older than our own copy: the owner gave us again a grant of its own that we had since
      // passed on to it, at a newer epoch it never installed (its answer lost in a cut). Claimed at the
      // old epoch, the session would rank below copies of the newer one, which state transfers spread,
      // and lose the writes acknowledged meanwhile (delta seed 41530): taken as from a silent owner,
      // past every epoch seen, from the newer of the two copies.
      const now = this.table.get(base);
      if (now !== undefined && olderOwnership(reply.copy.epoch, reply.copy.owner, now.epoch, now.owner)) {
        stale = true;
        if (compareHeld(now, reply.copy) > 0) best = { copy: toCopy(now), m: undefined };
      }
    }
    const granted = ownerMember !== undefined && !stale;
    if (best.m !== undefined && best.copy.expire > this.clock.now()) await this.schemas.learn(best.copy.entries, best.m);
    // Granted by the owner: its epoch. Else one above every epoch seen.
    let epoch = best.copy.epoch;
    if (!granted) {
      for (const { r } of replies) epoch = Math.max(epoch, r.epoch);
      // Ours as a primary that never granted it (after a pause): one up. Else its owner is gone (our own
      // previous incarnation, too, when the copy names our route): past any epoch it may have granted.
      epoch += owner === this.route && local?.role === 'primary' ? 1 : PAST_A_SILENT_OWNER;
    }
    // A copy expired by our clock (its holders' run behind) is claimed too: the read that follows finds
    // it expired here and answers "no session", and its trace (ours, at the claimed epoch) ends it for
    // every later survey (copies.ts `expiredPast`). Ending it here as a logout (delta seeds 30858,
    // 17353) was needed only before those two: the mutant that skipped it survived 3,000 seeds.
    await this.#claim(base, { ...fromCopy(best.copy, 'primary'), owner: this.route, epoch });
    this.log.info({ session: shortId(base), epoch }, 'took over session');
    return true;
  }

  /**
   * Installs `mine`, this member's at a new epoch, and sends it whole to every member: that tells them
   * who owns it now (fencing the old owner), and makes every copy equal to ours: a holder may have
   * applied a write the old owner never committed, under the same version number.
   */
  async #claim(base: string, mine: SessionEntry): Promise<void> {
    // Not served until every member has it: a request that finds the session here meanwhile (without
    // the lock) would read this copy while a member that did not answer may hold a newer one, such as
    // a write that failed here (delta seed 565).
    mine.unverified = true;
    this.table.set(mine);
    const marks = this.unverifiedMarks;
    try {
      await this.#toAll(base, Buffer.alloc(0), mine, true);
      this.verified(mine, marks);
    } catch (err) {
      if (this.table.get(base) === mine) {
        // A newer owner refused it: ours no longer. Otherwise some members may have applied the new
        // epoch: it stays ours, checked again (a takeover of our own) before it is served, and granted
        // to any member that asks meanwhile, never left with nobody to grant it.
        if (err instanceof StaleOwnerError && err.owner !== undefined) this.lostTo(mine, err.owner, err.epoch ?? mine.epoch + 1);
        else {
          // Resent whole in the background too: members that missed the new epoch hold other copies.
          mine.unverified = true;
          mine.resync = true;
          this.#unsynced.add(base);
        }
      }
      throw this.unavailable(base, 'the takeover was not acknowledged by every member', err);
    }
  }

  protected maintain(): void {
    this.#settlement.maintain();
    if (this.#unsynced.size > 0 && !this.#resending && this.isolation.hasQuorum() && !this.isolation.recovering()) {
      this.#resending = true;
      void this.#resendUnsynced().finally(() => (this.#resending = false));
    }
    // Not while recovering from a pause or a cut-off: until the others have admitted us again they may
    // still take our sessions over, and a check made before that would pass a copy that is stale a
    // moment later.
    if (!this.#resyncWanted || this.#transferring !== undefined || !this.#transferDone || !this.isolation.hasQuorum() || this.isolation.recovering()) return;
    if (this.channel.members().length === 0) return;
    this.#resyncWanted = false;
    this.#transferring = this.#resync()
      .catch((err: unknown) => {
        this.#resyncWanted = true;
        this.log.warn({ err }, 'reconciliation after a pause or a partition failed; retrying');
      })
      .finally(() => (this.#transferring = undefined));
  }

  /** After a pause or a partition: pull what was created meanwhile, then check every copy held here. */
  async #resync(): Promise<void> {
    // Any member will do: we are the one behind.
    const source = this.channel.members()[0];
    // Not our own sessions with a request in flight here: one of ours newer there is a write of ours
    // the source applied and we have not committed yet, and installing it as a copy would leave our own
    // session here as a backup naming us its owner, with no primary anywhere. (Ours without one, a
    // former incarnation's after a restart cut off, are installed: the survey below settles them.)
    const inFlight = (c: { base: string; owner: string }): boolean => c.owner === this.route && this.locks.busy(c.base);
    if (source !== undefined) await this.#transferFrom(source, this.clock.monotonic() + this.options.stateTransferTimeout, inFlight);
    const bases = this.table.bases();
    for (let i = 0; i < bases.length; i += 256) {
      const batch = bases.slice(i, i + 256);
      const surveys = await this.survey(batch);
      for (let j = 0; j < batch.length; j++) {
        const base = batch[j];
        await this.locks.run(base, async () => {
          const e = this.table.get(base);
          if (e === undefined) return;
          const { replies, failed } = surveys.get(base)!;
          const removed = replies.find((x) => x.r.removed && destroyCovers(x.r.epoch, e.epoch));
          if (removed !== undefined) {
            this.table.destroy(base, removed.r.epoch, removed.r.owner, fenceUntil(e.expire));
            return;
          }
          const newer = replies.filter((x) => x.r.found && compareHeld(x.r, e) > 0).sort((a, b) => compareHeld(b.r, a.r))[0];
          if (newer !== undefined) {
            const reply = messages.takeReply.decode(
              await this.channel.request(newer.m.id, MSG.fetch, messages.locate.encode({ base }), { timeoutMs: this.options.ackTimeout }),
            );
            if (reply.copy !== null) {
              await this.schemas.learn(reply.copy.entries, newer.m);
              applyCopy(this.table, reply.copy, 'backup');
            }
            return;
          }
          if (failed > 0) {
            this.#resyncWanted = true; // cannot tell yet
            return;
          }
          // The session moved on while we were away and has ended: ours is not served.
          if (this.dropOutlived(base, replies, e)) return;
          e.unverified = false;
        });
      }
    }
    this.log.info({ sessions: bases.length, from: source?.route }, 'reconciled with the cluster after a pause or a partition');
  }

  protected onMemberAdded(member: MemberInfo): void {
    const count = this.channel.members().length + 1;
    if (count >= ADVISE_BACKUP_FROM && !this.#advised) {
      this.#advised = true;
      this.log.warn(
        { members: count },
        `delta mode with ${count} members sends every write to ${count - 1} members; mode 'backup' would send it to one`,
      );
    }
    // Only a newcomer pulls the state, from a member that has its own (a member still pulling, or just
    // started, answers "not ready"). Who is new is not told by start times: clocks may be off.
    if (!this.#transferDone && this.#transferring === undefined) {
      this.#transferring = this.#transfer().finally(() => (this.#transferring = undefined));
    }
    // What we created, took over or destroyed before we saw this member went only to the members we knew,
    // and a member with its own state pulls none: offer it, once it has surely admitted us too.
    this.clock.setTimeout(() => {
      if (this.stopping || !this.channel.members().some((m) => m.id === member.id)) return;
      this.#offer(member).catch((err: unknown) => this.log.warn({ err, member: member.route }, 'offering our sessions to a member we just admitted failed'));
    }, this.options.dropTime);
  }

  /** Sends `member` our destructions, and each session we own that it lacks or holds older. */
  async #offer(member: MemberInfo): Promise<void> {
    for (const [base, t] of this.table.destroyedBy(this.route)) {
      void this.removals.start({ base, owner: t.owner, epoch: t.epoch, destroy: true, until: t.until }, [member]);
    }
    const mine = this.table.entries().filter((e) => e.role === 'primary' && e.owner === this.route).map((e) => e.base);
    const body = (bases: string[]) => messages.audit.encode({ bases });
    for (let i = 0; i < mine.length; i += 256) {
      const batch = mine.slice(i, i + 256);
      const reply = messages.auditReply.decode(await this.channel.request(member.id, MSG.audit, body(batch), { timeoutMs: this.options.ackTimeout }));
      for (let j = 0; j < batch.length; j++) {
        const r = reply.items[j];
        const base = batch[j];
        await this.locks.run(base, async () => {
          const e = this.table.get(base);
          if (e === undefined || e.role !== 'primary' || e.owner !== this.route) return;
          if (r.removed && destroyCovers(r.epoch, e.epoch)) {
            this.table.destroy(base, r.epoch, r.owner, fenceUntil(e.expire));
            return;
          }
          if (!r.found || compareHeld(r, e) < 0) await this.sendCopy(member, e);
        });
      }
    }
  }

  protected onMemberRemoved(member: MemberInfo, reason: 'left' | 'failed'): void {
    if (reason === 'left' || this.stopping) return;
    // A member that failed mid-write may have reached only some members: each copy of its sessions
    // goes to every member that lacks it (every member holds everything).
    const bases = this.table.entries().filter((e) => e.owner === member.route).map((e) => e.base);
    if (bases.length > 0) {
      this.#spread(bases).catch((err: unknown) => this.log.warn({ err, member: member.route }, 'spreading the sessions of a failed member failed'));
    }
    // And where it left its copies at different versions, they are settled without waiting for a request.
    this.#settlement.memberLost();
  }

  /** Sends each of `bases` to the members that hold neither it nor its destruction. */
  async #spread(bases: string[]): Promise<void> {
    for (let i = 0; i < bases.length; i += 256) {
      const surveys = await this.survey(bases.slice(i, i + 256));
      for (const [base, { replies }] of surveys) {
        await this.locks.run(base, async () => {
          const e = this.table.get(base);
          if (e === undefined) return;
          const removed = replies.find((x) => x.r.removed && destroyCovers(x.r.epoch, e.epoch));
          if (removed !== undefined) {
            this.table.destroy(base, removed.r.epoch, removed.r.owner, fenceUntil(e.expire));
            return;
          }
          const lacking = replies.filter((x) => !x.r.found && !x.r.removed).map((x) => x.m);
          await Promise.allSettled(lacking.map((m) => this.sendCopy(m, e)));
        });
      }
    }
  }

  /** Called once the channel runs: if no older member shows up in the discovery window, we are first. */
  override started(): void {
    super.started();
    const firstIfNobodyHadState = (): void => {
      if (this.#transferDone) return;
      // A transfer attempt under way when the window ends decides first: if it found nobody with a
      // state, this member is first after it (skipping it left a member never ready).
      if (this.#transferring !== undefined) void this.#transferring.then(firstIfNobodyHadState, firstIfNobodyHadState);
      else void this.#transferred();
    };
    this.clock.setTimeout(firstIfNobodyHadState, this.options.discoveryMs ?? Math.round((this.options.dropTime * 2) / 3));
  }

  /** Members to pull the state from: any, in the order they were admitted (those without a state say so). */
  #sources(): MemberInfo[] {
    return this.channel.members();
  }

  /**
   * Pulls the state from a member that has one. When none of those asked has one yet (they are starting
   * or pulling too), nothing is concluded: the next member admitted is asked, and the discovery window's
   * end (`started`) makes this member the first. Deltas that arrive meanwhile wait in `#queued`.
   */
  async #transfer(): Promise<void> {
    this.#queued ??= [];
    const tried = new Set<string>();
    let notReady = 0;
    for (;;) {
      const source = this.#sources().filter((m) => !tried.has(m.id))[0];
      if (source === undefined) {
        if (tried.size === notReady) return; // nobody with a state yet: not done
        this.log.error(
          new StateTransferError(`state transfer failed from every member that has a state (${tried.size - notReady} tried); serving what arrives from now on`),
        );
        break;
      }
      tried.add(source.id);
      try {
        // Each source gets the whole stateTransferTimeout.
        await this.#transferFrom(source, this.clock.monotonic() + this.options.stateTransferTimeout);
        break;
      } catch (err) {
        if (notYetReady(err)) {
          notReady++;
          this.log.info({ from: source.route }, 'that member has no state to transfer yet; asking another');
          continue;
        }
        this.log.error(
          { err: new StateTransferError(`state transfer from ${source.route} failed; retrying from another member`, { cause: err }) },
          'state transfer failed',
        );
      }
    }
    await this.#transferred();
  }

  /** The first state transfer is over (or there was none to make): queued deltas applied, ready. */
  async #transferred(): Promise<void> {
    const queued = this.#queued ?? [];
    this.#queued = undefined;
    this.#transferDone = true;
    for (const m of queued) {
      // A gap (the transfer's copy was older than the delta's base) is filled from the owner.
      const reply = applyDelta(this.table, m, 'backup');
      if (reply.status === 'NEED_FULL') await this.#refetch(m.base).catch(() => undefined);
    }
    this.#markReady();
    this.#settlement.restarted();
    // Writes that a member made before it saw us are in neither the pages nor its deltas to us:
    // a second, reconciling pass once everyone has seen us picks them up.
    this.clock.setTimeout(() => (this.#resyncWanted = true), this.options.dropTime);
  }


  /** Fetches the newest copy of `base` from the others. */
  async #refetch(base: string): Promise<void> {
    const { replies } = await this.#fetchAll(base);
    const best = replies
      .filter((x) => x.reply.copy !== null)
      .sort((a, b) => compareHeld(b.reply.copy!, a.reply.copy!))[0];
    if (best === undefined) return;
    await this.schemas.learn(best.reply.copy!.entries, best.m);
    applyCopy(this.table, best.reply.copy!, 'backup');
  }

  /** Pulls every page from `source`; copies that `skip` names are left out. */
  async #transferFrom(source: MemberInfo, deadline: number, skip?: (c: { base: string; owner: string }) => boolean): Promise<void> {
    const transfer = randomUUID();
    const started = this.clock.monotonic();
    this.log.info({ from: source.route }, 'state transfer started');
    let sessions = 0;
    let bytes = 0;
    // Packed pages first; a member without them (an older release) gets asked for whole copies.
    let packed = true;
    const fetchPage = (offset: number): Promise<Buffer> => {
      const left = deadline - this.clock.monotonic();
      if (left <= 0) return Promise.reject(new StateTransferError(`state transfer from ${source.route} took longer than stateTransferTimeout`));
      const request = messages.statePage.encode({ transfer, offset, limit: this.options.stateTransferBatch });
      return this.channel.request(source.id, packed ? MSG.statePack : MSG.statePage, request, { timeoutMs: Math.min(left, this.options.ackTimeout * 4) });
    };
    // The next page is on its way while this one is applied.
    const following = (next: number): Promise<Buffer> | undefined => {
      const p = next >= 0 ? fetchPage(next) : undefined;
      p?.catch(() => undefined); // awaited on the next round; a failure of this round must not leave it unhandled
      return p;
    };
    let pending: Promise<Buffer> | undefined = fetchPage(0);
    while (pending !== undefined) {
      let raw: Buffer;
      try {
        raw = await pending;
      } catch (err) {
        if (!packed || sessions > 0 || !noHandler(err)) throw err;
        this.log.info({ from: source.route }, 'the source has no packed state pages (an older release): asking for whole copies');
        packed = false;
        pending = fetchPage(0);
        continue;
      }
      bytes += raw.length;
      if (packed) {
        const page = messages.statePackReply.decode(raw);
        pending = following(page.next);
        sessions += await this.#applyPackedPage(page, source, skip);
      } else {
        const page = messages.statePageReply.decode(raw);
        pending = following(page.next);
        sessions += await this.#applyPage(page, source, skip);
      }
    }
    this.log.info({ from: source.route, sessions, bytes, packed, ms: Math.round(this.clock.monotonic() - started) }, 'state transfer done');
  }

  /** Installs a page of whole copies; returns how many sessions it carried. */
  async #applyPage(page: { sessions: SessionCopy[] }, source: MemberInfo, skip?: (c: SessionCopy) => boolean): Promise<number> {
    await this.schemas.learn(page.sessions.flatMap((c) => c.entries), source);
    for (const c of page.sessions) if (skip?.(c) !== true) applyCopy(this.table, c, 'backup');
    return page.sessions.length;
  }

  /**
   * Installs a page of packed copies: every session's bytes are checked and every writer schema is
   * learnt before any is installed.
   */
  async #applyPackedPage(page: { sessions: PackedCopy[] }, source: MemberInfo, skip?: (c: PackedCopy) => boolean): Promise<number> {
    const values: Buffer[] = [];
    for (const c of page.sessions) {
      try {
        for (const v of packedValues(c.packed)) values.push(v);
      } catch (err) {
        throw new StateTransferError(`${source.route} sent a malformed packed session in a state transfer page`, { cause: err });
      }
    }
    await this.schemas.learnValues(values, source);
    for (const c of page.sessions) if (skip?.(c) !== true) applyPackedCopy(this.table, c, 'backup');
    return page.sessions.length;
  }

  #onStatePage(req: { transfer: string; offset: number; limit: number }, packed: boolean): Buffer {
    // A member still pulling (or just started) has no state of its own to give: the asker tries another.
    if (!this.#transferDone) throw new SessionUnavailableError('this member has no state to transfer yet: its own state transfer is not done');
    const now = this.clock.now();
    const mono = this.clock.monotonic();
    for (const [id, s] of this.#snapshots) if (s.until <= mono) this.#snapshots.delete(id);
    let snap = this.#snapshots.get(req.transfer);
    if (snap === undefined) {
      snap = { bases: this.table.bases(), until: mono + SNAPSHOT_TTL_MS };
      this.#snapshots.set(req.transfer, snap);
    }
    // Bounded by count and by bytes: large sessions make smaller pages, never a frame over the limit.
    const limit = Math.max(1, Math.min(req.limit, 5000));
    const held: SessionEntry[] = [];
    let bytes = 0;
    let i = req.offset;
    for (; i < snap.bases.length && i < req.offset + limit && (held.length === 0 || bytes < STATE_PAGE_BYTES); i++) {
      const e = this.table.get(snap.bases[i], now);
      if (e === undefined) continue;
      bytes += e.packed.length;
      held.push(e);
    }
    const next = i < snap.bases.length ? i : -1;
    if (next === -1) this.#snapshots.delete(req.transfer);
    const total = snap.bases.length;
    return packed
      ? messages.statePackReply.encode({ sessions: held.map(toPackedCopy), next, total })
      : messages.statePageReply.encode({ sessions: held.map(toCopy), next, total });
  }

  async leave(): Promise<void> {
    // Every member holds every session already; nothing to hand off. Writes in flight finish first:
    // stopping refuses new ones (503), and the channel closes only after these were acknowledged.
    this.stopping = true;
    await this.drained(2 * this.options.ackTimeout);
  }
}

