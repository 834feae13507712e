/**
 * Delta mode (Tomcat's DeltaManager): every member holds every session and every write is sent as a
 * delta to all. A member that joins pulls the full state from the longest-running member in bounded
 * pages, queueing the deltas that arrive meanwhile and applying them after, in version order.
 */
import { randomUUID } from 'node:crypto';
import type { MemberInfo } from '../cluster/types.js';
import { messages, type ApplyReply, type SessionCopy, type SessionDeltaMessage } from '../codec/messages.js';
import { StateTransferError } from '../errors.js';
import { applyCopy, applyDelta, maxAgeToWire, toCopy } from './copies.js';
import { MSG, Replicator, type ReplicatorOptions } from './replicator.js';
import type { SessionEntry } from './session-table.js';
import { shortId } from './session-id.js';

const SNAPSHOT_TTL_MS = 120_000;
const ADVISE_BACKUP_FROM = 4;

/** The delta-mode replication manager. */
export class DeltaManager extends Replicator {
  readonly mode = 'delta' as const;
  /** Deltas that arrived during our state transfer, applied after it in arrival order. */
  #queued: SessionDeltaMessage[] | undefined;
  #transferDone = false;
  #transferring: Promise<void> | undefined;
  #advised = false;
  /** Base lists frozen per transfer, so that a joiner's pages do not skip or repeat sessions. */
  readonly #snapshots = new Map<string, { bases: string[]; until: number }>();
  /** Resolves when the first state transfer finished (or there was no one to transfer from). */
  readonly ready: Promise<void>;
  #markReady!: () => void;

