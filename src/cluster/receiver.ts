/**
 * This member's TCP receiver (Tomcat's NioReceiver): accepts peers' connections, answers their
 * handshake, runs request handlers concurrently and writes each reply when ready. A peer that
 * sends faster than handlers finish is slowed by TCP itself: reading pauses at `maxInFlight`
 * unanswered requests, or while replies wait for the socket to drain.
 *
 * Until its hello verifies, a connection is a stranger's: it gets a slot only within the
 * pre-authentication budgets (`admission.ts`), may send one small frame, and has `preauth.timeout`
 * to do so. Each refusal is counted in `framesRejected` and logged, rate-limited.
 */
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { ClusterOptionsError, FrameError, HandlerError } from '../errors.js';
import { Admission, DEFAULT_PREAUTH_LIMITS } from './admission.js';
import type { PreauthLimits } from './admission.js';
import { FramedSocket } from './framed-socket.js';
import type { ClusterKeys } from './keys.js';
import type { LogLimiter } from './log-limiter.js';
import { SenderClock, lateRequestMessage } from './late-requests.js';
import { PROTOCOL_RANGE, decodeHello, encodeHello, encodeRemoteError, formatRange, highestCommon, parseRange, rangeType, shortId, withZoneOf } from './messages.js';
import type { VersionRange } from './messages.js';
import type { BodyPackers } from './envelope-codec.js';
import type { Envelope } from './messages.js';
import { countReason } from './metrics.js';
import type { ClusterMetrics, MemberInfo } from './types.js';

const EMPTY = Buffer.alloc(0);

/** Options of the receiver. */
export interface ReceiverOptions {
  host: string;
  port: number;
  keys: ClusterKeys;
  encrypt: boolean;
  maxFrameBytes: number;
  clusterName: string;
  /** This member, as the handshake answers it. */
  self(): MemberInfo;
  /** Limits on connections that have not authenticated yet; `DEFAULT_PREAUTH_LIMITS` for those not given. */
  preauth?: Partial<PreauthLimits>;
  /** Unanswered requests per connection before reading from it pauses. */
  maxInFlight: number;
  /** Runs the handler of `type`; its result is the reply, its exception the remote error. */
  dispatch(from: MemberInfo, type: string, body: Buffer): Promise<Buffer | void>;
  /** A peer handshook with us: authenticated news that it is alive; `remoteAddress` is its IP. */
  onHello(from: MemberInfo, remoteAddress: string): void;
  /** A peer announced a graceful leave. */
  onLeave(from: MemberInfo): void;
  metrics: ClusterMetrics;
  logger: Logger;
  /** Limits warnings peers can trigger. */
  rejectLog: LogLimiter;
  /** Protocol versions this member speaks; `PROTOCOL_RANGE` unless given. */
  protocol?: VersionRange;
  /** Body packers of protocol version 2. */
  packers?: BodyPackers;
  /** A member (its hello verified) speaks none of our versions. */
  onIncompatible?(member: MemberInfo, range: VersionRange): void;
}

/** The TCP server peers send to. */
export class Receiver {
  readonly #opts: ReceiverOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #limits: PreauthLimits;
  readonly #admission: Admission;

  constructor(opts: ReceiverOptions) {
    this.#opts = opts;
    this.#limits = { ...DEFAULT_PREAUTH_LIMITS, ...definedOnly(opts.preauth ?? {}) };
    this.#admission = new Admission(this.#limits);
    // No server.maxConnections: a stranger could fill it and lock members out. The admission
    // budgets bound what strangers hold; authenticated connections need the secret.
    this.#server = createServer((socket) => this.#accept(socket));
    this.#server.on('error', (err) => opts.logger.error({ err }, 'cluster receiver error'));
  }

  /** Listens; resolves with the bound port (useful with port 0). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) =>
        reject(new ClusterOptionsError('receiver', `cannot listen on ${this.#opts.host}:${this.#opts.port}: ${err.message}`));
      this.#server.once('error', onError);
      this.#server.listen({ host: this.#opts.host, port: this.#opts.port }, () => {
        this.#server.off('error', onError);
        const addr = this.#server.address();
        resolve(typeof addr === 'object' && addr !== null ? addr.port : this.#opts.port);
      });
    });
  }

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      for (const s of this.#sockets) s.destroy();
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => resolve());
    });
  }

  /**
   * `address` is a member's (an authenticated heartbeat came from it): its connections get
   * members' slots from the first one on, never competing with strangers.
   */
  trustSource(address: string): void {
    this.#admission.trust(address);
  }

