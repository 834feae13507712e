/**
 * Anti-entropy: checks sessions held here against what every live member holds of them, and repairs
 * what it finds. After a member is lost, its sessions wait here to be adopted by the member with the
 * best copy; after a pause or a partition, this member's primaries are verified before they are
 * served; and for a while after each membership change a slow sweep goes round every copy, so a copy
 * left behind by a lost drop is found and let go even if nobody asks for it.
 */
import { compareHeld, adopt, destroyCovers, isMoveTrace, olderOwnership } from '../copies.js';
import type { Survey } from '../member-core.js';
import { describeReplies } from '../member-core.js';
import { owners } from '../../ring/index.js';
import { backupList, joinBackups } from '../backups.js';
import { fenceUntil, type SessionEntry } from '../session-table.js';
import { shortId } from '../session-id.js';
import type { BackupContext } from './context.js';

const AUDIT_BATCH = 256;
/** Copies checked per tick by the background sweep when nothing else needs checking. */
const SWEEP_BATCH = 64;
/** How long after a membership change the sweep keeps going round. */
const SWEEP_AFTER_CHANGE_MS = 60_000;

/** A copy's ownership as one comparable value. */
function ownership(e: SessionEntry | undefined): string | undefined {
  return e === undefined ? undefined : `${e.epoch}/${e.owner}`;
}

/** What anti-entropy needs from the other phases. */
export interface AntiEntropyPeers {
  /** Whether a grant of `base` to a taker may still be on its way (`grant.ts`). */
  granting(base: string): boolean;
  /** Queues `base` for re-protection (an adopted session needs a backup). */
  protect(base: string): void;
  /** Takes `base` over in the background, as a request would (outside the audit's lock). */
  claim(base: string): void;
}

export class AntiEntropy {
  readonly #ctx: BackupContext;
  readonly #peers: AntiEntropyPeers;
  /** Sessions to check against the other members: after a pause, a partition, a loss. */
  readonly #toAudit = new Set<string>();
  #auditing = false;
  /** Copies still to visit in the current round of the sweep, and those it put up for checking. */
  #sweepQueue: string[] = [];
  readonly #sweeping = new Set<string>();
  /** Until when the sweep runs (a while after the last membership change). */
  #sweepUntil = 0;

  constructor(ctx: BackupContext, peers: AntiEntropyPeers) {
    this.#ctx = ctx;
    this.#peers = peers;
  }

  /** Queues `base` for a check with every live member. */
  add(base: string): void {
    this.#toAudit.add(base);
  }

  /** A membership change: strays come from faults, so the sweep runs for a while after each. */
  keepSweeping(): void {
    this.#sweepUntil = this.#ctx.clock.monotonic() + SWEEP_AFTER_CHANGE_MS;
  }

