/**
 * A TCP socket speaking cluster frames, used by both ends (receiver and peer connection): it
 * feeds bytes to a `FrameSession`, decodes envelopes, and turns every failure into "count, log,
 * close this connection", so nothing a peer sends can throw out of a socket event handler.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { FrameError } from '../errors.js';
import { FrameSession, TAG_BYTES, batchItemBytes, frameRejectReason, unbatch } from './frame-codec.js';
import type { ClusterKeys } from './keys.js';
import type { LogLimiter } from './log-limiter.js';
import { EnvelopeReader, EnvelopeWriter, envelopeBound } from './envelope-codec.js';
import type { BodyPackers } from './envelope-codec.js';
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
  /** Offer batched frames (default true; false speaks as an older member, for tests). */
  batch?: boolean;
  /** Body packers of protocol version 2, by message type. */
  packers?: BodyPackers;
  /** This member's route (the writer's, for body packers). */
  route?: string;
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
  /** Messages waiting for the end of this turn, to leave as one batched frame. */
  #batch: Buffer[] = [];
  #batchBytes = 0;
  readonly #writer: EnvelopeWriter;
  readonly #reader: EnvelopeReader;
  #remoteRoute = '';

  constructor(opts: FramedSocketOptions) {
    this.#opts = opts;
    this.socket = opts.socket;
    this.remote = `${opts.socket.remoteAddress ?? '?'}:${opts.socket.remotePort ?? '?'}`;
    this.#writer = new EnvelopeWriter({ packers: opts.packers, route: () => opts.route ?? '' });
    this.#reader = new EnvelopeReader({ packers: opts.packers, route: () => this.#remoteRoute });
    this.#session = new FrameSession({
      keys: opts.keys,
      encrypt: opts.encrypt,
      role: opts.role,
      maxFrameBytes: opts.maxFrameBytes,
      maxPreauthFrameBytes: opts.maxPreauthFrameBytes,
      batch: opts.batch,
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

  /** The protocol version envelopes are written and read in (1 until the handshake chose another). */
  get version(): number {
    return this.#writer.version;
  }

  /**
   * The handshake chose `version` with the member of route `remoteRoute`: envelopes after the
   * hello and welcome (which are always version 1) are written and read in it.
   */
  setVersion(version: number, remoteRoute: string): void {
    this.#writer.version = version;
    this.#reader.version = version;
    this.#remoteRoute = remoteRoute;
  }

  /** True when the socket's buffer is over its high-water mark: queue instead of writing. */
  get congested(): boolean {
    return this.socket.writableNeedDrain;
  }

  /**
   * Seals and writes one envelope (or its encoded bytes); with a peer that takes batches, the
   * messages of one turn of the event loop leave together at its end, in order, in one frame (or a
   * few, under `maxFrameBytes`). Returns false when the socket is now congested; the message was
   * still accepted.
   * @throws FrameError `ERR_FRAME_TOO_LARGE` when over `maxFrameBytes` (the socket stays open).
   */
  send(envelope: Envelope | Buffer): boolean {
    if (!this.open) return false;
    const room = this.#opts.maxFrameBytes - TAG_BYTES;
    // Checked before encoding: a version-2 writer's state moves with each envelope it encodes, so
    // one refused after encoding would leave the reader a step behind.
    if (!Buffer.isBuffer(envelope) && envelopeBound(envelope) + 5 > room) {
      throw new FrameError('ERR_FRAME_TOO_LARGE', `message of about ${envelopeBound(envelope) + TAG_BYTES} bytes over the limit of ${this.#opts.maxFrameBytes} (maxFrameBytes)`);
    }
    const payload = Buffer.isBuffer(envelope) ? envelope : this.#writer.encode(envelope);
    if (!this.#session.batched) return this.#writeRaw(this.#session.seal(payload));
    const bytes = batchItemBytes(payload);
    if (bytes > room) {
      throw new FrameError('ERR_FRAME_TOO_LARGE', `message of ${bytes + TAG_BYTES} bytes over the limit of ${this.#opts.maxFrameBytes} (maxFrameBytes)`);
    }
    if (this.#batchBytes + bytes > room) this.#flushBatch();
    this.#batch.push(payload);
    this.#batchBytes += bytes;
    this.#cork();
    return !this.socket.writableNeedDrain;
  }

  #flushBatch(): void {
    if (this.#batch.length === 0) return;
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    if (this.open) this.#writeRaw(this.#session.sealBatch(batch));
  }

  /** Closes at once, with `error` as the reason reported to `onClose`. */
  destroy(error?: Error): void {
    if (error !== undefined) this.#error ??= error;
    this.socket.destroy();
  }

  #writeRaw(bytes: Buffer): boolean {
    this.#opts.metrics.bytesSent += bytes.length;
    this.#cork();
    return this.socket.write(bytes);
  }

  /**
   * Frames written in one turn of the event loop (many requests' writes, a backup's acks) leave in one
   * system call, and batched messages in one frame: socket writes and MACs were the largest CPU cost
   * per replicated write.
   */
  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.socket.cork();
    setImmediate(() => {
      // The batch first, while still corked: `#writeRaw` corking again would hold it one more turn.
      this.#flushBatch();
      this.#corked = false;
      this.socket.uncork();
    });
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
      if (!this.#session.batched) {
        this.#guard(() => this.#opts.onEnvelope(this.#reader.decode(p)));
        continue;
      }
      let messages: Buffer[];
      try {
        messages = unbatch(p);
      } catch (err) {
        this.#fail(err);
        return;
      }
      for (const m of messages) {
        if (this.socket.destroyed) return;
        this.#guard(() => this.#opts.onEnvelope(this.#reader.decode(m)));
      }
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
