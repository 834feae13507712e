/**
 * A TCP socket speaking cluster frames, used by both ends (receiver and peer connection): it
 * feeds bytes to a `FrameSession`, decodes envelopes, and turns every failure into "count, log,
 * close this connection", so nothing a peer sends can throw out of a socket event handler.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { FrameError } from '../errors.js';
import { FrameSession, frameRejectReason } from './frame-codec.js';
import type { ClusterKeys } from './keys.js';
import type { LogLimiter } from './log-limiter.js';
import { decodeEnvelope, encodeEnvelope } from './messages.js';
import type { Envelope } from './messages.js';
import { countReason } from './metrics.js';
import type { ClusterMetrics } from './types.js';

/** What a framed socket needs. */
export interface FramedSocketOptions {
  socket: Socket;
  role: 'client' | 'server';
  keys: ClusterKeys;
  encrypt: boolean;
  maxFrameBytes: number;
  /** Largest frame accepted before the peer's first frame verified (see `FrameSession`). */
  maxPreauthFrameBytes?: number;
  metrics: ClusterMetrics;
  logger: Logger;
  /** Limits the rejection warnings, per remote address and reason. */
  rejectLog: LogLimiter;
  /** The peer's preamble arrived: frames may be sent. */
  onReady(): void;
  /** One authenticated envelope. Throwing a `FrameError` rejects the frame like a bad MAC. */
  onEnvelope(envelope: Envelope): void;
  /** Called once, when the socket is closed for any reason. */
  onClose(error: Error | undefined): void;
}

/** Cluster frames over one socket. */
export class FramedSocket {
  readonly socket: Socket;
  /** `host:port` of the other end, for logs. */
  readonly remote: string;
  /** `performance.now()` of the last authenticated frame received. */
  lastReceivedAt = 0;
  readonly #opts: FramedSocketOptions;
  readonly #session: FrameSession;
  #closed = false;
  #corked = false;
  #error: Error | undefined;

  constructor(opts: FramedSocketOptions) {
    this.#opts = opts;
    this.socket = opts.socket;
    this.remote = `${opts.socket.remoteAddress ?? '?'}:${opts.socket.remotePort ?? '?'}`;
    this.#session = new FrameSession({
      keys: opts.keys,
      encrypt: opts.encrypt,
      role: opts.role,
      maxFrameBytes: opts.maxFrameBytes,
      maxPreauthFrameBytes: opts.maxPreauthFrameBytes,
    });
    const s = opts.socket;
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => this.#onData(chunk));
    s.on('end', () => {
      if (this.#session.pendingBytes > 0) {
        this.#reject(new FrameError('ERR_FRAME_MALFORMED', `connection ended inside a frame (${this.#session.pendingBytes} bytes pending): truncated`));
      } else {
        s.end();
      }
    });
    // Every socket gets an 'error' listener: an unhandled one would crash the member.
    s.on('error', (err) => {
      this.#error ??= err;
      opts.logger.debug({ remote: this.remote, err: err.message }, 'cluster connection error');
    });
    s.on('close', () => {
      this.#closed = true;
      opts.onClose(this.#error);
    });
    if (s.readyState === 'open') this.#writeRaw(this.#session.preamble);
    else s.once('connect', () => this.#writeRaw(this.#session.preamble));
  }

  /** False once closed or closing. */
  get open(): boolean {
    return !this.#closed && !this.socket.destroyed;
  }

  /** True once a frame from the peer verified (it holds the secret). */
  get authenticated(): boolean {
    return this.#session.authenticated;
  }

  /** True when the socket's buffer is over its high-water mark: queue instead of writing. */
  get congested(): boolean {
    return this.socket.writableNeedDrain;
  }

  /**
   * Seals and writes one envelope (or its encoded bytes). Returns false when the socket is now
   * congested; the frame was still accepted.
   * @throws FrameError `ERR_FRAME_TOO_LARGE` when over `maxFrameBytes` (the socket stays open).
   */
  send(envelope: Envelope | Buffer): boolean {
    if (!this.open) return false;
    const payload = Buffer.isBuffer(envelope) ? envelope : encodeEnvelope(envelope);
    return this.#writeRaw(this.#session.seal(payload));
  }

  /** Closes at once, with `error` as the reason reported to `onClose`. */
  destroy(error?: Error): void {
    if (error !== undefined) this.#error ??= error;
    this.socket.destroy();
  }

  #writeRaw(bytes: Buffer): boolean {
    this.#opts.metrics.bytesSent += bytes.length;
    // Frames written in one turn of the event loop (many requests' writes, a backup's acks) leave
    // in one system call: socket writes were the largest CPU cost per replicated write.
    if (!this.#corked) {
      this.#corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.#corked = false;
        this.socket.uncork();
      });
    }
    return this.socket.write(bytes);
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    this.#opts.metrics.bytesReceived += chunk.length;
    const wasReady = this.#session.ready;
    let payloads: Buffer[];
    try {
      payloads = this.#session.receive(chunk);
    } catch (err) {
      this.#fail(err);
      return;
    }
    if (!wasReady && this.#session.ready) this.#guard(() => this.#opts.onReady());
    for (const p of payloads) {
      if (this.socket.destroyed) return;
      this.lastReceivedAt = performance.now();
      this.#guard(() => this.#opts.onEnvelope(decodeEnvelope(p)));
    }
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#fail(err);
    }
  }

  #fail(err: unknown): void {
    if (err instanceof FrameError) {
      this.#reject(err);
    } else {
      // A bug of ours, not the peer's: close this connection, keep the member running.
      this.#opts.logger.error({ remote: this.remote, err }, 'cluster connection handler failed; closing the connection');
      this.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #reject(err: FrameError): void {
    const reason = frameRejectReason(err, this.#session.authenticated);
    countReason(this.#opts.metrics.framesRejected, reason);
    const suppressed = this.#opts.rejectLog.allow(`${this.socket.remoteAddress ?? '?'} ${reason}`);
    if (suppressed !== false) {
      this.#opts.logger.warn({ remote: this.remote, code: err.code, reason, message: err.message, suppressed }, 'rejected a cluster frame; closing the connection');
    }
    this.destroy(err);
  }
}
