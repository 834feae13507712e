/**
 * `ClusterChannel` over the simulated network, with the real channel's request semantics
 * (src/cluster/README.md, "Requests"): at most once; ERR_MEMBER_GONE when the member is not admitted
 * or is removed while the request is pending; ERR_NOT_CONNECTED for a request written on a
 * connection that breaks (never resent); ERR_REQUEST_TIMEOUT; ERR_REMOTE with the handler's
 * `{code, message}` (ERR_NO_HANDLER without one); ERR_STOPPED once stopping. Membership events
 * come from the oracle (membership.ts), as the failure detector would give them.
 */
import { EventEmitter } from 'node:events';
import type { ClusterChannel, ClusterEvents, ClusterMetrics, MemberInfo, MessageHandler, RemovalDetail, RemovalReason } from '../../src/cluster/types.js';
import { createMetrics, snapshotMetrics } from '../../src/cluster/metrics.js';
import { ClusterRequestError, ClusterStateError } from '../../src/errors.js';
import { SenderClock, lateRequestMessage } from '../../src/cluster/late-requests.js';
import type { Clock, TimerHandle } from '../../src/replication/clock.js';
import type { Proc } from './loop.js';
import type { Conn, SimNetwork } from './network.js';

const EMPTY = Buffer.alloc(0);
const LEAVE_TIMEOUT_MS = 500;

interface Pending {
  to: string;
  resolve(b: Buffer): void;
  reject(e: Error): void;
  timer: TimerHandle;
}

type Reply = { ok: true; body: Buffer } | { ok: false; code: string; message: string };

/** What the channel reports to the world (trace, coverage). */
export interface ChannelObserver {
  request(from: SimChannel, to: MemberInfo, type: string, body: Buffer): void;
  /** Returns how long this request's answer waits before it leaves (the slow-grant nemesis), if at all. */
  handled(at: SimChannel, from: MemberInfo, type: string, body: Buffer): number | undefined;
  failed(from: SimChannel, to: string, type: string, code: string): void;
  /** A request arrived after its sender's deadline and was refused unrun. */
  refusedLate?(at: SimChannel, from: MemberInfo, type: string, lateMs: number): void;
}

type MemberState = 'alive' | 'suspect';

export class SimChannel extends EventEmitter<ClusterEvents> implements ClusterChannel {
  readonly #handlers = new Map<string, MessageHandler>();
  readonly #view = new Map<string, { info: MemberInfo; state: MemberState }>();
  /** Our outgoing connection to each member id, and what is pending on it. */
  readonly #out = new Map<string, { conn: Conn; pending: Map<number, Pending> }>();
  readonly #metrics: ClusterMetrics = createMetrics();
  #state: 'new' | 'started' | 'stopping' | 'stopped' = 'new';
  #nextId = 1;
  /** The requesters' clocks per incoming connection (the receiver's `SenderClock` each). */
  readonly #senderClocks = new WeakMap<Conn, SenderClock>();
  /** Protocol version 3 (requests carry their send time); false for a member of the previous release. */
  sendsDeadlines = true;
  /** Resolved `peers` lookup, set by the world: member id → channel (the remote end of a connection). */
  peer: (id: string) => SimChannel | undefined = () => undefined;

  constructor(
    readonly self: MemberInfo,
    readonly proc: Proc,
    readonly net: SimNetwork,
    readonly clock: Clock,
    readonly requestTimeout: number,
    readonly observer: ChannelObserver,
  ) {
    super();
  }

  get id(): string {
    return this.self.id;
  }

  get route(): string {
    return this.self.route;
  }

  get stopped(): boolean {
    return this.#state === 'stopping' || this.#state === 'stopped';
  }

