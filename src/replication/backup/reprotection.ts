/**
 * Re-protection: every session this member serves keeps a backup where the ring puts it. After a
 * membership change a scan finds the sessions whose backup is gone or belongs elsewhere now, and a
 * rate-limited queue copies each to its new backup and has the former one drop its copy.
 */
import type { MemberInfo } from '../../cluster/types.js';
import { messages } from '../../codec/messages.js';
import { ClusterRequestError } from '../../errors.js';
import { MSG } from '../message-types.js';
import { RateQueue } from '../rate-queue.js';
import type { SessionEntry } from '../session-table.js';
import { shortId } from '../session-id.js';
import type { BackupContext } from './context.js';
import { backupList, joinBackups, sameBackups } from '../backups.js';
import { backupRoutes, backupTargets, wantedBackups } from './placement.js';
import { capacityRefusal, withRoom } from '../capacity.js';

/** Entries the scan looks at per turn of the event loop. */
const SCAN_SLICE = 2000;
const SCAN_MS = 1000;

export type ProtectOutcome = 'ok' | 'lost' | 'failed';

export class Reprotection {
  readonly #ctx: BackupContext;
  readonly #queue: RateQueue<string>;
  /** The last member removed for silence on each route: drops owed to it are sent if it comes back. */
  readonly #lastSeen = new Map<string, MemberInfo>();
  #started = 0;
  #count = 0;
  /** Membership changed since the last scan: backups may belong elsewhere on the ring. */
  #dirty = false;
  #lastScan = 0;
  /** The scan in progress, if any. */
  #scanning: { entries: Iterator<SessionEntry>; ring: boolean } | undefined;
  /** Copies whose owner is gone, found by the scan: anti-entropy decides who adopts them. */
  readonly #audit: (base: string) => void;

