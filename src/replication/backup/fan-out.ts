/**
 * A write's way to the backup: the delta to the backup that holds the session, or the whole session
 * to a new one (after a join, a loss or a failed write), whose former holder must drop its copy before
 * the write counts. With `ack: 'sync'` the request waits for all of it.
 */
import type { MemberInfo } from '../../cluster/types.js';
import { messages, type ApplyReply, type SessionDeltaMessage } from '../../codec/messages.js';
import { ClusterRequestError, ReplicationError, StaleOwnerError } from '../../errors.js';
import { MSG } from '../message-types.js';
import type { SessionEntry } from '../session-table.js';
import { shortId } from '../session-id.js';
import type { BackupContext } from './context.js';
import { backupTarget } from './placement.js';
import type { Reprotection } from './reprotection.js';

export class FanOut {
  readonly #ctx: BackupContext;
  readonly #protection: Reprotection;
  #warnedAlone = false;

  constructor(ctx: BackupContext, protection: Reprotection) {
    this.#ctx = ctx;
    this.#protection = protection;
  }

  /** Sends a write to the backup; resolves when it acknowledged (sync) or at once (async). */
  async replicate(e: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void> {
    const ctx = this.#ctx;
    const work = this.#replicateTo(e, delta, next);
    if (ctx.options.ack === 'sync') return work;
    // async: the response does not wait; a failure is logged, counted and repaired by re-protection.
    work.catch((err: unknown) => {
      ctx.counters.replicationFailures++;
      next.backup = undefined;
      next.resync = true;
      ctx.log.warn({ err, session: shortId(e.base) }, 'asynchronous replication failed; re-protecting');
      this.#protection.push(e.base);
    });
  }

  async #replicateTo(e: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void> {
    const ctx = this.#ctx;
    let backup = e.resync === true ? undefined : e.backup;
    // Holders a failed attempt may have reached (its answer was lost): told to drop what they got.
    const reached: MemberInfo[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      if (attempt > 0 && ctx.options.ack === 'async') {
        // Without the lock (async acks), a removal or a newer write may have come meanwhile: resending
        // this copy after the removal reached the backup would bring the session back there.
        const current = ctx.table.get(e.base);
        if (current === undefined || current.version > next.version) return;
      }
      const target = backupTarget(ctx, e.base);
      if (target === undefined) {
        if (!this.#warnedAlone) {
          this.#warnedAlone = true;
          ctx.log.warn('no other member is alive: sessions are held in one copy until a member joins');
        }
        next.backup = undefined;
        return;
      }
      if (e.backup !== undefined && e.backup !== target.route && ctx.memberByRoute(e.backup) === undefined && !ctx.isolation.ownerReleased(e.backup)) {
        // The backup went silent a moment ago: we may be the cut-off side, where a backup chosen now
        // would acknowledge writes the other side never sees. Wait out its grace (503 until then).
        throw ctx.unavailable(e.base, `its backup ${e.backup} went silent a moment ago`);
      }
      try {
        // Where the backup moved (a join, a loss) or may differ (a failed write), it gets the whole session.
        let reply: ApplyReply =
          backup === target.route ? await ctx.requestApply(target, MSG.delta, messages.delta.encode(delta)) : await ctx.sendCopy(target, next);
        if (reply.status === 'NEED_FULL') reply = await ctx.sendCopy(target, next);
        if (reply.status === 'STALE') throw ctx.staleError(e.base, reply);
        if (reply.status !== 'OK') throw new ReplicationError(`session ${shortId(e.base)}…: backup answered ${reply.status}`);
        // The old holder must let go before the write counts: a copy left behind would be a stale
        // stray that a partition's other side could take over.
        if (e.backup !== undefined && e.backup !== target.route && !(await this.#protection.dropAt(e.backup, next))) {
          throw new ReplicationError(`session ${shortId(e.base)}…: its former backup ${e.backup} did not drop its copy`);
        }
        next.backup = target.route;
        const strays = reached.filter((m) => m.route !== target.route);
        if (strays.length > 0) void ctx.removals.start({ base: e.base, owner: ctx.route, epoch: e.epoch, destroy: false, until: next.expire }, strays, true);
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
}