  constructor(options: ReplicatorOptions) {
    super(options);
    this.ready = new Promise((resolve) => (this.#markReady = resolve));
  }

  override install(): void {
    super.install();
    this.channel.handle(MSG.statePage, (_from, body) => this.#onStatePage(messages.statePage.decode(body)));
  }

  protected needsVerification(): boolean {
    return true; // every member holds everything, and a cut-off member missed deltas
  }

  protected copyHolders(): MemberInfo[] {
    return this.channel.members().filter((m) => !this.leaving.has(m.route));
  }

  protected override applyIncomingDelta(m: SessionDeltaMessage): ApplyReply {
    if (this.#queued !== undefined && this.table.get(m.base) === undefined) {
      this.#queued.push(m);
      return { status: 'OK', epoch: 0, owner: '' };
    }
    return applyDelta(this.table, m, 'backup');
  }

  protected async replicate(_e: SessionEntry, delta: SessionDeltaMessage, next: SessionEntry): Promise<void> {
    const targets = this.copyHolders();
    const body = messages.delta.encode(delta);
    const sends = targets.map(async (m) => {
      const reply = await this.requestApply(m, MSG.delta, body);
      return reply.status === 'NEED_FULL' ? this.sendCopy(m, next) : reply;
    });
    const work = this.settle(sends, delta.base);
    if (this.options.ack === 'sync') return work;
    work.catch((err: unknown) => {
      this.counters.replicationFailures++;
      this.log.warn({ err, session: shortId(delta.base) }, 'asynchronous replication failed');
    });
  }

  protected async takeOver(base: string): Promise<boolean> {
    let e = this.table.get(base);
    if (e === undefined || e.unverified === true) {
      // Not here (we are still receiving the state, or it expired here), or possibly outdated after
      // a cut-off: ask the others for the newest copy.
      e = (await this.#fetchFromPeers(base)) ?? e;
      if (e === undefined) return false;
      e.unverified = false;
    }
    const epoch = e.epoch + 1;
    const mine: SessionEntry = { ...e, owner: this.route, epoch, role: 'primary', values: undefined };
    this.table.set(mine);
    // An empty delta at the new epoch tells every member who owns the session now.
    const announce: SessionDeltaMessage = {
      base,
      owner: this.route,
      epoch,
      version: mine.version,
      baseVersion: mine.version,
      expire: mine.expire,
      maxAge: maxAgeToWire(mine.maxAge),
      set: [],
      removed: [],
    };
    const body = messages.delta.encode(announce);
    await this.settle(
      this.copyHolders().map(async (m) => {
        const reply = await this.requestApply(m, MSG.delta, body);
        return reply.status === 'NEED_FULL' ? this.sendCopy(m, mine) : reply;
      }),
      base,
    );
    this.log.info({ session: shortId(base), epoch }, 'took over session');
    return true;
  }

  async #fetchFromPeers(base: string): Promise<SessionEntry | undefined> {
    const replies = await Promise.allSettled(
      this.channel.members().map(async (m) => ({
        m,
        reply: messages.takeReply.decode(
          await this.channel.request(m.id, MSG.fetch, messages.locate.encode({ base }), { timeoutMs: this.options.ackTimeout }),
        ),
      })),
    );
    let best: { copy: SessionCopy; m: MemberInfo } | undefined;
    for (const r of replies) {
      if (r.status !== 'fulfilled' || r.value.reply.copy === null) continue;
      const c = r.value.reply.copy;
      if (best === undefined || c.epoch > best.copy.epoch || (c.epoch === best.copy.epoch && c.version > best.copy.version)) {
        best = { copy: c, m: r.value.m };
      }
    }
    if (best === undefined) return undefined;
    await this.learnSchemas(best.copy.entries, best.m);
    applyCopy(this.table, best.copy, 'backup');
    return this.table.get(base);
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
    // Only a newcomer pulls the state, from a member that started before it.
    if (!this.#transferDone && this.#transferring === undefined && member.startTime <= this.channel.self.startTime) {
      this.#transferring = this.#transfer().finally(() => (this.#transferring = undefined));
    }
  }

  protected onMemberRemoved(): void {
    // Every member holds every session: nothing to re-protect.
  }

  /** Called once the channel runs: if no older member shows up in the discovery window, we are first. */
  noPeerToTransferFrom(): void {
    if (this.#transferring === undefined && !this.#transferDone) {
      this.#transferDone = true;
      this.#markReady();
    }
  }

  async #transfer(): Promise<void> {
    this.#queued = [];
    const tried = new Set<string>();
    try {
      for (;;) {
        const source = this.channel
          .members()
          .filter((m) => !tried.has(m.id) && m.startTime <= this.channel.self.startTime)
          .sort((a, b) => a.startTime - b.startTime)[0];
        if (source === undefined) {
          if (tried.size > 0) {
            this.log.error(
              new StateTransferError(`state transfer failed from every older member (${tried.size} tried); serving what arrives from now on`),
            );
          }
          return;
        }
        tried.add(source.id);
        try {
          // Each source gets the whole stateTransferTimeout.
          await this.#transferFrom(source, Date.now() + this.options.stateTransferTimeout);
          return;
        } catch (err) {
          this.log.error(
            { err: new StateTransferError(`state transfer from ${source.route} failed; retrying from another member`, { cause: err }) },
            'state transfer failed',
          );
        }
      }
    } finally {
      const queued = this.#queued;
      this.#queued = undefined;
      for (const m of queued) {
        // A gap (the transfer's copy was older than the delta's base) is filled from the owner.
        const reply = applyDelta(this.table, m, 'backup');
        if (reply.status === 'NEED_FULL') await this.#fetchFromPeers(m.base).catch(() => undefined);
      }
      this.#transferDone = true;
      this.#markReady();
    }
  }

  async #transferFrom(source: MemberInfo, deadline: number): Promise<void> {
    const transfer = randomUUID();
    const started = Date.now();
    this.log.info({ from: source.route }, 'state transfer started');
    let offset = 0;
    let sessions = 0;
    let bytes = 0;
    while (offset >= 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new StateTransferError(`state transfer from ${source.route} took longer than stateTransferTimeout`);
      const raw = await this.channel.request(
        source.id,
        MSG.statePage,
        messages.statePage.encode({ transfer, offset, limit: this.options.stateTransferBatch }),
        { timeoutMs: Math.min(left, this.options.ackTimeout * 4) },
      );
      bytes += raw.length;
      const page = messages.statePageReply.decode(raw);
      for (const c of page.sessions) {
        await this.learnSchemas(c.entries, source);
        applyCopy(this.table, c, 'backup');
      }
      sessions += page.sessions.length;
      offset = page.next;
    }
    this.log.info({ from: source.route, sessions, bytes, ms: Date.now() - started }, 'state transfer done');
  }

  #onStatePage(req: { transfer: string; offset: number; limit: number }): Buffer {
    const now = Date.now();
    for (const [id, s] of this.#snapshots) if (s.until <= now) this.#snapshots.delete(id);
    let snap = this.#snapshots.get(req.transfer);
    if (snap === undefined) {
      snap = { bases: this.table.bases(), until: now + SNAPSHOT_TTL_MS };
      this.#snapshots.set(req.transfer, snap);
    }
    const limit = Math.max(1, Math.min(req.limit, 5000));
    const slice = snap.bases.slice(req.offset, req.offset + limit);
    const sessions: SessionCopy[] = [];
    for (const base of slice) {
      const e = this.table.get(base);
      if (e !== undefined) sessions.push(toCopy(e));
    }
    const next = req.offset + limit < snap.bases.length ? req.offset + limit : -1;
    if (next === -1) this.#snapshots.delete(req.transfer);
    return messages.statePageReply.encode({ sessions, next, total: snap.bases.length });
  }

  async leave(): Promise<void> {
    // Every member holds every session already; nothing to hand off.
    this.stopping = true;
    await Promise.resolve();
  }
}
