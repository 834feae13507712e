/**
 * What every member does for the others, in both modes: it holds copies (applying writes, copies,
 * drops and destructions under fencing), answers where sessions are (locate, audit, fetch), watches
 * its own isolation (majority of seats, pauses) and runs the periodic repair the managers define. It
 * stands on `MemberCore`; the request path (`Replicator`) builds on it, the managers on that.
 */
import type { MemberInfo } from '../cluster/types.js';
import { messages, type ApplyReply, type ForgetMessage, type SessionCopy, type SessionDeltaMessage, type EncodedEntry } from '../codec/messages.js';
import { applyCopy, applyDelta, applyRemove, describeHeld, toCopy } from './copies.js';
import { MemberCore, type ReplicatorOptions } from './member-core.js';
import { MSG } from './message-types.js';
import { RemovalQueue } from './removal-queue.js';
import type { Role, SessionEntry } from './session-table.js';

const TICK_MS = 250;
const EMPTY = Buffer.alloc(0);
const SWEEP_MS = 5000;

/** The copy-holding side of a member; `Replicator` adds the request path. */
export abstract class CopyHolder extends MemberCore {
  protected readonly removals: RemovalQueue;
  #timers: unknown[] = [];
  /** Destructions done everywhere, and when their tombstones may go. */
  #forgets: { item: { base: string; epoch: number; owner: string }; at: number }[] = [];
  #lastWake = 0;
  /** Lease lapses already acted on (`markUnverified`). */
  #lapses = 0;
  #hadQuorum = false;

  constructor(options: ReplicatorOptions) {
    super(options);
    this.removals = new RemovalQueue(
      (m, message) => this.requestApply(m, MSG.remove, messages.remove.encode(message)),
      (message) => this.#forgets.push({ item: { base: message.base, epoch: message.epoch, owner: message.owner }, at: this.clock.monotonic() + this.#forgetGrace() }),
    );
  }

  /** Registers the message handlers and starts the timers. Call before the channel starts. */
  install(): void {
    const c = this.channel;
    this.schemas.install();
    c.handle(MSG.delta, (from, body) => {
      this.refuseUnadmitted(from);
      const m = messages.delta.decode(body);
      this.#admitCopy(m.base);
      return this.#afterSchemas(m.set, from, () => this.applyIncomingDelta(m, from));
    });
    c.handle(MSG.copy, (from, body) => {
      this.refuseUnadmitted(from);
      const copy = messages.copy.decode(body);
      this.#admitCopy(copy.base);
      return this.#afterSchemas(copy.entries, from, () => this.applyIncomingCopy(copy));
    });
    c.handle(MSG.remove, (_from, body) => {
      const m = messages.remove.decode(body);
      const reply = applyRemove(this.table, m);
      if (m.destroy && reply.status === 'OK') this.onRemoved(m.base);
      return messages.applyReply.encode(reply);
    });
    c.handle(MSG.forget, (_from, body) => {
      for (const x of messages.forget.decode(body).items) this.table.forget(x.base, x.epoch, x.owner);
      return EMPTY;
    });
    c.handle(MSG.locate, (_from, body) => messages.locateReply.encode(describeHeld(this.table, messages.locate.decode(body).base)));
    c.handle(MSG.audit, (_from, body) =>
      messages.auditReply.encode({ items: messages.audit.decode(body).bases.map((b) => describeHeld(this.table, b)) }),
    );
    c.handle(MSG.survey, (_from, body) =>
      messages.surveyReply.encode({ items: messages.audit.decode(body).bases.map((b) => describeHeld(this.table, b)), promised: this.isolation.promises() }),
    );
    c.handle(MSG.lease, () => EMPTY);
    c.handle(MSG.fetch, (_from, body) => {
      const base = messages.locate.decode(body).base;
      const e = this.table.get(base);
      // `movedTo`: its owner is a live member here, which the asker may not have admitted yet.
      const ownerLive = e !== undefined && e.owner !== this.route && this.memberByRoute(e.owner) !== undefined;
      return messages.takeReply.encode({ copy: e === undefined ? null : toCopy(e), movedTo: ownerLive ? e.owner : null, removed: describeHeld(this.table, base).removed });
    });
    c.on('member-added', (m) => {
      this.isolation.memberAdded(m.route);
      this.removals.wake(); // what waited for a member out of reach goes out again
      this.#ping(m); // its answer may be what this member's lease waits for
      this.onMemberAdded(m);
      this.noteMembershipChange();
    });
    c.on('member-removed', (m, reason, detail) => {
      this.leaving.delete(m.route);
      const refused = detail?.refused ?? false;
      this.isolation.memberRemoved(m.route, reason);
      this.log.info(
        { member: m.route, reason, refused, quorum: this.isolation.hasQuorum() },
        reason === 'failed'
          ? 'member removed for failure: it may be alive across a partition (a reset is no proof of death), so its seat still counts'
          : 'member left: its seat is freed',
      );
      this.onMemberRemoved(m, reason, refused);
      this.noteMembershipChange();
    });
    // A process paused longer than the drop time (SIGSTOP, a long GC, a frozen VM) was evicted by the
    // others, who took its sessions over: it must check its copies before serving them again.
    let tick = this.clock.monotonic();
    let sweep = tick;
    this.#timers.push(
      this.clock.setInterval(() => {
        const mono = this.clock.monotonic();
        if (mono - tick > Math.max(1000, this.options.dropTime / 2)) {
          this.isolation.paused(mono - tick);
          this.markUnverified(`this process was paused for ${Math.round(mono - tick)} ms`);
        }
        tick = mono;
        const now = this.clock.now();
        for (const m of this.channel.members()) if (this.isolation.leaseDue([m.route]).length > 0) this.#ping(m);
        // Without its lease, others may take this member's sessions over once their promises run out.
        const lapses = this.isolation.lapses;
        if (lapses !== this.#lapses) {
          this.#lapses = lapses;
          this.log.warn(
            { size: this.isolation.size(), answering: this.isolation.answering() },
            'this member lost the majority of the cluster (too few members answered it lately): it serves nothing until they do',
          );
          this.markUnverified('this member lost the majority of the cluster (its lease ran out)');
        }
        const quorum = this.isolation.hasQuorum();
        if (quorum && !this.#hadQuorum) this.log.info({ size: this.isolation.size(), answering: this.isolation.answering() }, 'this member sees a majority of the cluster');
        this.#hadQuorum = quorum;
        if (mono - sweep >= SWEEP_MS) {
          sweep = mono;
          this.counters.expired += this.table.sweep(now);
        }
        if (!this.stopping) {
          if (mono - this.#lastWake > 60_000) {
            this.#lastWake = mono; // a seat forgotten makes no event: look at what was parked now and then
            this.removals.wake();
          }
          this.removals.retry(this.channel.members(), now, this.isolation.unreachable() > 0);
          this.#forgetDue(mono);
          this.maintain();
        }
      }, TICK_MS),
    );
  }

