/**
 * The grantor's side of a takeover: a member asks for a session to take it over. The owner grants it;
 * a copy holder grants it only when the owner is gone (past the grace of a silent owner) or said it
 * does not hold it, and otherwise names the owner. Either way the granting member keeps the data as a
 * copy of the taker's, one taker at a time under the session's lock.
 */
import type { MemberInfo } from '../../cluster/types.js';
import { messages, type LocateReply, type SessionCopy } from '../../codec/messages.js';
import { SessionUnavailableError } from '../../errors.js';
import { PAST_A_SILENT_OWNER, grantTo, isExpiryTrace, toCopy } from '../copies.js';
import { MSG } from '../message-types.js';
import type { SessionEntry } from '../session-table.js';
import { shortId } from '../session-id.js';
import type { BackupContext } from './context.js';

export class Grants {
  readonly #ctx: BackupContext;
  /** Sessions granted to a taker a moment ago, whose grant may still be on its way (checked later). */
  readonly #granting = new Map<string, { to: string }>();
  /** Once a grant's time is up: check that the taker installed it, or adopt it back. */
  readonly #recheck: (base: string) => void;

  constructor(ctx: BackupContext, recheck: (base: string) => void) {
    this.#ctx = ctx;
    this.#recheck = recheck;
  }

  /** Whether a grant of `base` may still be on its way to its taker. */
  granting(base: string): boolean {
    return this.grantedTo(base) !== undefined;
  }

  /** The taker of a grant of `base` that may still be on its way, if any. */
  grantedTo(base: string): string | undefined {
    return this.#granting.get(base)?.to;
  }

  async onTake(from: MemberInfo, m: { base: string; timeoutMs: number; force: boolean }): Promise<Buffer> {
    const ctx = this.#ctx;
    const received = ctx.clock.monotonic();
    // The lock is waited for only as long as the answer is still of use (an older release sends no
    // timeout). Two takers that each hold their own lock and ask the other (a grantor taking back what
    // it granted a moment ago, and its taker asking again for the grant it lost) otherwise waited each
    // other's whole ackTimeout, and the session had no owner meanwhile (backup seed 50120).
    const lockWait = m.timeoutMs > 0 ? m.timeoutMs / 2 : undefined;
    return ctx.locks.run(m.base, async () => {
      // The taker gave up long ago: granting now would leave the session with no primary. A request
      // read right after a pause of ours may have waited in the socket all along, so none is granted then.
      if (this.#tooLate(received, m.timeoutMs) || ctx.isolation.recovering()) {
        throw new SessionUnavailableError(`session ${shortId(m.base)}…: the take request waited too long here`);
      }
      // Not from the smaller side of a partition: an epoch granted there is one the larger side cannot
      // see, and it would tie with the epoch the larger side takes the session over at.
      if (!ctx.isolation.hasQuorum()) throw new SessionUnavailableError(`session ${shortId(m.base)}…: this member does not see a majority of the cluster`);
      // Only to a member we see: one we evicted (paused, cut off) may be about to learn it lost its sessions.
      if (ctx.channel.members().every((x) => x.id !== from.id)) {
        throw new SessionUnavailableError(`session ${shortId(m.base)}…: ${from.route} is not a live member here (yet)`);
      }
      const e = ctx.table.get(m.base);
      const t = ctx.table.tombstone(m.base);
      let copy: SessionCopy | null = null;
      let movedTo: string | null = null;
      if (e === undefined) {
        if (t?.kind === 'moved' && t.owner !== from.route) movedTo = t.owner;
      } else if (e.role === 'primary' && e.owner === ctx.route) {
        copy = grantTo(e, from.route);
        ctx.log.info({ session: shortId(m.base), to: from.route, epoch: e.epoch }, 'session taken over by another member');
      } else if (e.owner === from.route) {
        copy = toCopy(e); // granted before; the answer was lost
      } else if (ctx.memberByRoute(e.owner) !== undefined) {
        movedTo = m.force ? await this.#forcedTo(e, received, m.timeoutMs) : e.owner;
        // Its owner does not hold it (restarted, or let it go): granted one epoch on.
        if (movedTo === null) copy = grantTo(e, from.route, 1);
      } else if (!ctx.isolation.ownerReleased(e.owner)) {
        throw new SessionUnavailableError(`session ${shortId(m.base)}…: its owner ${e.owner} went silent a moment ago`);
      } else {
        // The owner is gone: past any epoch it may have granted on its own side.
        copy = grantTo(e, from.route, PAST_A_SILENT_OWNER);
      }
      if (copy !== null) {
        // If the taker never got our answer (it timed out, its connection broke), nobody serves the
        // session: once the taker can no longer install it, check that it did, or adopt it back.
        // Until then its "not held" only means the answer is still on its way.
        const grant = { to: from.route };
        this.#granting.set(m.base, grant);
        ctx.clock.setTimeout(() => {
          // Only this grant's mark: a later grant of the same session keeps its own time.
          if (this.#granting.get(m.base) === grant) this.#granting.delete(m.base);
          this.#recheck(m.base);
        }, this.#installableFor(received, m.timeoutMs));
      }
      return messages.takeReply.encode({ copy, movedTo, removed: copy === null && t?.kind === 'removed' });
    }, lockWait);
  }

  /**
   * How long from now a grant for a take received at `received` may still be installed by its taker.
   * A taker installs a grant only within its take's timeout (`takeover.ts`), counted from before we
   * got the request; a quarter more covers clocks running at other rates. Waiting two `ackTimeout`s
   * from the grant instead answered 503 for the session past the convergence limit when the answer
   * was lost in a short partition (backup seed 21591). A take without a timeout (an older release)
   * keeps the longer wait.
   */
  #installableFor(received: number, timeoutMs: number): number {
    const ctx = this.#ctx;
    if (timeoutMs <= 0) return 2 * ctx.options.ackTimeout;
    return Math.max(0, received + Math.ceil(1.25 * timeoutMs) - ctx.clock.monotonic());
  }

  /** Whether a take received at `received` has waited past half its timeout: its taker may give up before the answer arrives. */
  #tooLate(received: number, timeoutMs: number): boolean {
    return timeoutMs > 0 && this.#ctx.clock.monotonic() - received > timeoutMs / 2;
  }