  /** Every tick (with the majority, not while recovering): the sweep's next batch, then the next audit. */
  maintain(): void {
    if (!this.#auditing) this.#sweepCopies();
    this.#auditNext(false);
  }

  /**
   * Every tick while catching up after a lease lapse (with the majority again, for a drop time): the
   * audit only lets go of copies a destruction or a newer owner has superseded, or that their owner
   * re-protected elsewhere meanwhile; it verifies, adopts and re-protects nothing (the others may not
   * have seen this member back yet), and what it keeps waits for the full check. Waiting the drop time
   * out first left those extra copies here past the convergence limit after a partition healed.
   */
  letGo(): void {
    this.#auditNext(true);
  }

  /**
   * A slow, rotating check of every session held here: a copy left behind by a lost drop (its holder
   * was slow, paused or cut off when the owner moved on), or a primary another member took over unseen,
   * is found and let go, even if nobody asks for it. The sweep only lets go of what a newer owner or a
   * destruction has superseded; it never adopts or verifies (it may run while the others move on).
   */
  #sweepCopies(): void {
    const now = this.#ctx.clock.monotonic();
    if (this.#toAudit.size > 0 || now > this.#sweepUntil) return;
    // Rounds follow each other tick by tick: pacing them (one per half drop time) let a stray found
    // after a partition healed miss the convergence limit in CI's chaos run.
    if (this.#sweepQueue.length === 0) this.#sweepQueue = this.#ctx.table.bases();
    for (const base of this.#sweepQueue.splice(0, SWEEP_BATCH)) {
      this.#toAudit.add(base);
      this.#sweeping.add(base);
    }
  }

  /**
   * Checks the next batch. After a member is lost, its sessions wait here to be adopted: a batch that
   * settled every session it checked is followed at once by the next (one batch per tick made adoption
   * take 8 s for 100k sessions); one that left some undecided waits for the next tick.
   */
  #auditNext(letGoOnly: boolean): void {
    const ctx = this.#ctx;
    if (this.#toAudit.size === 0 || this.#auditing || ctx.stopping()) return;
    this.#auditing = true;
    const batch = [...this.#toAudit].slice(0, AUDIT_BATCH);
    for (const b of batch) this.#toAudit.delete(b);
    let settled = false;
    this.#audit(batch, letGoOnly)
      .then(() => (settled = batch.every((b) => !this.#toAudit.has(b))))
      .catch((err: unknown) => {
        for (const b of batch) this.#toAudit.add(b);
        ctx.log.warn({ err }, 'anti-entropy round failed; retrying');
      })
      .finally(() => {
        this.#auditing = false;
        if (settled && ctx.isolation.hasQuorum() && !ctx.isolation.recovering()) this.#auditNext(false);
      });
  }

  /** Checks each of `bases` with every live member and repairs what it finds (`letGoOnly`: see `letGo`). */
  async #audit(bases: string[], letGoOnly: boolean): Promise<void> {
    const ctx = this.#ctx;
    // Who owned each session when the survey went out: answers given before an ownership change that
    // reached us during the survey describe the old one (a new owner's "not held" read as "lost it").
    const asked = new Map(bases.map((b) => [b, ownership(ctx.table.get(b))]));
    // And the backups each named then: one named since may have got its copy after it answered.
    const named = new Map(bases.map((b) => [b, backupList(ctx.table.get(b)?.backup)]));
    // And the pauses and lost leases so far: a survey that spans one verifies nothing.
    const marks = ctx.unverifiedMarks();
    const surveys = await ctx.survey(bases);
    for (const base of bases) {
      await ctx.locks.run(base, () => {
        this.#reconcile(base, surveys.get(base)!, asked.get(base), named.get(base)!, letGoOnly, marks);
        return Promise.resolve();
      });
    }
  }

  /** Whether an owner's `backup` names backups, all live, without this member: a copy here may go. */
  #keptElsewhere(backup: string | undefined): boolean {
    const routes = backupList(backup);
    return routes.length > 0 && !routes.includes(this.#ctx.route) && routes.every((r) => this.#ctx.memberByRoute(r) !== undefined);
  }

  #reconcile(
    base: string,
    { replies, failed, promised }: Survey,
    asked: string | undefined,
    namedBefore: readonly string[],
    letGoOnly: boolean,
    marks: number,
  ): void {
    const ctx = this.#ctx;
    // Catching up: what is kept waits for the full check once the drop time is out.
    const swept = this.#sweeping.delete(base) && !letGoOnly;
    const e = ctx.table.get(base);
    if (e === undefined) return;
    if (ownership(e) !== asked) {
      if (!swept) this.#toAudit.add(base); // checked again with fresh answers
      return;
    }
    ctx.log.debug(
      { session: shortId(base), held: `${e.role}@${e.epoch}/${e.owner}v${e.version}`, failed, replies: describeReplies(replies) },
      'anti-entropy check',
    );
    const removed = replies.find((x) => x.r.removed && destroyCovers(x.r.epoch, e.epoch));
    if (removed !== undefined) {
      ctx.table.destroy(base, removed.r.epoch, removed.r.owner, fenceUntil(e.expire));
      return;
    }
    const newer = replies.filter((x) => x.r.found && olderOwnership(e.epoch, e.owner, x.r.epoch, x.r.owner)).sort((a, b) => compareHeld(b.r, a.r))[0];
    if (newer !== undefined) {
      // A copy goes only once the newer owner itself holds the session: a grantor's word alone is not
      // enough, since its grant may still be on its way (or lost with the grantor) and ours may be
      // the last copy of the data.
      const newerOwner = replies.find((x) => x.m.route === newer.r.owner && x.r.found && x.r.primary && !olderOwnership(x.r.epoch, x.r.owner, newer.r.epoch, newer.r.owner));
      const installed = newerOwner !== undefined;
      if (newer.r.owner === ctx.route && !letGoOnly && e.role !== 'primary') {
        // A grant to this member that never got here: its take gave up (the answer was lost, or this
        // member was cut off meanwhile), and it holds the audit's lock, so no take of it is in flight.
        // The grantor keeps the data as our copy and would wait out its grant's time (2 ackTimeouts)
        // before adopting it back, with every request for it answered 503: ask it for the grant again
        // (backup seed 6564).
        this.#peers.claim(base);
        return;
      }
      if (e.role !== 'primary' && !installed) {
        if (!swept) this.#toAudit.add(base);
        return;
      }
      // A backup copy goes only once the newer ownership is protected without it: its owner names
      // backups, all live, and this member is not among them. Until then (the taker's copies still on
      // their way, this member perhaps among their holders), the session lived only on the taker and
      // its grantor, and two members dying together lost it (backup seed 5044). No write of the newer
      // ownership is acknowledged before its backups hold it, so the copy kept here misses none.
      if (e.role !== 'primary' && !this.#keptElsewhere(newerOwner?.r.backup)) {
        if (!swept) this.#toAudit.add(base);
        return;
      }
      if (e.role === 'primary') ctx.log.info({ session: shortId(base), owner: newer.r.owner }, 'a newer owner took this session over meanwhile; letting go');
      ctx.table.moved(base, newer.r.epoch, newer.r.owner);
      return;
    }
    // A member admitted after the survey went out was not asked: the answers are checked under each
    // session's lock, which may wait behind requests for a second, and meanwhile the owner may be
    // back from across a partition (adopting then made two owners) or a member with a newer copy.
    const answered = new Set(replies.map((x) => x.m.id));
    if (failed > 0 || !ctx.isolation.hasQuorum() || ctx.channel.members().some((m) => !answered.has(m.id))) {
      if (!swept) this.#toAudit.add(base); // cannot tell yet
      return;
    }
    if (letGoOnly && e.role === 'primary' && e.owner === ctx.route) {
      this.#toAudit.add(base);
      return;
    }
    if (e.role === 'primary' && e.owner === ctx.route) {
      // Back from a partition with a clock behind: the session may have moved on and ended meanwhile.
      if (ctx.dropOutlived(base, replies, e)) return;
      if (!swept) {
        // A failed write not yet sent again may sit on a holder: the holders get the session first.
        if (e.resync === true) this.#peers.protect(base);
        else ctx.verified(e, marks);
      }
      // A backup named here (already when the survey went out) that answered without this ownership's
      // copy, dropped or a new incarnation under the same route, would never get it again: re-protection
      // takes a named live route as a holder. It is sent the whole session.
      const named = backupList(e.backup);
      const lacking = named.filter(
        (r) => namedBefore.includes(r) && replies.some((x) => x.m.route === r && !(x.r.found && x.r.epoch === e.epoch && x.r.owner === e.owner)),
      );
      if (lacking.length > 0) {
        ctx.log.info({ session: shortId(base), backups: lacking }, 'a backup does not hold the session: sending it again');
        e.backup = joinBackups(named.filter((r) => !lacking.includes(r)));
        this.#peers.protect(base);
      }
      return;
    }
    // A copy: fine while its owner holds it, unless the owner keeps its backup on another live member
    // and has written since, or our copy is older than any backup change in progress (a copy left
    // behind when the backup moved); adopted when the owner is gone or lost it (not by the sweep).
    const owner = replies.find((x) => x.m.route === e.owner && x.r.found && x.r.epoch === e.epoch && x.r.owner === e.owner);
    const settledCopy = owner !== undefined && (owner.r.version > e.version || ctx.clock.monotonic() - (e.touchedAt ?? 0) > ctx.options.dropTime);
    if (owner !== undefined && settledCopy && this.#keptElsewhere(owner.r.backup)) {
      ctx.log.debug({ session: shortId(base), owner: e.owner, backup: owner.r.backup }, 'dropping a copy the owner no longer keeps here');
      ctx.table.moved(base, e.epoch, e.owner);
      return;
    }
    if (letGoOnly) {
      this.#toAudit.add(base);
      return;
    }
    // A grant on its way to a live taker: wait for it (checked again when the grant's time is up).
    if (swept || owner !== undefined || (this.#peers.granting(base) && ctx.memberByRoute(e.owner) !== undefined)) return;
    if (ctx.memberByRoute(e.owner) === undefined && (!ctx.isolation.ownerReleased(e.owner) || promised.has(e.owner))) {
      this.#toAudit.add(base);
      return;
    }
    const peers = replies.filter((x) => x.r.found && x.r.epoch === e.epoch && x.r.owner === e.owner);
    const top = Math.max(e.version, ...peers.map((x) => x.r.version));
    if (e.version < top) return; // a member with a newer version adopts it
    // A newer copy than every one left expired on its holder (whose clock may run ahead of ours): the
    // session has ended, and ours is a stray of its past that lacks the writes after it. Not adopted.
    if (ctx.dropOutlived(base, replies, e)) return;
    // A member let the session go to a newer owner than our copy names: ours is its past (dropped
    // above once that ownership is known to have expired), never adopted, however long that owner
    // stays out of reach here (backup seed 1194: cut from the new owner alone, this member adopted its
    // old copy past it, and the new owner's acknowledged write was lost). The newer ownership's own
    // holders (its backup, or the grantor keeping the data) carry it on.
    if (replies.some((x) => isMoveTrace(x.r) && olderOwnership(e.epoch, e.owner, x.r.epoch, x.r.owner))) {
      this.#toAudit.add(base);
      return;
    }
    const first = owners(base, [ctx.route, ...peers.filter((x) => x.r.version === top).map((x) => x.m.route)])[0];
    if (first !== ctx.route) return;
    adopt(e, ctx.route);
    ctx.log.info({ session: shortId(base), epoch: e.epoch }, 'adopted the session of a member that is gone');
    this.#peers.protect(base);
  }
}
