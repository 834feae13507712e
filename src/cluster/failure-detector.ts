/**
 * Who is alive (Tomcat's TcpFailureDetector over its membership). Discovery (heartbeats, static
 * or DNS peers) reports members it hears; a member is admitted once our connection to it has
 * handshaken; silence or a broken connection makes it suspect, and only a failed direct TCP check
 * removes it: a lost heartbeat never evicts a live member, a refused connection evicts at once.
 *
 * No I/O here: the clock, the direct check and the connection activity are injected.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { LogLimiter } from './log-limiter.js';
import { shortId } from './messages.js';
import type { ClusterEvents, ClusterMetrics, MemberInfo, RemovalReason } from './types.js';

/** Where a member's address is in its life with us. */
export type MemberState = 'joining' | 'alive' | 'suspect';

/** One known member. */
export interface MemberRecord {
  readonly info: MemberInfo;
  /** `host:port` we reach it at. */
  readonly address: string;
  state: MemberState;
  /** Monotonic ms of the last heartbeat or other evidence of life. */
  lastHeard: number;
}

/** What the failure detector needs from the rest of the cluster layer. */
export interface FailureDetectorOptions {
  self: MemberInfo;
  /** Silence after which an admitted member is suspected (and a joining one forgotten), ms. */
  dropTimeMs: number;
  /** How long the direct check may take, ms. */
  checkTimeoutMs: number;
  /** Monotonic clock, ms. */
  now(): number;
  /** Direct check: does the member answer over TCP within `timeoutMs`? Must not reject. */
  probe(member: MemberInfo, address: string, timeoutMs: number): Promise<boolean>;
  /**
   * Indirect check, when the direct one failed: do other members reach it within `timeoutMs` (SWIM's
   * ping-req)? `reached`: one did, so it stays (the fault is on our path only). Must not reject.
   * Without it, the direct check decides alone.
   */
  indirect?(member: MemberInfo, address: string, timeoutMs: number): Promise<{ reached: boolean }>;
  /** Monotonic ms of the last authenticated frame from the member (TCP traffic is life too), 0 if none. */
  lastActivity(member: MemberInfo, address: string): number;
  metrics: ClusterMetrics;
  logger: Logger;
}

/** Events: the public three, plus `discovered` and `released` for connection bookkeeping. */
export interface FailureDetectorEvents extends ClusterEvents {
  /** A new member was heard: connect to it; `reachable` admits it once handshaken. */
  discovered: [record: MemberRecord];
  /** A record left the table (before `member-removed`, if it was admitted): release its connection. */
  released: [record: MemberRecord];
}

/** The member table and its failure detection. */
export class FailureDetector extends EventEmitter<FailureDetectorEvents> {
  readonly #opts: FailureDetectorOptions;
  readonly #records = new Map<string, MemberRecord>();
  /** Ids that left gracefully, with expiry: a heartbeat delayed past the leave must not re-add them. */
  readonly #left = new Map<string, number>();
  readonly #warnLog = new LogLimiter(60_000);
  #stopped = false;

  constructor(opts: FailureDetectorOptions) {
    super();
    this.#opts = opts;
  }

  /** The record of a member, in any state. */
  get(memberId: string): MemberRecord | undefined {
    return this.#records.get(memberId);
  }