  /**
   * Where a forced take goes instead, or null to grant it. "Forced" says the owner the taker saw does
   * not hold the session; but this copy may name another owner by now, one it was granted to from
   * here or one that wrote it since the taker's survey, and that owner serves it (backup seed 44123:
   * two takers met here, the second was granted past the first, and the first's acknowledged write
   * was lost). So the owner named here must say it does not hold it either.
   */
  async #forcedTo(e: SessionEntry, received: number, timeoutMs: number): Promise<string | null> {
    const ctx = this.#ctx;
    // Granted from here a moment ago: its "not held" may only mean our answer is still on its way.
    if (this.#granting.get(e.base)?.to === e.owner) return e.owner;
    const seen = { owner: e.owner, epoch: e.epoch, version: e.version };
    let r: LocateReply;
    try {
      const owner = ctx.memberByRoute(e.owner)!;
      r = messages.locateReply.decode(await ctx.channel.request(owner.id, MSG.locate, messages.locate.encode({ base: e.base }), { timeoutMs: ctx.options.ackTimeout }));
    } catch (err) {
      throw new SessionUnavailableError(`session ${shortId(e.base)}…: its owner ${e.owner} did not say whether it holds it`, { cause: err });
    }
    // Copies and writes are applied without the lock: what was asked about must still be what is held.
    const now = ctx.table.get(e.base);
    if (now !== e || e.owner !== seen.owner || e.epoch !== seen.epoch || e.version !== seen.version || this.#tooLate(received, timeoutMs)) {
      throw new SessionUnavailableError(`session ${shortId(e.base)}…: it changed, or the taker gave up, while its owner ${seen.owner} was asked`);
    }
    if (r.found || r.removed) return e.owner;
    // It let the session go to an owner newer than this copy knows.
    if (r.owner !== '' && !isExpiryTrace(r) && r.epoch > e.epoch) return r.owner;
    return null;
  }
}