  /** Unauthenticated connections held now: all, and those of sources that are not known members. */
  get preauthCounts(): { preauth: number; strangers: number } {
    return this.#admission.counts;
  }

  /** Counts a refusal of `reason` and logs it, at most once per source and reason per interval. */
  #refuse(socket: Socket, reason: string, message: string, extra: Record<string, unknown> = {}): void {
    const o = this.#opts;
    countReason(o.metrics.framesRejected, reason);
    const suppressed = o.rejectLog.allow(`${socket.remoteAddress ?? '?'} ${reason}`);
    if (suppressed !== false) {
      o.logger.warn({ remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, reason, ...extra, suppressed }, message);
    }
  }

  /** Counts a request refused for arriving after its sender's deadline, and logs it at most every interval per peer. */
  #refuseLate(sender: MemberInfo, type: string, lateMs: number): void {
    const o = this.#opts;
    o.metrics.requestsRefusedLate += 1;
    const suppressed = o.rejectLog.allow(`${sender.id} late`);
    if (suppressed !== false) {
      o.logger.info(
        { peer: sender.route, type, lateMs: Math.round(lateMs), suppressed },
        'refused a request that arrived after its sender stopped waiting for it (a partition held it, or this process stalled): its sender counts it as failed, so it is not run',
      );
    }
  }

  #accept(socket: Socket): void {
    const o = this.#opts;
    const ticket = this.#admission.admit(socket.remoteAddress);
    if (typeof ticket === 'string') {
      socket.on('error', () => {}); // a reset racing the destroy must not crash the member
      socket.destroy();
      this.#refuse(
        socket,
        ticket,
        ticket === 'per_source_limit'
          ? `refused a cluster connection: ${this.#limits.maxPerSource} unauthenticated connections from this address already (receiver.preauth.maxPerSource)`
          : `refused a cluster connection: ${this.#limits.maxUnauthenticated} unauthenticated connections from non-members already (receiver.preauth.maxUnauthenticated)`,
      );
      return;
    }
    this.#sockets.add(socket);
    let from: MemberInfo | undefined;
    let inFlight = 0;
    const updateFlow = () => {
      if (inFlight >= o.maxInFlight || framed.congested) socket.pause();
      else socket.resume();
    };
    const handshakeTimer = setTimeout(() => {
      // Timers run before the loop polls sockets: after a stall (a long GC, SIGSTOP) a hello that
      // arrived in time may still be unread. Decide after this turn's reads (check phase).
      setImmediate(() => {
        if (from !== undefined || !framed.open) return;
        this.#refuse(
          socket,
          'preauth_timeout',
          `closed a cluster connection that sent no valid hello within ${this.#limits.timeout} ms (receiver.preauth.timeout)`,
          { bytesReceived: socket.bytesRead },
        );
        framed.destroy(new Error('no handshake in time'));
      });
    }, this.#limits.timeout);
    // The requester's clock as this connection shows it: requests it gave up on are refused unrun.
    const senderClock = new SenderClock();
    const reply = (e: Envelope) => {
      if (!framed.open) return;
      if (e.kind === 'reply' || e.kind === 'error') o.metrics.messagesSent += 1;
      try {
        framed.send(e);
      } catch (err) {
        // Only a reply over maxFrameBytes gets here: tell the requester instead of going silent.
        const message = err instanceof Error ? err.message : String(err);
        framed.send({ kind: 'error', id: e.id, type: '', body: encodeRemoteError(describeError(new HandlerError('ERR_REPLY_TOO_LARGE', message))) });
      }
      updateFlow();
    };

    const framed = new FramedSocket({
      socket,
      role: 'server',
      keys: o.keys,
      encrypt: o.encrypt,
      maxFrameBytes: o.maxFrameBytes,
      maxPreauthFrameBytes: this.#limits.maxFrameBytes,
      metrics: o.metrics,
      logger: o.logger,
      rejectLog: o.rejectLog,
      packers: o.packers,
      route: o.self().route,
      onReady: () => {},
      onEnvelope: (e) => {
        if (from === undefined) {
          if (e.kind !== 'hello') throw new FrameError('ERR_FRAME_MALFORMED', `expected hello, got ${e.kind}`);
          const hello = decodeHello(e.body);
          const ours = o.protocol ?? PROTOCOL_RANGE;
          const theirs = parseRange(e.type, hello.protocolVersion);
          const version = highestCommon(ours, theirs);
          if (hello.clusterName !== o.clusterName || version === undefined) {
            // Same secret, other cluster or no common version: authenticated, but not one of us.
            const reason = hello.clusterName !== o.clusterName ? 'foreign' : 'version';
            countReason(o.metrics.framesRejected, reason);
            const suppressed = o.rejectLog.allow(`${socket.remoteAddress ?? '?'} ${reason}`);
            if (suppressed !== false) {
              o.logger.warn(
                { remote: framed.remote, peer: hello.member.route, clusterName: hello.clusterName, versions: formatRange(theirs), ours: formatRange(ours), suppressed },
                reason === 'foreign'
                  ? 'refused a member of another cluster name'
                  : 'refused a member that speaks no protocol version this member speaks; upgrade through a release that speaks both',
              );
            }
            if (reason === 'version') o.onIncompatible?.(hello.member, theirs);
            framed.destroy();
            return;
          }
          clearTimeout(handshakeTimer);
          this.#admission.authenticated(ticket);
          from = withZoneOf(hello.member, e.type);
          // The welcome is version 1 (release 0.1.0 requires its protocolVersion to be 1, what it
          // asked for); its protocolVersion is the version chosen, every envelope after it is in it.
          framed.send({ kind: 'welcome', id: e.id, type: rangeType(ours, o.self().zone), body: encodeHello({ member: o.self(), clusterName: o.clusterName, protocolVersion: version }) });
          framed.setVersion(version, from.route);
          o.logger.debug({ remote: framed.remote, route: from.route, id: shortId(from.id) }, 'peer connected');
          o.onHello(from, socket.remoteAddress ?? '');
          return;
        }
        const sender = from;
        switch (e.kind) {
          case 'request': {
            o.metrics.messagesReceived += 1;
            if (e.sent !== undefined) {
              const late = senderClock.arrive(e.sent.at, e.sent.leftMs, performance.now());
              if (late > 0) {
                this.#refuseLate(sender, e.type, late);
                reply({ kind: 'error', id: e.id, type: '', body: encodeRemoteError(describeError(new HandlerError('ERR_REQUEST_LATE', lateRequestMessage(e.type, sender.route, late)))) });
                return;
              }
            }
            inFlight += 1;
            updateFlow();
            void o.dispatch(sender, e.type, e.body).then(
              (body) => reply({ kind: 'reply', id: e.id, type: '', body: Buffer.isBuffer(body) ? body : EMPTY }),
              (err: unknown) => reply({ kind: 'error', id: e.id, type: '', body: encodeRemoteError(describeError(err)) }),
            ).finally(() => {
              inFlight -= 1;
              updateFlow();
            });
            return;
          }
          case 'ping':
            framed.send({ kind: 'pong', id: e.id, type: '', body: EMPTY });
            return;
          case 'leave':
            o.onLeave(sender);
            framed.send({ kind: 'reply', id: e.id, type: '', body: EMPTY });
            return;
          default:
            throw new FrameError('ERR_FRAME_MALFORMED', `unexpected ${e.kind} frame on a receiver connection`);
        }
      },
      onClose: () => {
        clearTimeout(handshakeTimer);
        this.#admission.closed(ticket);
        this.#sockets.delete(socket);
      },
    });
    socket.on('drain', updateFlow);
  }
}

/** `partial` without its undefined entries, so they do not override defaults. */
function definedOnly<T extends object>(partial: Partial<T>): Partial<T> {
  return Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') return { code, message: err.message };
  }
  // A handler's error without a code still travels under a catalogued one.
  const e = new HandlerError('ERR_HANDLER', err instanceof Error ? err.message : String(err));
  return { code: e.code, message: e.message };
}