  constructor(ctx: BackupContext, audit: (base: string) => void) {
    this.#ctx = ctx;
    this.#audit = audit;
    this.#queue = new RateQueue<string>({
      perSecond: ctx.options.reprotectRate,
      concurrency: 32,
      work: (base) => this.#protectOne(base),
      clock: ctx.clock,
    });
  }

  /** Queues `base` for a check of its backup. */
  push(base: string): void {
    this.#queue.push(base, base);
  }

  drained(): Promise<void> {
    return this.#queue.drained();
  }

  stop(): void {
    this.#queue.stop();
  }

  async #protectOne(base: string): Promise<void> {
    const ctx = this.#ctx;
    await ctx.locks.run(base, async () => {
      const e = ctx.table.get(base);
      if (e === undefined || e.role !== 'primary' || e.owner !== ctx.route || !ctx.isolation.hasQuorum()) return;
      if (e.resync !== true && sameBackups(e.backup, backupRoutes(ctx, base)) && backupList(e.backup).every((r) => ctx.memberByRoute(r) !== undefined)) return;
      const before = e.backup;
      const resync = e.resync === true;
      // Nothing copied (a full member kept it short of copies, capacity.ts): nothing to count.
      if ((await this.protectEntry(e)) !== 'ok' || (e.backup === before && !resync)) return;
      ctx.counters.reprotected++;
      this.#count++;
    });
    if (this.#queue.size <= 1 && this.#count > 0) {
      ctx.log.info({ sessions: this.#count, ms: Math.round(ctx.clock.monotonic() - this.#started) }, 're-protection done: every session has a backup again');
      this.#count = 0;
    }
  }

  /**
   * Sends the whole entry to each member that should hold a backup and does not yet, then has the
   * former holders drop theirs. 'failed' leaves the backups recorded as they were (the next repair
   * tries again); 'lost': a newer owner refused it.
   */
  async protectEntry(e: SessionEntry): Promise<ProtectOutcome> {
    const ctx = this.#ctx;
    // After a failed write a holder may hold that write under the version it burnt: the whole session
    // goes at a version of its own, or the holder would answer "I have it" and keep the failed write.
    if (e.resync === true) e.version++;
    // Holders a failed attempt may have reached (its answer was lost): told to drop what they got.
    const reached: MemberInfo[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      // Never past a member's maxSessions: a full member is left out (sessions.underReplicated).
      const holders = backupList(e.backup).map((r) => ctx.memberByRoute(r)).filter((m): m is MemberInfo => m !== undefined);
      const ring = backupTargets(ctx, e.base);
      const targets = withRoom(ctx.fullMembers, ring, holders, false);
      if (ring.length === 0) {
        // Alone: a backup that went silent a moment ago stays recorded, since this member may be the
        // cut-off side; the write path waits its promise out instead of acknowledging with no copy.
        if (backupList(e.backup).some((r) => ctx.memberByRoute(r) === undefined && !ctx.isolation.ownerReleased(r))) return 'failed';
        e.backup = undefined;
        return 'ok';
      }
      const have = e.resync === true ? [] : backupList(e.backup);
      const missing = targets.filter((t) => !have.includes(t.route));
      const results = await Promise.allSettled(missing.map((t) => ctx.sendCopy(t, e)));
      let failed = false;
      for (const [i, r] of results.entries()) {
        const t = missing[i];
        if (r.status === 'fulfilled') {
          if (r.value.status === 'STALE') {
            ctx.log.warn({ session: shortId(e.base), owner: r.value.owner }, 'lost a session to a newer owner while protecting it');
            // Only if it is still ours here: the winner's copy may have replaced it meanwhile.
            if (ctx.table.get(e.base) === e) ctx.table.moved(e.base, r.value.epoch, r.value.owner);
            return 'lost';
          }
          if (r.value.status !== 'OK') failed = true;
          continue;
        }
        if (!(r.reason instanceof ClusterRequestError)) throw r.reason;
        if (capacityRefusal(r.reason) !== undefined) {
          ctx.fullMembers.mark(t.route); // holds nothing of it; the next attempt leaves it out
          failed = true;
          continue;
        }
        reached.push(t);
        failed = true;
        ctx.log.warn({ err: r.reason, session: shortId(e.base), backup: t.route }, 'backup copy failed; trying again');
      }
      if (failed) continue;
      const chosen = targets.map((t) => t.route);
      // Until a former backup let go, it stays recorded: the next repair drops it again.
      for (const old of backupList(e.backup)) {
        if (!chosen.includes(old) && !(await this.dropAt(old, e))) return 'failed';
      }
      e.backup = joinBackups(chosen);
      e.resync = false;
      const strays = reached.filter((m) => !chosen.includes(m.route));
      if (strays.length > 0) void ctx.removals.start({ base: e.base, owner: ctx.route, epoch: e.epoch, destroy: false, until: e.expire }, strays, true);
      return 'ok';
    }
    ctx.log.error({ session: shortId(e.base) }, 'session has fewer copies than asked: no backup acknowledged it');
    return 'failed';
  }

  /**
   * Tells a former copy holder to drop its copy, once the new backup acknowledged. True when it did,
   * or when it is gone for good (refused, left, or silent past its grace).
   */
  async dropAt(route: string, e: SessionEntry): Promise<boolean> {
    const ctx = this.#ctx;
    const m = ctx.memberByRoute(route);
    if (m !== undefined) return this.drop(m, e);
    if (!ctx.isolation.ownerReleased(route)) return false;
    // Gone for good, or across a partition for long: if it comes back with its copy, it drops it then.
    const last = this.#lastSeen.get(route);
    if (last !== undefined) void ctx.removals.start({ base: e.base, owner: ctx.route, epoch: e.epoch, destroy: false, until: e.expire }, [last], true);
    return true;
  }

  /** Tells `m` to drop its copy of `e`; true when it did (or holds nothing of ours). */
  async drop(m: MemberInfo, e: SessionEntry): Promise<boolean> {
    const ctx = this.#ctx;
    const body = messages.remove.encode({ base: e.base, owner: ctx.route, epoch: e.epoch, destroy: false, until: 0 });
    try {
      await ctx.requestApply(m, MSG.remove, body);
      return true; // OK, or STALE: it knows a newer owner, and holds nothing of ours
    } catch (err) {
      ctx.log.debug({ err, session: shortId(e.base), holder: m.route }, 'a copy holder did not drop its copy');
      return err instanceof ClusterRequestError && err.code === 'ERR_MEMBER_GONE' && ctx.isolation.ownerReleased(m.route);
    }
  }

  /**
   * Finds what needs repair: primaries without a backup where the ring puts it (`ring`: after a
   * membership change), unverified primaries, and copies whose owner is gone. It walks the table a
   * slice per turn of the event loop (all of it when `slice` is Infinity): in one go, the walk over
   * 50k entries at a member's loss held up the requests in flight for tens of ms.
   */
  scan(ring: boolean, slice = SCAN_SLICE): void {
    if (this.#queue.size === 0) this.#started = this.#ctx.clock.monotonic();
    // A scan in progress that looks at the ring keeps doing so when a plain one replaces it.
    this.#scanning = { entries: this.#ctx.table.held(), ring: ring || this.#scanning?.ring === true };
    this.#scanSlice(this.#scanning, slice);
  }

  #scanSlice(scan: { entries: Iterator<SessionEntry>; ring: boolean }, slice: number): void {
    const ctx = this.#ctx;
    if (this.#scanning !== scan || ctx.stopping()) return;
    const live = ctx.liveRoutes();
    const alive = new Set(live);
    // Fewer backups than asked, where members enough are live: a copy failed, re-protection owes one.
    const wanted = Math.min(wantedBackups(ctx), live.length - 1);
    const now = ctx.clock.now();
    for (let n = 0; n < slice; n++) {
      const next = scan.entries.next();
      if (next.done === true) {
        this.#scanning = undefined;
        return;
      }
      const e = next.value;
      if (e.expire <= now) continue;
      if (e.role === 'primary' && e.owner === ctx.route) {
        if (e.unverified === true) this.#audit(e.base);
        else if (
          e.backup === undefined ||
          e.resync === true ||
          backupList(e.backup).length < wanted ||
          backupList(e.backup).some((r) => !alive.has(r)) ||
          (scan.ring && !sameBackups(e.backup, backupRoutes(ctx, e.base)))
        ) {
          if (live.length > 1) this.push(e.base);
        }
      } else if (!alive.has(e.owner) && ctx.isolation.ownerReleased(e.owner)) {
        this.#audit(e.base);
      }
    }
    ctx.clock.setTimeout(() => this.#scanSlice(scan, slice), 0);
  }

  /** A membership change: scan the ring now, or when the majority is back. */
  membershipChanged(): void {
    if (!this.#ctx.isolation.hasQuorum()) {
      this.#dirty = true; // scanned when the majority is back
      return;
    }
    this.scan(true);
    this.#lastScan = this.#ctx.clock.monotonic();
  }

  /** Every tick: a scan of the ring if one is owed, else a plain one every second. */
  maintain(): void {
    const now = this.#ctx.clock.monotonic();
    if (this.#dirty || (now - this.#lastScan >= SCAN_MS && this.#scanning === undefined)) {
      this.scan(this.#dirty);
      this.#dirty = false;
      this.#lastScan = now;
    }
  }

  memberRemoved(member: MemberInfo, reason: 'left' | 'failed', refused: boolean): void {
    // Drops are owed only to a member that may come back as it was (silent, across a partition): a
    // dead process returns with a new id and an empty table. Owing 25k drops to a killed member made
    // every later copy slower (re-protection of 100k sessions took 30 s).
    if (reason === 'failed' && !refused) this.#lastSeen.set(member.route, member);
    else this.#lastSeen.delete(member.route);
  }
}
