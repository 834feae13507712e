/**
 * Our outgoing connection to one peer's receiver (Tomcat's pooled sender, one persistent
 * connection per peer so requests to it stay in order): connects, handshakes, reconnects with
 * exponential backoff, correlates replies with requests, and queues within fixed bounds.
 */
import { EventEmitter } from 'node:events';
import { connect } from 'node:net';
import type { Logger } from 'pino';
import { ClusterRequestError, FrameError } from '../errors.js';
import { FramedSocket } from './framed-socket.js';
import { TAG_BYTES } from './frame-codec.js';
import type { ClusterKeys } from './keys.js';
import type { LogLimiter } from './log-limiter.js';
import { PROTOCOL_RANGE, PROTOCOL_VERSION, decodeHello, decodeRemoteError, encodeHello, formatRange, highestCommon, parseRange, rangeType, shortId, withZoneOf } from './messages.js';
import type { VersionRange } from './messages.js';
import { countReason } from './metrics.js';
import { envelopeBound } from './envelope-codec.js';
import type { BodyPackers } from './envelope-codec.js';
import type { Envelope, FrameKind } from './messages.js';
import type { ClusterMetrics, MemberInfo } from './types.js';

const EMPTY = Buffer.alloc(0);

/** Options of one peer connection. */
export interface PeerConnectionOptions {
  host: string;
  port: number;
  self(): MemberInfo;
  clusterName: string;
  keys: ClusterKeys;
  encrypt: boolean;
  maxFrameBytes: number;
  /** A connection not handshaken by then is dropped and retried. */
  handshakeTimeoutMs: number;
  backoff: { initialMs: number; maxMs: number };
  queue: { maxFrames: number; maxBytes: number };
  metrics: ClusterMetrics;
  logger: Logger;
  /** Limits warnings peers can trigger. */
  rejectLog: LogLimiter;
  /** Protocol versions this member speaks; `PROTOCOL_RANGE` unless given. */
  protocol?: VersionRange;
  /** Body packers of protocol version 2. */
  packers?: BodyPackers;
  /** The member that answered speaks none of our versions (authenticated: it proved the secret). */
  onIncompatible?(member: MemberInfo, range: VersionRange): void;
}

/** Events of a peer connection. */
export interface PeerConnectionEvents {
  /** Handshake done; `remote` is who answered at this address. */
  ready: [remote: MemberInfo];
  /** A handshaken connection broke. */
  down: [remote: MemberInfo, error: Error | undefined];
  /** An attempt failed before the handshake completed. */
  'attempt-failed': [error: Error | undefined];
}

type State = 'idle' | 'connecting' | 'ready' | 'closed';
type OutgoingKind = Extract<FrameKind, 'request' | 'ping' | 'leave'>;

interface Pending {
  kind: OutgoingKind;
  /** Member the request is for; a handshake revealing another member at the address rejects it. */
  memberId: string;
  resolve(body: Buffer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  /** The envelope while queued (encoded when written: the version is the connection's); undefined once written. */
  queued: QueuedEnvelope | undefined;
}

/** A queued envelope and an upper bound of its size in any version. */
interface QueuedEnvelope {
  envelope: Envelope;
  length: number;
}

/** The outgoing connection to one `host:port`. */
export class PeerConnection extends EventEmitter<PeerConnectionEvents> {
  /** Who answered the last handshake at this address. */
  remote: MemberInfo | undefined;
  readonly address: string;
  readonly #opts: PeerConnectionOptions;
  #state: State = 'idle';
  #socket: FramedSocket | undefined;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  /** Error code of the last failed connection attempt, if any. */
  #lastAttemptError: string | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  /** Control frames (ping, leave) waiting for the handshake; they go before data. */
  #control: number[] = [];
  /** Requests waiting for the handshake or for the socket to drain, in order. */
  #queue: number[] = [];
  #queueBytes = 0;
  #queueFrames = 0;
  #closeError: ClusterRequestError | undefined;
  /** Direct checks waiting for the outcome of the current connection attempt. */
  readonly #attemptWaiters = new Set<(remote: MemberInfo | undefined) => void>();
  #lastBackpressureLog = 0;