  /** Admitted members (alive or suspect), in order of joining. */
  members(): MemberInfo[] {
    const out: MemberInfo[] = [];
    for (const r of this.#records.values()) if (r.state !== 'joining') out.push(r.info);
    return out;
  }

  /** Admitted records, for the leave broadcast. */
  admitted(): MemberRecord[] {
    return [...this.#records.values()].filter((r) => r.state !== 'joining');
  }

  /** Evidence that `member` is alive at `address` (a heartbeat, or a handshake with a static peer). */
  heard(member: MemberInfo, address: string): void {
    if (this.#stopped || member.id === this.#opts.self.id) return;
    const now = this.#opts.now();
    if (member.route === this.#opts.self.route) {
      this.#warnOnce(`route:${member.id}`, { peer: member.route, id: shortId(member.id), address }, 'another member uses this member\'s route; ignoring it: routes must be unique');
      return;
    }
    const leftUntil = this.#left.get(member.id);
    if (leftUntil !== undefined && leftUntil > now) return;
    const known = this.#records.get(member.id);
    if (known !== undefined) {
      known.lastHeard = Math.max(known.lastHeard, now);
      return;
    }
    const other = [...this.#records.values()].find((r) => r.info.route === member.route);
    if (other !== undefined) {
      const newer = member.startTime > other.info.startTime || (member.startTime === other.info.startTime && member.id > other.info.id);
      if (!newer) {
        this.#warnOnce(`stale:${member.id}`, { peer: member.route, id: shortId(member.id), current: shortId(other.info.id) }, 'ignoring an older member claiming a route in use');
        return;
      }
      // The route restarted: its old incarnation is gone even if we never saw it fail.
      this.#remove(other, 'failed');
    }
    const record: MemberRecord = { info: member, address, state: 'joining', lastHeard: now };
    this.#records.set(member.id, record);
    this.emit('discovered', record);
  }

  /** Our connection to `member` handshook: admit it if it was joining. */
  reachable(member: MemberInfo): void {
    const r = this.#records.get(member.id);
    if (this.#stopped || r?.state !== 'joining') return;
    r.state = 'alive';
    r.lastHeard = this.#opts.now();
    this.#opts.metrics.membersAdded += 1;
    this.#opts.logger.info({ peer: r.info.route, id: shortId(r.info.id), address: r.address }, 'member joined');
    this.emit('member-added', r.info);
  }

  /** Our connection to the member broke: suspect it now, not after `dropTime`. */
  connectionLost(memberId: string): void {
    const r = this.#records.get(memberId);
    if (r?.state === 'alive') this.#suspect(r, 'connection lost');
  }

  /** The member announced a graceful leave. */
  left(memberId: string): void {
    if (this.#stopped) return;
    this.#left.set(memberId, this.#opts.now() + 2 * this.#opts.dropTimeMs);
    const r = this.#records.get(memberId);
    if (r !== undefined) this.#remove(r, 'left');
  }

  /** Periodic sweep: suspect the silent, forget silent joiners, expire leave tombstones. */
  tick(): void {
    if (this.#stopped) return;
    const now = this.#opts.now();
    for (const r of [...this.#records.values()]) {
      const heard = Math.max(r.lastHeard, this.#opts.lastActivity(r.info, r.address));
      if (now - heard <= this.#opts.dropTimeMs) continue;
      if (r.state === 'joining') this.#remove(r, 'failed');
      else if (r.state === 'alive') this.#suspect(r, `silent for ${Math.round(now - heard)} ms`);
    }
    for (const [id, until] of this.#left) if (until <= now) this.#left.delete(id);
  }

  /** Forgets everything without events (this member is stopping). */
  stop(): void {
    this.#stopped = true;
    this.#records.clear();
    this.#left.clear();
  }

  #suspect(r: MemberRecord, why: string): void {
    r.state = 'suspect';
    this.#opts.metrics.membersSuspected += 1;
    this.#opts.logger.warn({ peer: r.info.route, id: shortId(r.info.id), why }, 'member suspected; checking it directly');
    this.emit('member-suspected', r.info);
    const started = this.#opts.now();
    void this.#opts.probe(r.info, r.address, this.#opts.checkTimeoutMs).then(
      (ok) => this.#checked(r, ok, started),
      () => this.#checked(r, false, started),
    );
  }

  #checked(r: MemberRecord, ok: boolean, started: number): void {
    if (this.#stopped || this.#records.get(r.info.id) !== r || r.state !== 'suspect') return;
    const ms = Math.round(this.#opts.now() - started);
    if (ok) {
      this.#clear(r, { checkMs: ms }, 'member answered the direct check; suspicion cleared');
      return;
    }
    if (this.#opts.indirect === undefined) {
      this.#remove(r, 'failed', ms);
      return;
    }
    // One reset, one full accept queue or one bad path is not a death: the others are asked first.
    void this.#opts.indirect(r.info, r.address, this.#opts.checkTimeoutMs).then(
      (v) => this.#indirectly(r, v.reached, started),
      () => this.#indirectly(r, false, started),
    );
  }

  #indirectly(r: MemberRecord, reached: boolean, started: number): void {
    if (this.#stopped || this.#records.get(r.info.id) !== r || r.state !== 'suspect') return;
    const ms = Math.round(this.#opts.now() - started);
    if (reached) this.#clear(r, { checkMs: ms }, 'member failed our direct check but another member reached it; it stays');
    else this.#remove(r, 'failed', ms);
  }

  #clear(r: MemberRecord, fields: object, msg: string): void {
    r.state = 'alive';
    r.lastHeard = this.#opts.now();
    this.#opts.logger.info({ peer: r.info.route, id: shortId(r.info.id), ...fields }, msg);
  }

  #remove(r: MemberRecord, reason: RemovalReason, checkMs?: number): void {
    this.#records.delete(r.info.id);
    this.emit('released', r);
    if (r.state === 'joining') return;
    this.#opts.metrics.membersRemoved += 1;
    const fields = { peer: r.info.route, id: shortId(r.info.id), reason, checkMs };
    if (reason === 'left') this.#opts.logger.info(fields, 'member left');
    else this.#opts.logger.warn(fields, 'member failed and was removed');
    this.emit('member-removed', r.info, reason);
  }

  #warnOnce(key: string, fields: object, msg: string): void {
    if (this.#warnLog.allow(key, this.#opts.now()) !== false) this.#opts.logger.warn(fields, msg);
  }
}
