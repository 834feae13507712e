/**
 * Backup mode (Tomcat's BackupManager): each session lives on its primary and on one backup, the
 * first live member other than the primary in the ring's order for the session's base. Any member
 * can compute where a copy lives, so no location broadcast is needed for new sessions.
 *
 * This class wires the protocol's phases, each in its own file under `backup/`:
 *
 * | phase | file | what |
 * | --- | --- | --- |
 * | placement | `placement.ts` | where a session's backup belongs |
 * | a write | `fan-out.ts` | the delta (or the whole session) to the backup, acknowledged before the response |
 * | takeover | `takeover.ts`, `grant.ts` | the taker's side and the grantor's: one owner at a time, epochs fence |
 * | re-protection | `reprotection.ts` | after a membership change, every session gets its backup where the ring puts it |
 * | anti-entropy | `anti-entropy.ts` | copies checked with every member: adoption of a lost owner's sessions, strays let go |
 * | graceful leave | `leave.ts` | hand-off of every session before this member goes |
 */
import type { MemberInfo } from '../cluster/types.js';
import { messages, type SessionDeltaMessage } from '../codec/messages.js';
import { backupsFor } from '../ring/index.js';
import { backupList } from './backups.js';
import { backupRoutes } from './backup/placement.js';
import { Replicator, type ReplicatorOptions } from './replicator.js';
import { MSG } from './message-types.js';
import type { SessionEntry } from './session-table.js';
import type { BackupContext } from './backup/context.js';
import { AntiEntropy } from './backup/anti-entropy.js';
import { FanOut } from './backup/fan-out.js';
import { Grants } from './backup/grant.js';
import { acceptHandoff, handOffAll } from './backup/leave.js';
import { Reprotection, type ProtectOutcome } from './backup/reprotection.js';
import { takeOver } from './backup/takeover.js';
import { shortId } from './session-id.js';

/** The backup-mode replication manager. */
export class BackupManager extends Replicator {
  readonly mode = 'backup' as const;
  readonly #ctx: BackupContext;
  readonly #protection: Reprotection;
  readonly #antiEntropy: AntiEntropy;
  readonly #grants: Grants;
  readonly #fanOut: FanOut;
  /** Whether the last tick found this member catching up after a pause or a lapse. */
  #catchingUp = false;