  constructor(opts: PeerConnectionOptions) {
    super();
    this.#opts = opts;
    this.address = `${opts.host}:${opts.port}`;
  }

  /** True when handshaken and usable. */
  get ready(): boolean {
    return this.#state === 'ready';
  }

  /** `performance.now()` of the last authenticated frame from the peer, 0 if none. */
  /**
   * Whether the last connection attempt was refused (ECONNREFUSED): the host answered and nothing
   * listens on the port, so the process is gone. A partition or a frozen process never refuses: it
   * is silent.
   */
  get lastAttemptRefused(): boolean {
    // Refused or reset by the host's kernel, or closed by the peer mid-handshake: a process that is
    // gone (or going). A frozen process, or one across a partition, only ever times out.
    return this.#lastAttemptError !== undefined && ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'CLOSED_BY_PEER'].includes(this.#lastAttemptError);
  }

  /** The protocol version of the current connection, once handshaken. */
  get version(): number | undefined {
    return this.#state === 'ready' ? this.#socket?.version : undefined;
  }

  get lastReceivedAt(): number {
    return this.#socket?.lastReceivedAt ?? 0;
  }

  /** Connects now unless connected, connecting or closed; skips any backoff wait. */
  connectNow(): void {
    if (this.#state !== 'idle') return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#connect();
  }

  /**
   * Sends a request (or ping, or leave) and resolves with the reply body.
   * Rejects with `ClusterRequestError` (`ERR_REQUEST_TIMEOUT`, `ERR_BACKPRESSURE`,
   * `ERR_NOT_CONNECTED` when the connection broke after it was written, `ERR_MEMBER_GONE`,
   * `ERR_STOPPED`, `ERR_REMOTE`) or `FrameError` `ERR_FRAME_TOO_LARGE`.
   */
  send(kind: OutgoingKind, memberId: string, type: string, body: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.#state === 'closed') return Promise.reject(this.#closeError ?? stopped());
    const id = this.#nextId++;
    // A request's deadline travels with it (version 3), so a receiver refuses it once we gave up.
    const envelope: Envelope = kind === 'request' ? { kind, id, type, body, deadline: performance.now() + timeoutMs } : { kind, id, type, body };
    const payload: QueuedEnvelope = { envelope, length: envelopeBound(envelope) };
    if (payload.length + TAG_BYTES > this.#opts.maxFrameBytes) {
      return Promise.reject(
        new FrameError('ERR_FRAME_TOO_LARGE', `message "${type}" of ${payload.length + TAG_BYTES} bytes over the limit of ${this.#opts.maxFrameBytes} (maxFrameBytes)`),
      );
    }
    const control = kind !== 'request';
    const direct = this.#state === 'ready' && (control || (this.#queueFrames === 0 && !this.#socket!.congested));
    if (!direct && !control && !this.#queueHasRoom(payload.length)) {
      this.#opts.metrics.requestsRejectedBackpressure += 1;
      this.#logBackpressure();
      return Promise.reject(
        new ClusterRequestError(
          'ERR_BACKPRESSURE',
          `send queue to ${this.#describe()} is full (${this.#queueFrames} frames, ${this.#queueBytes} bytes): the peer cannot keep up`,
        ),
      );
    }
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => this.#timeout(id, timeoutMs), timeoutMs);
      const p: Pending = { kind, memberId, resolve, reject, timer, queued: undefined };
      this.#pending.set(id, p);
      if (direct) {
        this.#write(id, p, payload);
      } else {
        p.queued = payload;
        if (control) {
          if (this.#control.length > 64) this.#control = this.#control.filter((q) => this.#pending.get(q)?.queued !== undefined);
          this.#control.push(id);
        } else {
          // Ids of requests settled while queued stay until flushed; compact so they cannot pile up.
          if (this.#queue.length > 2 * this.#queueFrames + 64) this.#queue = this.#queue.filter((q) => this.#pending.get(q)?.queued !== undefined);
          this.#queue.push(id);
          this.#queueBytes += payload.length;
          this.#queueFrames += 1;
        }
        if (this.#state === 'idle' && this.#retryTimer === undefined) this.#connect();
      }
    });
  }

  /**
   * The direct check of the failure detector: does member `memberId` answer a ping at this
   * address within `timeoutMs`? Connects first if needed; a refused connection answers at once.
   */
  async check(memberId: string, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    // Two rounds: an old connection may break under the ping, and a fresh one then decides.
    for (let round = 0; round < 2; round++) {
      const left = deadline - performance.now();
      if (left <= 0 || this.#state === 'closed') return false;
      if (this.#state !== 'ready') {
        this.connectNow();
        const remote = await this.#nextAttempt(left);
        if (remote?.id !== memberId) return false;
      }
      try {
        await this.send('ping', memberId, '', EMPTY, Math.max(1, deadline - performance.now()));
        return this.remote?.id === memberId;
      } catch (err) {
        if (!(err instanceof ClusterRequestError) || err.code !== 'ERR_NOT_CONNECTED') return false;
      }
    }
    return false;
  }

  /** Rejects every request for `memberId` (queued or in flight) with `error`. */
  rejectFor(memberId: string, error: Error): void {
    for (const [id, p] of this.#pending) if (p.memberId === memberId) this.#settle(id, p, error);
  }

  /** Drops the current socket (in-flight requests fail) and reconnects after the backoff. */
  reset(): void {
    if (this.#state === 'closed') return;
    this.#socket?.destroy();
  }

  /** Closes for good: every request rejects with `error` (default `ERR_STOPPED`). */
  close(error: ClusterRequestError = stopped()): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeError = error;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#handshakeTimer);
    this.#socket?.destroy();
    this.#socket = undefined;
    for (const [id, p] of this.#pending) this.#settle(id, p, error);
    this.#attemptOutcome(undefined);
    this.removeAllListeners();
  }

  #connect(): void {
    this.#state = 'connecting';
    const o = this.#opts;
    const framed: FramedSocket = new FramedSocket({
      socket: connect({ host: o.host, port: o.port }),
      role: 'client',
      keys: o.keys,
      encrypt: o.encrypt,
      maxFrameBytes: o.maxFrameBytes,
      metrics: o.metrics,
      logger: o.logger,
      rejectLog: o.rejectLog,
      packers: o.packers,
      route: o.self().route,
      onReady: () => {
        // Release 0.1.0 reads the body's protocolVersion (it must be 1) and ignores the type, where
        // our range goes: it answers version 1, a newer member the highest both speak.
        const range = o.protocol ?? PROTOCOL_RANGE;
        framed.send({
          kind: 'hello',
          id: 0,
          type: rangeType(range, o.self().zone),
          body: encodeHello({ member: o.self(), clusterName: o.clusterName, protocolVersion: Math.max(range.min, PROTOCOL_VERSION) }),
        });
      },
      onEnvelope: (e) => this.#onEnvelope(framed, e),
      onClose: (err) => this.#onClose(framed, err),
    });
    this.#socket = framed;
    this.#handshakeTimer = setTimeout(() => {
      framed.destroy(new Error(`no handshake from ${this.address} within ${o.handshakeTimeoutMs} ms`));
    }, o.handshakeTimeoutMs);
  }

  #onEnvelope(framed: FramedSocket, e: Envelope): void {
    if (this.#socket !== framed) return;
    if (this.#state === 'connecting') {
      if (e.kind !== 'welcome') throw new FrameError('ERR_FRAME_MALFORMED', `expected welcome, got ${e.kind}`);
      const hello = decodeHello(e.body);
      if (hello.clusterName !== this.#opts.clusterName) {
        throw new FrameError('ERR_FRAME_MALFORMED', `peer is of cluster "${hello.clusterName}"`);
      }
      // The welcome's protocolVersion is the version the receiver chose (release 0.1.0: its only one).
      const ours = this.#opts.protocol ?? PROTOCOL_RANGE;
      const theirs = parseRange(e.type, hello.protocolVersion);
      const chosen = hello.protocolVersion;
      if (highestCommon(ours, theirs) === undefined || chosen < Math.max(ours.min, theirs.min) || chosen > Math.min(ours.max, theirs.max)) {
        this.#refuseVersion(framed, hello.member, theirs);
        return;
      }
      framed.setVersion(chosen, hello.member.route);
      clearTimeout(this.#handshakeTimer);
      this.#state = 'ready';
      this.#failures = 0;
      this.remote = withZoneOf(hello.member, e.type);
      framed.socket.on('drain', () => this.#flush());
      // Requests queued for a member no longer at this address (it restarted) cannot be delivered.
      for (const [id, p] of this.#pending) {
        if (p.queued !== undefined && p.kind === 'request' && p.memberId !== hello.member.id) this.#settle(id, p, gone(p.memberId));
      }
      this.#attemptOutcome(hello.member);
      this.emit('ready', hello.member);
      this.#flush();
      return;
    }
    const p = this.#pending.get(e.id);
    if (p === undefined || p.queued !== undefined) return; // timed out meanwhile: a late answer is not an error
    switch (e.kind) {
      case 'reply':
      case 'pong':
        if (p.kind === 'request') this.#opts.metrics.messagesReceived += 1;
        this.#settle(e.id, p, undefined, e.body);
        return;
      case 'error': {
        this.#opts.metrics.messagesReceived += 1;
        const r = decodeRemoteError(e.body);
        const err = new ClusterRequestError('ERR_REMOTE', `${this.#describe()} failed the request: [${r.code}] ${r.message}`, { remote: r });
        this.#settle(e.id, p, err);
        return;
      }
      default:
        throw new FrameError('ERR_FRAME_MALFORMED', `unexpected ${e.kind} frame from a receiver`);
    }
  }

  /** The member at this address speaks none of our versions: count, say so, close (and retry later). */
  #refuseVersion(framed: FramedSocket, member: MemberInfo, theirs: VersionRange): void {
    const o = this.#opts;
    const ours = o.protocol ?? PROTOCOL_RANGE;
    countReason(o.metrics.framesRejected, 'version');
    const suppressed = o.rejectLog.allow(`${this.address} version`);
    if (suppressed !== false) {
      o.logger.warn(
        { address: this.address, peer: member.route, id: shortId(member.id), versions: formatRange(theirs), ours: formatRange(ours), suppressed },
        'refused a member that speaks no protocol version this member speaks; upgrade through a release that speaks both',
      );
    }
    o.onIncompatible?.(member, theirs);
    framed.destroy(new Error(`member ${member.route} speaks protocol versions ${formatRange(theirs)}, this member ${formatRange(ours)}`));
  }

  #onClose(framed: FramedSocket, err: Error | undefined): void {
    if (this.#socket !== framed) return;
    clearTimeout(this.#handshakeTimer);
    this.#socket = undefined;
    if (this.#state === 'closed') return;
    const wasReady = this.#state === 'ready';
    this.#state = 'idle';
    this.#lastAttemptError = wasReady ? undefined : err === undefined ? 'CLOSED_BY_PEER' : 'code' in err ? String(err.code) : undefined;
    // Written requests may or may not have run remotely: fail them rather than resend (at most once).
    for (const [id, p] of this.#pending) {
      if (p.queued === undefined) {
        this.#settle(id, p, new ClusterRequestError('ERR_NOT_CONNECTED', `connection to ${this.#describe()} lost`, { cause: err }));
      }
    }
    if (wasReady) {
      this.emit('down', this.remote!, err);
    } else {
      this.#attemptOutcome(undefined);
      this.emit('attempt-failed', err);
    }
    if (this.#state !== 'idle') return; // a listener reconnected or closed us
    const base = Math.min(this.#opts.backoff.maxMs, this.#opts.backoff.initialMs * 2 ** this.#failures);
    this.#failures = Math.min(this.#failures + 1, 16);
    if (!wasReady && this.#failures >= 5) {
      const suppressed = this.#opts.rejectLog.allow(`connect ${this.address}`);
      if (suppressed !== false) {
        this.#opts.logger.warn(
          { address: this.address, err: err?.message, suppressed },
          'cannot connect to a peer: unreachable, or it refused our handshake (another secret, encrypt setting or cluster name?)',
        );
      }
    }
    const delay = wasReady ? 0 : Math.round(base * (0.8 + Math.random() * 0.4));
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#state === 'idle') this.#connect();
    }, delay);
  }

  #write(id: number, p: Pending, payload: QueuedEnvelope): void {
    try {
      this.#socket!.send(payload.envelope);
      p.queued = undefined;
      if (p.kind === 'request') this.#opts.metrics.messagesSent += 1;
    } catch (err) {
      this.#settle(id, p, err instanceof Error ? err : new Error(String(err)));
    }
  }

  #flush(): void {
    const take = (ids: number[], counted: boolean): number[] => {
      let i = 0;
      for (; i < ids.length; i++) {
        if (this.#state !== 'ready') break;
        if (counted && this.#socket!.congested) break;
        const id = ids[i];
        const p = this.#pending.get(id);
        if (p?.queued === undefined) continue; // settled while queued
        const payload = p.queued;
        if (counted) {
          this.#queueBytes -= payload.length;
          this.#queueFrames -= 1;
        }
        this.#write(id, p, payload);
      }
      return ids.slice(i);
    };
    this.#control = take(this.#control, false);
    this.#queue = take(this.#queue, true);
  }

  #queueHasRoom(bytes: number): boolean {
    const q = this.#opts.queue;
    return this.#queueFrames < q.maxFrames && this.#queueBytes + bytes <= q.maxBytes;
  }

  #timeout(id: number, timeoutMs: number): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    if (p.kind === 'request') this.#opts.metrics.requestsTimedOut += 1;
    this.#settle(id, p, new ClusterRequestError('ERR_REQUEST_TIMEOUT', `no answer from ${this.#describe()} within ${timeoutMs} ms`));
  }

  #settle(id: number, p: Pending, err: Error | undefined, body?: Buffer): void {
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (p.queued !== undefined && p.kind === 'request') {
      // Keep the queue's byte count honest; the id stays in #queue and is skipped by #flush.
      this.#queueBytes -= p.queued.length;
      this.#queueFrames -= 1;
    }
    p.queued = undefined;
    if (err !== undefined) p.reject(err);
    else p.resolve(body ?? EMPTY);
  }

  /** Resolves with who answered the next handshake, or undefined when that attempt fails, the wait times out, or we close. */
  #nextAttempt(timeoutMs: number): Promise<MemberInfo | undefined> {
    return new Promise((resolve) => {
      const done = (remote: MemberInfo | undefined) => {
        clearTimeout(timer);
        this.#attemptWaiters.delete(done);
        resolve(remote);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.#attemptWaiters.add(done);
    });
  }

  #attemptOutcome(remote: MemberInfo | undefined): void {
    for (const w of [...this.#attemptWaiters]) w(remote);
  }

  #logBackpressure(): void {
    const now = performance.now();
    if (now - this.#lastBackpressureLog < 10_000) return;
    this.#lastBackpressureLog = now;
    this.#opts.logger.warn(
      { peer: this.address, route: this.remote?.route, queuedFrames: this.#queueFrames, queuedBytes: this.#queueBytes },
      'peer cannot keep up: send queue full, rejecting requests to it',
    );
  }

  #describe(): string {
    return this.remote !== undefined ? `member ${this.remote.route} (${shortId(this.remote.id)}) at ${this.address}` : this.address;
  }
}

function stopped(): ClusterRequestError {
  return new ClusterRequestError('ERR_STOPPED', 'the cluster channel is stopped');
}

function gone(memberId: string): ClusterRequestError {
  return new ClusterRequestError('ERR_MEMBER_GONE', `member ${shortId(memberId)} is gone`);
}
