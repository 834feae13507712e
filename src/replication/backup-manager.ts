/**
 * Backup mode (Tomcat's BackupManager): each session lives on its primary and on one backup, the
 * first live member other than the primary in the ring's order for the session's base. Any member
 * can compute where a copy lives, so no location broadcast is needed for new sessions.
 */
import type { MemberInfo } from '../cluster/types.js';
import { messages, type ApplyReply, type LocateReply, type SessionCopy, type SessionDeltaMessage } from '../codec/messages.js';
import { ClusterRequestError, ReplicationError, StaleOwnerError } from '../errors.js';
import { backupFor, owners } from '../ring/index.js';
import { MSG, Replicator, type ReplicatorOptions } from './replicator.js';
import { RateQueue } from './rate-queue.js';
import { applyCopy, toCopy } from './copies.js';
import type { SessionEntry } from './session-table.js';
import { shortId } from './session-id.js';

/** The backup-mode replication manager. */
export class BackupManager extends Replicator {
  readonly mode = 'backup' as const;
  readonly #protect: RateQueue<string>;
  #warnedAlone = false;
  #protectStarted = 0;
  #protectCount = 0;

  constructor(options: ReplicatorOptions) {
    super(options);
    this.#protect = new RateQueue<string>({
      perSecond: options.reprotectRate,
      concurrency: 32,
      work: (base) => this.#protectOne(base),
    });
  }

  override install(): void {
    super.install();
    this.channel.handle(MSG.take, (from, body) => this.#onTake(from, messages.take.decode(body).base));
    this.channel.handle(MSG.handoff, (from, body) => this.#onHandoff(from, messages.copy.decode(body)));
    this.channel.handle(MSG.leaving, async (from) => {
      // A member leaving gracefully: move every copy it holds for us elsewhere before it goes.
      this.leaving.add(from.route);
      this.#scheduleProtection();
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
    return e.role === 'primary';
  }

  protected copyHolders(e: SessionEntry): MemberInfo[] {
    // The acknowledged backup, and where the ring puts it now: with ack 'async' a removal can come
    // before the first copy's acknowledgement.
    const routes = new Set([e.backup, backupFor(e.base, this.route, this.liveRoutes())]);
    const holders: MemberInfo[] = [];
    for (const r of routes) {
      const m = r === undefined ? undefined : this.memberByRoute(r);
      if (m !== undefined) holders.push(m);
    }
    return holders;
  }

  protected async replicate(e: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void> {
    const work = this.#replicateTo(e, delta, next);
    if (this.options.ack === 'sync') return work;
    // async: the response does not wait; a failure is logged, counted and repaired by re-protection.
    work.catch((err: unknown) => {
      this.counters.replicationFailures++;
      next.backup = undefined;
      this.log.warn({ err, session: shortId(e.base) }, 'asynchronous replication failed; re-protecting');
      this.#protect.push(e.base, e.base);
    });
  }

  async #replicateTo(e: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void> {
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
      try {
        // Where the backup moved (a join, a loss), the new holder gets the whole session.
        let reply: ApplyReply =
          e.backup === target.route
            ? await this.requestApply(target, MSG.delta, messages.delta.encode(delta))
            : await this.sendCopy(target, next);
        if (reply.status === 'NEED_FULL') reply = await this.sendCopy(target, next);
        if (reply.status === 'STALE') {
          throw new StaleOwnerError(
            `session ${shortId(e.base)}…: owned by ${reply.owner} at epoch ${reply.epoch}; this member's write was refused`,
          );
        }
        if (reply.status !== 'OK') throw new ReplicationError(`session ${shortId(e.base)}…: backup answered ${reply.status}`);
        const old = e.backup;
        next.backup = target.route;
        if (old !== undefined && old !== target.route) this.#dropAt(old, next);
        return;
      } catch (err) {
        // The backup died under us: choose the next one and send it everything.
        if (err instanceof ClusterRequestError && ['ERR_MEMBER_GONE', 'ERR_NOT_CONNECTED'].includes(err.code)) {
          e = { ...e, backup: undefined };
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

  /** Tells a former backup to drop its copy, once the new one acknowledged. */
  #dropAt(route: string, e: SessionEntry): void {
    const m = this.memberByRoute(route);
    if (m === undefined) return;
    this.requestApply(m, MSG.remove, messages.remove.encode({ base: e.base, owner: this.route, epoch: e.epoch })).catch(
      (err: unknown) => this.log.debug({ err, session: shortId(e.base) }, 'old backup did not drop its copy; it expires by itself'),
    );
  }

  /** A member asks for a session to take it over; the primary lets go, a copy holder keeps a fenced copy. */
  async #onTake(from: MemberInfo, base: string): Promise<Buffer> {
    return this.locks.run(base, () => {
      const e = this.table.get(base);
      if (e === undefined) {
        // Just handed to someone else? Say to whom, so the asker goes there instead of looking again.
        const moved = this.table.tombstone(base);
        return Promise.resolve(messages.takeReply.encode({ copy: null, movedTo: moved?.owner || null }));
      }
      const copy = toCopy(e);
      if (e.role === 'primary') {
        this.table.delete(base, e.epoch + 1, from.route);
        this.log.info({ session: shortId(base), to: from.route }, 'session taken over by another member');
      } else {
        // Keep our copy, owned by the new primary from now on: it is a valid backup until told otherwise.
        e.epoch += 1;
        e.owner = from.route;
      }
      return Promise.resolve(messages.takeReply.encode({ copy, movedTo: null }));
    });
  }

  /** Asks every live member whether it holds `base`; holders first the primary, then the newest. */
  async #locate(base: string): Promise<{ m: MemberInfo; r: LocateReply }[]> {
    const located = await Promise.allSettled(
      this.channel.members().map(async (m) => ({
        m,
        r: messages.locateReply.decode(
          await this.channel.request(m.id, MSG.locate, messages.locate.encode({ base }), { timeoutMs: this.options.ackTimeout }),
        ),
      })),
    );
    return located
      .filter((x): x is PromiseFulfilledResult<{ m: MemberInfo; r: LocateReply }> => x.status === 'fulfilled')
      .map((x) => x.value)
      .filter((x) => x.r.found)
      .sort((a, b) => Number(b.r.primary) - Number(a.r.primary) || b.r.epoch - a.r.epoch || b.r.version - a.r.version);
  }

  protected async takeOver(base: string): Promise<boolean> {
    if (this.isPrimary(base)) return true;
    let e: SessionEntry | undefined;
    let copy: SessionCopy | undefined;
    let source: MemberInfo | undefined;
    // A holder that answers the take with nothing let the session go a moment ago (a concurrent
    // takeover by another member): go where it says, or locate it again, rather than fall back on an
    // older copy.
    let hint: MemberInfo | undefined;
    for (let attempt = 0; attempt < 4 && copy === undefined; attempt++) {
      let holder = hint;
      hint = undefined;
      if (holder === undefined) {
        // Ask everyone who holds it: the primary, if alive, has the newest version.
        const found = await this.#locate(base);
        e = this.table.get(base);
        const best = found[0];
        if (e !== undefined && e.role === 'primary' && e.owner === this.route && (best === undefined || best.r.epoch <= e.epoch)) {
          // Checked after a possible cut-off: nobody took it over meanwhile, so it is still ours.
          e.unverified = false;
          return true;
        }
        const newer =
          best !== undefined && (e === undefined || best.r.epoch > e.epoch || (best.r.epoch === e.epoch && best.r.version >= e.version));
        if (!newer) break;
        holder = best.m;
      }
      const reply = messages.takeReply.decode(
        await this.channel.request(holder.id, MSG.take, messages.take.encode({ base, newOwner: this.route }), {
          timeoutMs: this.options.ackTimeout,
        }),
      );
      if (reply.copy !== null) {
        copy = reply.copy;
        source = holder;
      } else if (reply.movedTo !== null && reply.movedTo !== this.route) {
        hint = this.memberByRoute(reply.movedTo);
      }
    }
    e = this.table.get(base);
    if (copy === undefined && e !== undefined) copy = toCopy(e); // the copy held here is the newest
    if (copy === undefined) return false;
    if (source !== undefined) await this.learnSchemas(copy.entries, source);
    const tomb = this.table.tombstone(base);
    const epoch = Math.max(copy.epoch, e?.epoch ?? 0, tomb?.epoch ?? 0) + 1;
    const mine = this.installAsPrimary(copy, epoch);
    this.log.info({ session: shortId(base), from: source?.route ?? 'local copy', epoch }, 'took over session');
    // The newest version must be on a backup before the request goes on.
    await this.#protectEntry(mine);
    // Every other member drops what it has of it: the holders found, and also a member that took it
    // over concurrently and installed after our look-up (its older epoch loses; fencing keeps newer).
    const drop = messages.remove.encode({ base, owner: this.route, epoch });
    for (const m of this.channel.members()) {
      if (m.route !== mine.backup) this.requestApply(m, MSG.remove, drop).catch(() => undefined);
    }
    return true;
  }

  /** Sends the whole entry to its ring backup, if it has none there yet. */
  async #protectEntry(e: SessionEntry): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const target = this.#backupTarget(e.base);
      if (target === undefined) {
        e.backup = undefined;
        return;
      }
      try {
        const reply = await this.sendCopy(target, e);
        if (reply.status === 'OK') {
          const old = e.backup;
          e.backup = target.route;
          if (old !== undefined && old !== target.route) this.#dropAt(old, e);
          return;
        }
        if (reply.status === 'STALE') {
          this.log.warn({ session: shortId(e.base), owner: reply.owner }, 'lost a session to a newer owner while protecting it');
          // Only if it is still ours here: the winner's copy may have replaced it meanwhile.
          if (this.table.get(e.base) === e) this.table.delete(e.base, reply.epoch, reply.owner);
          return;
        }
      } catch (err) {
        if (!(err instanceof ClusterRequestError)) throw err;
        this.log.warn({ err, session: shortId(e.base), backup: target.route }, 'backup copy failed; trying again');
      }
    }
    this.log.error({ session: shortId(e.base) }, 'session has one copy: no backup acknowledged it');
  }

  async #protectOne(base: string): Promise<void> {
    await this.locks.run(base, async () => {
      const e = this.table.get(base);
      if (e === undefined || e.role !== 'primary') return;
      const target = this.#backupTarget(base);
      if (target?.route === e.backup) return;
      await this.#protectEntry(e);
      this.counters.reprotected++;
      this.#protectCount++;
    });
    if (this.#protect.size <= 1 && this.#protectCount > 0) {
      this.log.info(
        { sessions: this.#protectCount, ms: Date.now() - this.#protectStarted },
        're-protection done: every session has a backup again',
      );
      this.#protectCount = 0;
    }
  }

  /** Queues every primary session whose backup is not where the ring now says. */
  #scheduleProtection(): void {
    const live = this.liveRoutes();
    if (this.#protect.size === 0) this.#protectStarted = Date.now();
    for (const e of this.table.entries()) {
      if (e.role !== 'primary') continue;
      if (backupFor(e.base, this.route, live) !== e.backup) this.#protect.push(e.base, e.base);
    }
  }

  protected onMemberAdded(member: MemberInfo): void {
    if (this.stopping) return;
    this.log.debug({ member: member.route }, 'member joined: moving the backups that now belong to it');
    this.#scheduleProtection();
  }

  protected onMemberRemoved(member: MemberInfo, reason: 'left' | 'failed'): void {
    if (this.stopping) return;
    // Copies we hold for a primary that is gone: adopt them (a new epoch fences the old owner if it
    // was only partitioned), so that each has two copies again; a request later takes them over.
    // Not on the cut-off side of a partition: there the "gone" primary is likely alive and serving,
    // and the copies stay copies, still found by a takeover.
    const live = this.liveRoutes();
    const adopt = !this.possiblyIsolated();
    for (const e of adopt ? this.table.entries() : []) {
      if (e.role === 'backup' && e.owner === member.route && !live.includes(e.owner)) {
        e.role = 'primary';
        e.owner = this.route;
        e.epoch += 1;
        e.backup = undefined;
        e.values = undefined;
      }
    }
    this.log.info({ member: member.route, reason }, 'member gone: re-protecting the sessions it held');
    this.#scheduleProtection();
  }

  /**
   * Graceful leave: peers first move the copies we hold for them, then each of our sessions is
   * handed to the member that holds its backup, which adopts it and makes a new backup.
   */
  async leave(): Promise<void> {
    this.stopping = true;
    const peers = this.channel.members();
    await Promise.allSettled(
      peers.map((m) => this.channel.request(m.id, MSG.leaving, Buffer.alloc(0), { timeoutMs: this.options.stateTransferTimeout })),
    );
    const mine = this.table.entries().filter((e) => e.role === 'primary');
    let handed = 0;
    let failed = 0;
    const queue = [...mine];
    const worker = async (): Promise<void> => {
      for (let e = queue.shift(); e !== undefined; e = queue.shift()) {
        const entry = e;
        await this.locks.run(entry.base, async () => {
          const live = this.liveRoutes().filter((r) => r !== this.route); // not those leaving too
          const order = owners(entry.base, live);
          const heir = this.memberByRoute(entry.backup !== undefined && live.includes(entry.backup) ? entry.backup : (order[0] ?? ''));
          if (heir === undefined) {
            failed++;
            return;
          }
          try {
            const reply = await this.sendCopy(heir, entry, MSG.handoff);
            if (reply.status === 'OK') {
              this.table.delete(entry.base, entry.epoch + 1, heir.route);
              handed++;
            } else failed++;
          } catch (err) {
            failed++;
            this.log.warn({ err, session: shortId(entry.base), heir: heir.route }, 'hand-off failed; the session keeps its backup copy');
          }
        });
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    this.#protect.stop();
    this.log.info({ handed, failed }, 'graceful leave: sessions handed off');
  }

  /** A leaving member hands us one of its sessions: we adopt it and give it a backup. */
  async #onHandoff(from: MemberInfo, c: SessionCopy): Promise<Buffer> {
    await this.learnSchemas(c.entries, from);
    return this.locks.run(c.base, async () => {
      const reply = applyCopy(this.table, c, 'backup');
      if (reply.status !== 'OK') return messages.applyReply.encode(reply);
      const e = this.table.get(c.base)!;
      e.role = 'primary';
      e.owner = this.route;
      e.epoch = c.epoch + 1;
      e.backup = undefined;
      await this.#protectEntry(e);
      return messages.applyReply.encode({ status: 'OK', epoch: 0, owner: '' });
    });
  }
}