  constructor(options: ReplicatorOptions) {
    super(options);
    this.#ctx = {
      route: this.route,
      table: this.table,
      channel: this.channel,
      locks: this.locks,
      isolation: this.isolation,
      options: this.options,
      clock: this.clock,
      log: this.log,
      removals: this.removals,
      schemas: this.schemas,
      counters: this.counters,
      fullMembers: this.fullMembers,
      stopping: () => this.stopping,
      liveRoutes: () => this.liveRoutes(),
      memberByRoute: (route) => this.memberByRoute(route),
      unavailable: (base, why, cause) => this.unavailable(base, why, cause),
      staleError: (base, reply) => this.staleError(base, reply),
      sendCopy: (member, e) => this.sendCopy(member, e),
      requestApply: (member, type, body) => this.requestApply(member, type, body),
      survey: (bases) => this.survey(bases),
      waitForVerdict: (ms) => this.waitForVerdict(ms),
      ownerMayServe: (owner) => this.ownerMayServe(owner),
      awaitRelease: (owner, promised) => this.awaitRelease(owner, promised),
      newestRemoval: (base, replies) => this.newestRemoval(base, replies),
      dropOutlived: (base, replies, e) => this.dropOutlived(base, replies, e),
      unverifiedMarks: () => this.unverifiedMarks,
      verified: (e, since) => this.verified(e, since),
    };
    const audit = (base: string) => this.#antiEntropy.add(base);
    this.#protection = new Reprotection(this.#ctx, audit);
    this.#grants = new Grants(this.#ctx, audit);
    this.#antiEntropy = new AntiEntropy(this.#ctx, {
      granting: (base) => this.#grants.granting(base),
      protect: (base) => this.#protection.push(base),
      claim: (base) => {
        this.acquire(base).catch((err: unknown) => this.log.debug({ err, session: shortId(base) }, 'claiming a grant that never arrived failed; the grantor adopts it back'));
      },
    });
    this.#fanOut = new FanOut(this.#ctx, this.#protection);
  }

  override install(): void {
    super.install();
    this.channel.handle(MSG.take, (from, body) => this.#grants.onTake(from, messages.take.decode(body)));
    this.channel.handle(MSG.handoff, (from, body) => acceptHandoff(this.#ctx, this.#protection, from, messages.copy.decode(body)));
    this.channel.handle(MSG.leaving, async (from) => {
      // A member leaving gracefully: move every copy it holds for us elsewhere before it goes.
      this.leaving.add(from.route);
      this.#protection.scan(true, Infinity); // all of it now: what it queues must be drained before we answer
      await this.#protection.drained();
      return Buffer.alloc(0);
    });
  }

  protected needsVerification(e: SessionEntry): boolean {
    this.#antiEntropy.add(e.base); // copies too: their owner may have moved on meanwhile
    return e.role === 'primary';
  }

  protected recheck(base: string): void {
    this.#antiEntropy.add(base);
  }

  protected mustAcknowledgeRemoval(e: SessionEntry): MemberInfo[] {
    // The acknowledged backups, and where placement puts them now (with ack 'async' a removal can come
    // before the first copy's acknowledgement).
    const routes = new Set([...backupList(e.backup), ...backupRoutes(this.#ctx, e.base)]);
    return this.channel.members().filter((m) => routes.has(m.route));
  }

  protected expectedHolders(base: string, route: string): MemberInfo[] {
    // Its primary, and where placement would put its backups had that member made them.
    const members = this.channel.members();
    const primary = members.find((m) => m.route === route) ?? { route };
    const all = [{ route: this.route, ...(this.options.zone !== undefined ? { zone: this.options.zone } : {}) }, ...members];
    const where = new Set([route, ...backupsFor(base, primary, all, this.options.backups ?? 1)]);
    return members.filter((m) => where.has(m.route));
  }

  protected replicate(e: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void> {
    return this.#fanOut.replicate(e, delta, next);
  }

  protected async resyncCopies(e: SessionEntry): Promise<void> {
    // Until the holders have the session as held here, a holder may keep the failed write, and the
    // others adopt it if this member is lost: served now, the old content would be read after the
    // write failed and the write's content after that (backup seed 58171, promise 4). Checked with the
    // others, and sent again, before it is served.
    let outcome: ProtectOutcome = 'failed';
    try {
      outcome = await this.#protection.protectEntry(e);
    } finally {
      if (outcome === 'failed') e.unverified = true;
    }
  }

  protected takeOver(base: string): Promise<boolean> {
    return takeOver(this.#ctx, this.#protection, this.#grants, base);
  }

  protected maintain(): void {
    if (!this.isolation.hasQuorum()) {
      this.#catchingUp = false;
      return;
    }
    // Not while catching up after a pause: the others may not have seen us back yet, and may still
    // adopt what we hold; our audit answers would be out of date the moment they arrive. Copies
    // superseded meanwhile are let go at once, though (`AntiEntropy.letGo`).
    if (this.isolation.recovering()) {
      // Every copy, once: those that came while this member had no majority (an owner on the same
      // side re-sending its session after a failed write) were queued by nobody.
      if (!this.#catchingUp) for (const base of this.table.bases()) this.#antiEntropy.add(base);
      this.#catchingUp = true;
      this.#antiEntropy.letGo();
      return;
    }
    this.#catchingUp = false;
    this.#protection.maintain();
    this.#antiEntropy.maintain();
  }

  protected onMemberAdded(member: MemberInfo): void {
    if (this.stopping) return;
    // A restarted member holds nothing: the copies we keep for it must find an owner again.
    for (const e of this.table.entries()) if (e.role === 'backup' && e.owner === member.route) this.#antiEntropy.add(e.base);
    this.#rescan();
  }

  /** After a membership change: backups may belong elsewhere on the ring now. */
  #rescan(): void {
    this.#antiEntropy.keepSweeping();
    this.#protection.membershipChanged();
  }

  protected onMemberRemoved(member: MemberInfo, reason: 'left' | 'failed', refused: boolean): void {
    this.#protection.memberRemoved(member, reason, refused);
    if (this.stopping) return;
    this.log.info({ member: member.route, reason }, 'member gone: re-protecting the sessions it held');
    this.#rescan();
  }

  /** Graceful leave: see `backup/leave.ts`. */
  async leave(): Promise<void> {
    this.stopping = true;
    await this.drained(2 * this.options.ackTimeout);
    await handOffAll(this.#ctx, this.#protection);
  }
}