  /**
   * A write or copy of a session not held here is refused at `maxSessions` (the sender sees
   * `ERR_REMOTE` with `remote.code` `ERR_SESSION_CAPACITY`); what is held already is always updated.
   */
  #admitCopy(base: string): void {
    if (this.capacity !== undefined && this.table.get(base) === undefined) this.capacity.admitCopy(base);
  }

  protected abstract onMemberAdded(member: MemberInfo): void;
  /** `refused`: its process is gone (a restart comes back with a new id and nothing held). */
  protected abstract onMemberRemoved(member: MemberInfo, reason: 'left' | 'failed', refused: boolean): void;
  /** Periodic repair: re-protection, adoption, anti-entropy. Runs every tick; must be cheap when idle. */
  protected abstract maintain(): void;
  /** Which entries must be checked against the other members after a possible cut-off. */
  protected abstract needsVerification(e: SessionEntry): boolean;
  /** Graceful leave: makes sure every session held here lives on elsewhere. */
  abstract leave(): Promise<void>;
  #markDiscovered!: () => void;
  readonly #discovered = new Promise<void>((resolve) => (this.#markDiscovered = resolve));

  /**
   * Resolves when this member can take sessions over: its discovery window is over, it may answer
   * "no session" (`Isolation.settled`) and it sees a majority of the cluster (delta mode: also its
   * state transfer is done). Before that, a session it does not hold is answered 503, not "no session".
   */
  ready(): Promise<void> {
    return this.#discovered;
  }

  /** Called once the channel runs. */
  started(): void {
    const check = (): void => {
      if (this.isolation.hasQuorum() && this.isolation.settled()) this.#markDiscovered();
      else this.#timers.push(this.clock.setTimeout(check, TICK_MS));
    };
    this.#timers.push(this.clock.setTimeout(check, this.options.discoveryMs ?? Math.round((this.options.dropTime * 2) / 3)));
  }

  /** Stops timers. The channel is stopped by the owner after `leave()`. */
  close(): void {
    for (const t of this.#timers) this.clock.clearInterval(t); // clearInterval clears timeouts too
    this.#timers = [];
  }

  /** How many times `markUnverified` ran. */
  #unverifiedMarks = 0;

  /** A point to clear a session's mark from later (`verified`). */
  protected get unverifiedMarks(): number {
    return this.#unverifiedMarks;
  }

  /** Clears `e`'s mark, unless a pause or a lost lease marked every session after `since`. */
  protected verified(e: SessionEntry, since: number): void {
    if (this.#unverifiedMarks === since) e.unverified = false;
  }

  /** Marks sessions to be checked against the other members before they are served again. */
  protected markUnverified(reason: string): void {
    this.#unverifiedMarks++;
    let n = 0;
    for (const e of this.table.entries()) {
      if (this.needsVerification(e)) {
        e.unverified = true;
        n++;
      }
    }
    if (n > 0) this.log.warn({ sessions: n, reason }, 'this member may have been cut off; sessions are checked with the others before they are served');
  }

  /**
   * How long a destruction every member acknowledged is still remembered: longer than any copy of the
   * session can still be on its way (a state page is answered within 4 ackTimeouts, a copy within one).
   * One the network held longer is read after its sender's deadline and refused unrun (protocol
   * version 3, src/cluster/late-requests.ts), so it cannot outlive the tombstone it would cross.
   */
  #forgetGrace(): number {
    return 8 * this.options.ackTimeout;
  }

  /** Tombstones whose grace is over: forgotten here, and every member told (best effort: they expire anyway). */
  #forgetDue(now: number): void {
    if (this.#forgets.length === 0 || this.#forgets[0].at > now) return;
    const due: ForgetMessage['items'] = [];
    while (this.#forgets.length > 0 && this.#forgets[0].at <= now && due.length < 1000) due.push(this.#forgets.shift()!.item);
    for (const x of due) this.table.forget(x.base, x.epoch, x.owner);
    const body = messages.forget.encode({ items: due });
    for (const m of this.channel.members()) this.channel.request(m.id, MSG.forget, body, { timeoutMs: this.options.ackTimeout }).catch(() => undefined);
  }

  /** A destruction arrived (delta mode drops the writes it queued for that session meanwhile). */
  protected onRemoved(_base: string): void {}

  /** A lease ping: its answer renews this member's lease, and the member's promise to us. */
  #ping(m: MemberInfo): void {
    this.channel.request(m.id, MSG.lease, EMPTY, { timeoutMs: this.isolation.leaseMs }).catch(() => undefined);
  }

  /**
   * Applies `apply` at once when every schema is known. Messages from one owner arrive in order on one
   * connection; applying them without a pause keeps that order (a copy and the removal after it must
   * not swap places). Only a message that needs a schema fetch waits.
   */
  #afterSchemas(entries: readonly EncodedEntry[], from: MemberInfo, apply: () => ApplyReply): Buffer | Promise<Buffer> {
    if (this.schemas.unknown(entries).length === 0) return messages.applyReply.encode(apply());
    return this.schemas.learn(entries, from).then(() => messages.applyReply.encode(apply()));
  }

  /** Applies a write from the owner; delta mode overrides this to queue during a state transfer. */
  protected applyIncomingDelta(m: SessionDeltaMessage, _from: MemberInfo): ApplyReply {
    if (this.isolation.recovering()) this.recheck(m.base);
    return this.#touched(m.base, applyDelta(this.table, m, this.copyRole()));
  }

  protected applyIncomingCopy(c: SessionCopy): ApplyReply {
    if (this.isolation.recovering()) this.recheck(c.base);
    return this.#touched(c.base, applyCopy(this.table, c, this.copyRole()));
  }

  #touched(base: string, reply: ApplyReply): ApplyReply {
    if (reply.status === 'OK') {
      const e = this.table.get(base);
      if (e !== undefined) e.touchedAt = this.clock.monotonic();
    }
    return reply;
  }

  /**
   * A copy that arrived while this member was catching up after a pause may be a message that waited
   * in the socket all along, written before the others moved on: check it with them.
   */
  protected abstract recheck(base: string): void;

  /** How this member holds a copy it was sent. */
  protected copyRole(): Role {
    return 'backup';
  }

  /** Sends the whole entry to `member` to hold as a copy. */
  protected async sendCopy(member: MemberInfo, e: SessionEntry, type: string = MSG.copy): Promise<ApplyReply> {
    this.removals.cancelDrops(e.base, member.id); // a drop still owed to it would take this copy away
    return this.requestApply(member, type, messages.copy.encode(toCopy(e)));
  }
}
