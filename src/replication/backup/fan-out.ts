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
import { backupList, joinBackups } from '../backups.js';
import { backupTargets, wantedBackups } from './placement.js';
import { capacityRefusal, withRoom } from '../capacity.js';
import type { Reprotection } from './reprotection.js';

export class FanOut {
  readonly #ctx: BackupContext;
  readonly #protection: Reprotection;
  #warnedAlone = false;
  #warnedFew = false;

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
    // Holders of the version this write builds on get the delta; the others (a join, a loss, a failed
    // write) get the whole session.
    const current = e.resync === true ? [] : backupList(e.backup);
    // Holders an attempt may have reached (its answer was lost): told to drop what they got.
    const reached: MemberInfo[] = [];
    const acked = new Set<string>();
    const body = messages.delta.encode(delta);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (attempt > 0 && ctx.options.ack === 'async') {
        // Without the lock (async acks), a removal or a newer write may have come meanwhile: resending
        // this copy after the removal reached the backup would bring the session back there.
        const now = ctx.table.get(e.base);
        if (now === undefined || now.version > next.version) return;
      }
      // A member at its maxSessions gets no new copy: a new session (version 0) is refused, an existing
      // one stays where it is held or keeps fewer copies (capacity.ts).
      const holders = current.map((r) => ctx.memberByRoute(r)).filter((m): m is MemberInfo => m !== undefined);
      const ring = backupTargets(ctx, e.base);
      // Before acknowledging with fewer copies too (none at all when every other member seems gone).
      for (const old of backupList(e.backup)) {
        if (ring.some((t) => t.route === old) || ctx.memberByRoute(old) !== undefined || ctx.isolation.ownerReleased(old)) continue;
        // A backup went silent a moment ago: we may be the cut-off side, where a backup chosen now
        // (or none) would acknowledge writes the other side never sees. Wait out its promise (503 until then).
        throw ctx.unavailable(e.base, `its backup ${old} went silent a moment ago`);
      }
      const targets = withRoom(ctx.fullMembers, ring, holders, e.version === 0);
      if (ring.length === 0) {
        if (!this.#warnedAlone) {
          this.#warnedAlone = true;
          ctx.log.warn('no other member is alive: sessions are held in one copy until a member joins');
        }
        next.backup = undefined;
        return;
      }
      if (ring.length < wantedBackups(ctx) && !this.#warnedFew) {
        this.#warnedFew = true;
        ctx.log.warn({ backups: wantedBackups(ctx), members: targets.length + 1 }, 'fewer members live than backups + 1: sessions have fewer copies than asked (sessions.underReplicated)');
      }
      const pending = targets.filter((t) => !acked.has(t.route));
      const results = await Promise.allSettled(
        pending.map(async (t) => {
          let reply: ApplyReply = current.includes(t.route) && !reached.includes(t) ? await ctx.requestApply(t, MSG.delta, body) : await ctx.sendCopy(t, next);
          if (reply.status === 'NEED_FULL') reply = await ctx.sendCopy(t, next);
          return reply;
        }),
      );
      let again = false;
      for (const [i, r] of results.entries()) {
        const t = pending[i];
        if (r.status === 'fulfilled') {
          if (r.value.status === 'STALE') throw ctx.staleError(e.base, r.value);
          if (r.value.status !== 'OK') throw new ReplicationError(`session ${shortId(e.base)}…: backup ${t.route} answered ${r.value.status}`);
          acked.add(t.route);
          continue;
        }
        const err: unknown = r.reason;
        if (capacityRefusal(err) !== undefined) {
          ctx.fullMembers.mark(t.route); // the next attempt leaves it out
          again = true;
          continue;
        }
        // A backup died under us: the next attempt chooses again and sends the new one everything.
        if (err instanceof ClusterRequestError && ['ERR_MEMBER_GONE', 'ERR_NOT_CONNECTED'].includes(err.code)) {
          reached.push(t);
          again = true;
          continue;
        }
        throw err instanceof ReplicationError || err instanceof StaleOwnerError
          ? err
          : new ReplicationError(`session ${shortId(e.base)}…: backup ${t.route} did not acknowledge the write: ${String(err)}`, { cause: err });
      }
      if (again) continue;
      const chosen = targets.map((t) => t.route);
      // The old holders must let go before the write counts: a copy left behind would be a stale
      // stray that a partition's other side could take over.
      for (const old of backupList(e.backup)) {
        if (chosen.includes(old)) continue;
        if (!(await this.#protection.dropAt(old, next))) {
          throw new ReplicationError(`session ${shortId(e.base)}…: its former backup ${old} did not drop its copy`);
        }
      }
      next.backup = joinBackups(chosen);
      const strays = [...reached, ...ctx.channel.members().filter((m) => acked.has(m.route))].filter((m) => !chosen.includes(m.route));
      if (strays.length > 0) void ctx.removals.start({ base: e.base, owner: ctx.route, epoch: e.epoch, destroy: false, until: next.expire }, strays, true);
      return;
    }
    throw new ReplicationError(`session ${shortId(e.base)}…: no backup acknowledged the write after 3 attempts`);
  }
}
