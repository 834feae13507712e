/**
 * Delta mode: the copies of a lost owner's sessions are settled without a request. Every member holds
 * every session, and a session whose owner is gone waits, as a copy on each member, for a request to
 * take it over. An owner that failed mid-write (its delta reached some members and not others) leaves
 * those copies at two versions, and promise 5 wants them equal once quiet, request or not.
 *
 * So after a member is removed for failure, the first live member in the ring order of each session
 * whose owner is gone (rendezvous over the live routes: one member, without asking anyone) asks the
 * others what they hold, 256 sessions per survey as backup mode's anti-entropy does, once the owner's
 * promises have run out. Where the copies differ and nobody serves the session, it takes the session
 * over exactly as a request would: the highest version wins, a new epoch fences the old owner, and
 * every member gets the whole session. Copies that agree are left to wait for their request: a dead
 * owner's thousands of sessions cost a survey per 256 of them, not a takeover each. A restarted member
 * settles the copies its previous incarnation owned (they name its route).
 */
import type { Logger } from 'pino';
import type { MemberInfo } from '../cluster/types.js';
import { owners } from '../ring/index.js';
import type { Survey } from './member-core.js';
import type { KeyLock } from './key-lock.js';
import type { SessionTable } from './session-table.js';
import { shortId } from './session-id.js';

/** Sessions per survey. */
const BATCH = 256;
/** Takeovers at once (only sessions whose copies differ get one: those a failed write left behind). */
const CONCURRENCY = 8;
/** Checks of one session (a tick apart) before it is left to its next request. */
const MAX_TRIES = 40;

/** What settlement needs from the delta manager. */
export interface SettlementContext {
  route: string;
  table: SessionTable;
  locks: KeyLock;
  log: Logger;
  /** How long a takeover waits for the session's lock (as a request does). */
  lockWait: number;
  liveRoutes(): string[];
  memberByRoute(route: string): MemberInfo | undefined;
  ownerMayServe(owner: string): boolean;
  survey(bases: string[]): Promise<Map<string, Survey>>;
  /** The request path's takeover (called with the session's lock held). */
  takeOver(base: string): Promise<boolean>;
  /** Whether settling may run now (a majority, not recovering, not stopping, the state pulled). */
  mayRun(): boolean;
}

export class Settlement {
  readonly #ctx: SettlementContext;
  /** Sessions to check, and how many checks each has had. */
  readonly #queue = new Map<string, number>();
  #running = false;

  constructor(ctx: SettlementContext) {
    this.#ctx = ctx;
  }

  /**
   * A member was removed for failure: every session held here whose owner is gone is checked, also
   * those of owners lost before (the member that was to settle them may be the one lost now).
   */
  memberLost(): void {
    for (const e of this.#ctx.table.entries()) if (e.role !== 'primary' && this.#ctx.memberByRoute(e.owner) === undefined) this.#add(e.base);
  }

  /** This member pulled the state after a restart: the copies naming its route are its previous incarnation's. */
  restarted(): void {
    for (const e of this.#ctx.table.entries()) if (e.role !== 'primary' && e.owner === this.#ctx.route) this.#add(e.base);
  }

  #add(base: string): void {
    if (!this.#queue.has(base)) this.#queue.set(base, 0);
  }

  /** Every tick: the next batch, when there is one and settling may run. */
  maintain(): void {
    if (this.#queue.size === 0 || this.#running || !this.#ctx.mayRun()) return;
    this.#running = true;
    this.#next()
      .catch((err: unknown) => this.#ctx.log.warn({ err }, 'settling the sessions of a lost member failed; retrying'))
      .finally(() => (this.#running = false));
  }

  /**
   * One pass over what is queued now, a survey per batch: a batch follows the previous one at once
   * (a dead owner's sessions are checked within a few round trips); what is left waits for a later tick.
   */
  async #next(): Promise<void> {
    const queued = [...this.#queue.keys()];
    for (let i = 0; i < queued.length && this.#ctx.mayRun(); i += BATCH) {
      const due = this.#due(queued.slice(i, i + BATCH));
      if (due.length === 0) continue;
      const surveys = await this.#ctx.survey(due);
      const differ = due.filter((base) => this.#differs(base, surveys.get(base)!));
      for (let j = 0; j < differ.length; j += CONCURRENCY) await Promise.all(differ.slice(j, j + CONCURRENCY).map((base) => this.#settle(base)));
    }
  }

  /** Those of `bases` that are this member's to check now; drops those that are not. */
  #due(bases: string[]): string[] {
    const ctx = this.#ctx;
    const live = ctx.liveRoutes();
    const out: string[] = [];
    for (const base of bases) {
      const tries = this.#queue.get(base);
      if (tries === undefined) continue;
      const e = ctx.table.get(base);
      const own = e?.owner === ctx.route;
      // Served here, gone, or its owner's route is live again (it, or its restarted process, answers a take).
      if (e === undefined || e.role === 'primary' || tries >= MAX_TRIES || (!own && ctx.memberByRoute(e.owner) !== undefined)) this.#queue.delete(base);
      else if (!own && ctx.ownerMayServe(e.owner)) continue; // its promises still run: later
      else if (!own && owners(base, live)[0] !== ctx.route) this.#queue.delete(base); // another member's to settle
      else {
        this.#queue.set(base, tries + 1);
        out.push(base);
      }
    }
    return out;
  }

  /** Whether the copies of `base` differ with nobody serving it (a takeover settles them); false drops it. */
  #differs(base: string, { replies, promised }: Survey): boolean {
    const e = this.#ctx.table.get(base);
    const keep = e !== undefined && e.role !== 'primary' && !replies.some((x) => x.r.found && x.r.primary);
    const differs =
      keep && replies.some((x) => x.r.removed || (x.r.found && (x.r.epoch !== e.epoch || x.r.owner !== e.owner || x.r.version !== e.version)));
    // Some member's promise to the owner still runs: it may be serving across a partition. Checked again
    // later. (A promise to our own route is one to this process, not to the previous incarnation.)
    if (differs && e.owner !== this.#ctx.route && promised.has(e.owner)) return false;
    if (!differs) this.#queue.delete(base);
    return differs;
  }

  /** Takes `base` over as a request would; left queued (checked again next tick) when that cannot be done now. */
  async #settle(base: string): Promise<void> {
    const ctx = this.#ctx;
    if (ctx.locks.busy(base)) return; // a request works on it: its takeover settles it, or we look again
    try {
      const took = await ctx.locks.run(
        base,
        () => {
          const e = ctx.table.get(base);
          if (e === undefined || e.role === 'primary' || !ctx.mayRun()) return Promise.resolve(false);
          return ctx.takeOver(base);
        },
        ctx.lockWait,
      );
      this.#queue.delete(base);
      if (took) ctx.log.info({ session: shortId(base) }, 'took over the session of a lost member: its copies differed');
    } catch (err) {
      ctx.log.debug({ err, session: shortId(base) }, 'settling a session of a lost member failed; trying again');
    }
  }

  /** Sessions waiting to be checked (for tests and the logs). */
  get size(): number {
    return this.#queue.size;
  }
}