  start(): Promise<void> {
    if (this.#state !== 'new') throw new ClusterStateError(`cannot start a cluster channel that is ${this.#state}`);
    this.#state = 'started';
    return Promise.resolve();
  }

  members(): MemberInfo[] {
    return [...this.#view.values()].map((r) => r.info);
  }

  has(id: string): boolean {
    return this.#view.has(id);
  }

  stateOf(id: string): MemberState | undefined {
    return this.#view.get(id)?.state;
  }

  handle(type: string, handler: MessageHandler): void {
    if (this.#handlers.has(type)) throw new ClusterStateError(`a handler for message type "${type}" is already registered`);
    this.#handlers.set(type, handler);
  }

  /** Takes a handler away again: a member of an older release, which never had it. */
  unhandle(type: string): void {
    this.#handlers.delete(type);
  }

  metrics(): ClusterMetrics {
    return snapshotMetrics(this.#metrics);
  }

  request(memberId: string, type: string, body: Buffer, options?: { timeoutMs?: number }): Promise<Buffer> {
    if (this.stopped) return Promise.reject(new ClusterRequestError('ERR_STOPPED', 'the cluster channel is stopped'));
    const r = this.#view.get(memberId);
    if (r === undefined) {
      this.observer.failed(this, memberId, type, 'ERR_MEMBER_GONE');
      return Promise.reject(new ClusterRequestError('ERR_MEMBER_GONE', `member ${memberId.slice(0, 8)} is not a live member`));
    }
    return this.#send(r.info, type, body, options?.timeoutMs ?? this.requestTimeout);
  }

  #connTo(info: MemberInfo): { conn: Conn; pending: Map<number, Pending> } | undefined {
    let o = this.#out.get(info.id);
    if (o === undefined || !o.conn.open) {
      const remote = this.peer(info.id);
      if (remote === undefined) return undefined;
      o = { conn: this.net.open(this, remote), pending: new Map() };
      this.#out.set(info.id, o);
    }
    return o;
  }

  #send(to: MemberInfo, type: string, body: Buffer, timeoutMs: number): Promise<Buffer> {
    const o = this.#connTo(to);
    if (o === undefined) return Promise.reject(new ClusterRequestError('ERR_NOT_CONNECTED', `no connection to ${to.route}`));
    const id = this.#nextId++;
    const conn = o.conn;
    this.#metrics.messagesSent++;
    this.#metrics.bytesSent += body.length;
    this.observer.request(this, to, type, body);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        if (o.pending.delete(id)) {
          this.#metrics.requestsTimedOut++;
          this.observer.failed(this, to.id, type, 'ERR_REQUEST_TIMEOUT');
          reject(new ClusterRequestError('ERR_REQUEST_TIMEOUT', `no reply from ${to.route} to "${type}" within ${timeoutMs} ms`));
        }
      }, timeoutMs);
      o.pending.set(id, {
        to: to.id,
        resolve,
        reject: (e) => {
          if (e instanceof ClusterRequestError) this.observer.failed(this, to.id, type, e.code);
          reject(e);
        },
        timer,
      });
      const from = this.self;
      // Version 3 when both ends speak it: the send time as the writer's clock reads it then.
      const sent = this.sendsDeadlines && this.peer(to.id)?.sendsDeadlines === true ? { at: this.clock.monotonic(), leftMs: timeoutMs } : undefined;
      this.net.send(conn, 0, () => this.peer(to.id)?.dispatch(conn, id, from, type, body, sent));
    });
  }

  /** A request arrived on `conn`: run the handler, reply on the same connection. */
  dispatch(conn: Conn, id: number, from: MemberInfo, type: string, body: Buffer, sent?: { at: number; leftMs: number }): void {
    if (this.#state !== 'started' && this.#state !== 'stopping') return;
    this.#metrics.messagesReceived++;
    this.#metrics.bytesReceived += body.length;
    const answer = (r: Reply) => {
      const requester = this.peer(from.id);
      this.net.send(conn, 1, () => requester?.onReply(conn, id, r));
    };
    if (sent !== undefined) {
      // receiver.ts's rule, on the same estimate: a request its sender gave up on is refused unrun.
      let clock = this.#senderClocks.get(conn);
      if (clock === undefined) this.#senderClocks.set(conn, (clock = new SenderClock()));
      const late = clock.arrive(sent.at, sent.leftMs, this.clock.monotonic());
      if (late > 0) {
        this.#metrics.requestsRefusedLate++;
        this.observer.refusedLate?.(this, from, type, late);
        answer({ ok: false, code: 'ERR_REQUEST_LATE', message: lateRequestMessage(type, from.route, late) });
        return;
      }
    }
    const handler = this.#handlers.get(type);
    const lateBy = handler === undefined ? undefined : this.observer.handled(this, from, type, body);
    const reply = (r: Reply) => {
      if (lateBy === undefined) answer(r);
      else this.net.loop.after(lateBy, this.proc, () => answer(r));
    };
    if (handler === undefined) {
      reply({ ok: false, code: 'ERR_NO_HANDLER', message: `member ${this.self.route} has no handler for message type "${type}"` });
      return;
    }
    let result: ReturnType<MessageHandler>;
    try {
      result = handler(from, body);
    } catch (err) {
      reply(describe(err));
      return;
    }
    Promise.resolve(result).then(
      (b) => reply({ ok: true, body: Buffer.isBuffer(b) ? b : EMPTY }),
      (err: unknown) => reply(describe(err)),
    );
  }

  onReply(conn: Conn, id: number, r: Reply): void {
    const o = this.#out.get(conn.to.id);
    if (o === undefined || o.conn !== conn) return;
    const p = o.pending.get(id);
    if (p === undefined) return; // timed out already
    o.pending.delete(id);
    this.clock.clearTimeout(p.timer);
    if (r.ok) {
      this.#metrics.messagesReceived++;
      p.resolve(r.body);
    } else {
      p.reject(new ClusterRequestError('ERR_REMOTE', `${conn.to.route} answered ${r.code}: ${r.message}`, { remote: { code: r.code, message: r.message } }));
    }
  }

  /** Our connection to `memberId` broke: what was written on it fails, never resent. */
  connectionBroke(memberId: string, reconnectAfter: number): void {
    const o = this.#out.get(memberId);
    if (o === undefined) return;
    this.#failAll(o, 'ERR_NOT_CONNECTED', `the connection to ${o.conn.to.route} broke; the request may or may not have run there`);
    this.net.close(o.conn);
    const remote = this.peer(memberId);
    // Simulated time, not this member's clock: a wall clock set ahead (the clock nemesis) would hold the
    // new connection shut for as long as it is off.
    if (remote !== undefined && !this.stopped) this.#out.set(memberId, { conn: this.net.open(this, remote, this.net.loop.now + reconnectAfter), pending: new Map() });
    else this.#out.delete(memberId);
  }

  #failAll(o: { conn: Conn; pending: Map<number, Pending> }, code: 'ERR_NOT_CONNECTED' | 'ERR_MEMBER_GONE' | 'ERR_STOPPED', message: string): void {
    const pending = [...o.pending.values()];
    o.pending.clear();
    for (const p of pending) {
      this.clock.clearTimeout(p.timer);
      p.reject(new ClusterRequestError(code, message));
    }
  }

  // ---- membership verdicts, given by the oracle ----

  admit(info: MemberInfo): void {
    if (this.stopped || this.#view.has(info.id)) return;
    this.#view.set(info.id, { info, state: 'alive' });
    this.#metrics.membersAdded++;
    this.emit('member-added', info);
  }

  suspect(id: string): void {
    const r = this.#view.get(id);
    if (this.stopped || r === undefined || r.state !== 'alive') return;
    r.state = 'suspect';
    this.#metrics.membersSuspected++;
    this.emit('member-suspected', r.info);
  }

  clear(id: string): void {
    const r = this.#view.get(id);
    if (r !== undefined) r.state = 'alive';
  }

  /** Removal: pending requests fail first (the real channel's 'released' comes before the event). */
  remove(id: string, reason: RemovalReason, detail?: RemovalDetail): void {
    const r = this.#view.get(id);
    if (this.stopped || r === undefined) return;
    this.#view.delete(id);
    const o = this.#out.get(id);
    if (o !== undefined) {
      this.#failAll(o, 'ERR_MEMBER_GONE', `member ${r.info.route} is gone`);
      this.net.close(o.conn);
      this.#out.delete(id);
    }
    this.#metrics.membersRemoved++;
    if (detail === undefined) this.emit('member-removed', r.info, reason);
    else this.emit('member-removed', r.info, reason, detail);
  }

  // ---- lifecycle ----

  /** Graceful: an acknowledged leave to every member (at most 500 ms), then everything closes. */
  async stop(): Promise<void> {
    if (this.#state !== 'started') return;
    this.#state = 'stopping';
    const leaves = [...this.#view.values()].map((r) => {
      const o = this.#connTo(r.info);
      if (o === undefined) return Promise.resolve();
      const conn = o.conn;
      const self = this.self;
      return new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(resolve, LEAVE_TIMEOUT_MS);
        this.net.send(conn, 0, () => {
          const remote = this.peer(r.info.id);
          if (remote === undefined) return;
          remote.remove(self.id, 'left');
          this.net.send(conn, 1, () => {
            this.clock.clearTimeout(timer);
            resolve();
          });
        });
      });
    });
    await Promise.all(leaves);
    this.halt('ERR_STOPPED');
  }

  /** Stops at once: a crash (nothing is rejected: the process is gone) or the end of a stop. */
  halt(code?: 'ERR_STOPPED'): void {
    this.#state = 'stopped';
    for (const o of this.#out.values()) {
      if (code !== undefined) this.#failAll(o, code, 'the cluster channel is stopped');
      this.net.close(o.conn);
    }
    this.#out.clear();
    this.#view.clear();
  }

  /** The member ids we have connections to (for crash notification). */
  connectedTo(id: string): boolean {
    return this.#out.has(id);
  }
}

function describe(err: unknown): Reply {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { ok: false, code: typeof code === 'string' ? code : 'ERR_HANDLER', message: err.message };
  }
  return { ok: false, code: 'ERR_HANDLER', message: String(err) };
}
