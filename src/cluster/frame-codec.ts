/**
 * The byte level of a cluster TCP connection, pure (no sockets): both sides first send a preamble
 * `"KSC" | version | flags | nonce(16)`, then length-prefixed frames
 * `uint32be length | payload | tag(16)`, where the tag is HMAC-SHA256 (truncated) or, with
 * `encrypt`, the payload is AES-256-GCM ciphertext and the tag GCM's.
 *
 * Replay protection: keys are derived per connection from both nonces, and each direction counts
 * its frames; the count is authenticated (MAC input or GCM nonce) but never sent, so a replayed,
 * dropped or reordered frame fails authentication.
 *
 * Batches: when both preambles carry the batch flag, a frame's payload is a batch of messages, each
 * `varint length | message`, so the messages written in one turn of the event loop share one tag (one
 * HMAC or GCM pass, 20 bytes of framing). A peer without the flag (an older member) gets one message
 * per frame.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { FrameError } from '../errors.js';
import { deriveConnectionKeys } from './keys.js';
import type { ClusterKeys, ConnectionKeys, DirectionKeys } from './keys.js';

const MAGIC = Buffer.from('KSC');
const WIRE_VERSION = 1;
const FLAG_ENCRYPT = 1;
const FLAG_BATCH = 2;
const NONCE_BYTES = 16;
/** Bytes of the preamble each side sends first. */
export const PREAMBLE_BYTES = MAGIC.length + 2 + NONCE_BYTES;
/** Bytes of the authentication tag after each frame's payload. */
export const TAG_BYTES = 16;
const LENGTH_BYTES = 4;

/** Options of one side of one connection. */
export interface FrameSessionOptions {
  keys: ClusterKeys;
  encrypt: boolean;
  role: 'client' | 'server';
  /** Largest `payload + tag` accepted or sent; a longer length prefix is refused before buffering. */
  maxFrameBytes: number;
  /**
   * Largest `payload + tag` accepted until a received frame has authenticated (the peer's hello):
   * whoever has not proven the secret makes us buffer at most this. Default `maxFrameBytes`.
   */
  maxPreauthFrameBytes?: number;
  /** Our nonce; random unless a test fixes it. */
  nonce?: Buffer;
  /** Offer batched frames (default true); false speaks as a member without batches does. */
  batch?: boolean;
}

function seqBytes(seq: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 0);
  b.writeUInt32BE(seq >>> 0, 4);
  return b;
}

function gcmIv(seq: number): Buffer {
  return Buffer.concat([Buffer.alloc(4), seqBytes(seq)]);
}

function hmacTag(k: DirectionKeys, seq: number, payload: Buffer): Buffer {
  return createHmac('sha256', k.key).update(seqBytes(seq)).update(payload).digest().subarray(0, TAG_BYTES);
}

/**
 * One side of one connection: write `preamble` first, feed every received chunk to `receive`,
 * and send with `seal` once `ready` (the peer's preamble arrived).
 */
export class FrameSession {
  /** Bytes to write before anything else. */
  readonly preamble: Buffer;
  readonly #opts: FrameSessionOptions;
  readonly #nonce: Buffer;
  #keys: ConnectionKeys | undefined;
  /** Keys of every accepted secret until the first frame verified under one of them. */
  #candidates: ConnectionKeys[] = [];
  #chunks: Buffer[] = [];
  #buffered = 0;
  #sendSeq = 0;
  #receiveSeq = 0;
  #authenticated = false;
  #peerBatches = false;

  constructor(opts: FrameSessionOptions) {
    this.#opts = opts;
    this.#nonce = opts.nonce ?? randomBytes(NONCE_BYTES);
    const flags = (opts.encrypt ? FLAG_ENCRYPT : 0) | (opts.batch !== false ? FLAG_BATCH : 0);
    this.preamble = Buffer.concat([MAGIC, Buffer.from([WIRE_VERSION, flags]), this.#nonce]);
  }

  /** True once both preambles offered batches: every frame's payload is then a batch (`sealBatch`, `unbatch`). */
  get batched(): boolean {
    return this.#peerBatches && this.#opts.batch !== false;
  }

  /** True once the peer's preamble arrived and keys are derived. */
  get ready(): boolean {
    return this.#keys !== undefined;
  }

  /** True once a received frame has verified: the peer holds the secret. */
  get authenticated(): boolean {
    return this.#authenticated;
  }

  /** Bytes received but not yet part of a complete frame (non-zero at end of stream = truncated). */
  get pendingBytes(): number {
    return this.#buffered;
  }

  /**
   * Accepts a chunk from the socket; returns the authenticated payloads of every frame it completed.
   * @throws FrameError on the first bad byte; the connection must then be closed.
   */
  receive(chunk: Buffer): Buffer[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const out: Buffer[] = [];
    for (;;) {
      if (this.#keys === undefined) {
        if (!this.#readPreamble()) return out;
        continue;
      }
      if (this.#buffered < LENGTH_BYTES) return out;
      if (this.#chunks[0].length < LENGTH_BYTES) this.#chunks = [Buffer.concat(this.#chunks)];
      const length = this.#chunks[0].readUInt32BE(0);
      // Checked before waiting for (and buffering) the frame: a 4 GiB prefix costs us nothing.
      if (length > this.#opts.maxFrameBytes) {
        throw new FrameError('ERR_FRAME_TOO_LARGE', `frame of ${length} bytes over the limit of ${this.#opts.maxFrameBytes} (maxFrameBytes)`);
      }
      const preauthLimit = this.#opts.maxPreauthFrameBytes;
      if (!this.#authenticated && preauthLimit !== undefined && length > preauthLimit) {
        throw new FrameError(
          'ERR_FRAME_TOO_LARGE',
          `frame of ${length} bytes before authentication, over the limit of ${preauthLimit} for a peer that has not sent its hello (receiver.preauth.maxFrameBytes)`,
        );
      }
      if (length <= TAG_BYTES) throw new FrameError('ERR_FRAME_MALFORMED', `frame of ${length} bytes is shorter than its tag`);
      if (this.#buffered < LENGTH_BYTES + length) return out;
      const frame = this.#take(LENGTH_BYTES + length);
      out.push(this.#open(frame.subarray(LENGTH_BYTES)));
      this.#authenticated = true;
    }
  }

  /**
   * Frames and authenticates (or encrypts) one payload, ready to write.
   * @throws FrameError `ERR_FRAME_TOO_LARGE` when over `maxFrameBytes`.
   */
  seal(payload: Buffer): Buffer {
    const keys = this.#keys;
    if (keys === undefined) throw new Error('FrameSession.seal before the peer preamble arrived');
    const length = payload.length + TAG_BYTES;
    if (length > this.#opts.maxFrameBytes) {
      throw new FrameError('ERR_FRAME_TOO_LARGE', `message of ${length} bytes over the limit of ${this.#opts.maxFrameBytes} (maxFrameBytes)`);
    }
    const seq = this.#sendSeq++;
    const header = Buffer.allocUnsafe(LENGTH_BYTES);
    header.writeUInt32BE(length, 0);
    if (!keys.send.encrypt) return Buffer.concat([header, payload, hmacTag(keys.send, seq, payload)]);
    const cipher = createCipheriv('aes-256-gcm', keys.send.key, gcmIv(seq), { authTagLength: TAG_BYTES });
    const body = cipher.update(payload);
    cipher.final();
    return Buffer.concat([header, body, cipher.getAuthTag()]);
  }

  /**
   * Frames several messages as one batch (only once `batched`).
   * @throws FrameError `ERR_FRAME_TOO_LARGE` when the batch is over `maxFrameBytes` (see `batchItemBytes`).
   */
  sealBatch(messages: readonly Buffer[]): Buffer {
    const parts: Buffer[] = [];
    for (const m of messages) parts.push(lengthPrefix(m.length), m);
    return this.seal(Buffer.concat(parts));
  }

  #readPreamble(): boolean {
    // Check what has arrived of the magic at once, so garbage (an HTTP request...) is refused early.
    const head = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
    const n = Math.min(head.length, MAGIC.length);
    if (!head.subarray(0, n).equals(MAGIC.subarray(0, n))) {
      throw new FrameError('ERR_FRAME_MALFORMED', 'not a cluster connection: bad preamble');
    }
    if (this.#buffered < PREAMBLE_BYTES) return false;
    const preamble = this.#take(PREAMBLE_BYTES);
    const version = preamble[MAGIC.length];
    if (version !== WIRE_VERSION) throw new FrameError('ERR_FRAME_MALFORMED', `peer speaks wire version ${version}, we speak ${WIRE_VERSION}`);
    const peerEncrypts = (preamble[MAGIC.length + 1] & FLAG_ENCRYPT) !== 0;
    if (peerEncrypts !== this.#opts.encrypt) {
      throw new FrameError('ERR_FRAME_AUTH', `peer has encrypt: ${peerEncrypts}, this member encrypt: ${this.#opts.encrypt}; every member needs the same`);
    }
    this.#peerBatches = (preamble[MAGIC.length + 1] & FLAG_BATCH) !== 0;
    const peerNonce = preamble.subarray(MAGIC.length + 2);
    const [client, server] = this.#opts.role === 'client' ? [this.#nonce, peerNonce] : [peerNonce, this.#nonce];
    const accepted = this.#opts.keys.accepted.length > 0 ? this.#opts.keys.accepted : [this.#opts.keys];
    this.#candidates = accepted.map((k) => deriveConnectionKeys(k, this.#opts.encrypt, this.#opts.role, client, server));
    this.#keys = this.#candidates[0];
    return true;
  }

  #open(sealed: Buffer): Buffer {
    const seq = this.#receiveSeq++;
    const payload = sealed.subarray(0, sealed.length - TAG_BYTES);
    const tag = sealed.subarray(sealed.length - TAG_BYTES);
    if (this.#authenticated || this.#candidates.length <= 1) {
      const plain = openWith(this.#keys!.receive, seq, payload, tag);
      if (plain === undefined) throw authError(this.#keys!.receive.encrypt);
      return plain;
    }
    // The first frame: whichever accepted secret it verifies under is this connection's, both ways
    // (the peer sends with its first secret; answering with the same one lets it verify us).
    for (const candidate of this.#candidates) {
      const plain = openWith(candidate.receive, seq, payload, tag);
      if (plain === undefined) continue;
      this.#keys = candidate;
      this.#candidates = [];
      return plain;
    }
    throw authError(this.#opts.encrypt);
  }

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return all.subarray(0, n);
  }
}

/** The payload of a frame sealed under `k` at `seq`, or undefined when it does not verify. */
function openWith(k: DirectionKeys, seq: number, payload: Buffer, tag: Buffer): Buffer | undefined {
  if (!k.encrypt) return timingSafeEqual(hmacTag(k, seq, payload), tag) ? payload : undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', k.key, gcmIv(seq), { authTagLength: TAG_BYTES });
    decipher.setAuthTag(tag);
    const plain = decipher.update(payload);
    decipher.final();
    return plain;
  } catch {
    return undefined;
  }
}

function authError(encrypt: boolean): FrameError {
  return encrypt
    ? new FrameError('ERR_FRAME_AUTH', 'frame does not decrypt: another secret, tampered or replayed')
    : new FrameError('ERR_FRAME_AUTH', 'frame MAC does not match: another secret, tampered or replayed');
}

/** Bytes one message adds to a batch (its length prefix included). */
export function batchItemBytes(message: Buffer): number {
  let prefix = 1;
  for (let n = message.length; n >= 0x80; n = Math.floor(n / 0x80)) prefix++;
  return prefix + message.length;
}

/** Varint (7 bits a byte, low first) length prefix of a batched message. */
function lengthPrefix(n: number): Buffer {
  const bytes: number[] = [];
  do {
    bytes.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
    n = Math.floor(n / 0x80);
  } while (n > 0);
  return Buffer.from(bytes);
}

/**
 * The messages of a batch's payload (views into it).
 * @throws FrameError `ERR_FRAME_MALFORMED` on a bad or overlong length (only an authenticated peer gets here).
 */
export function unbatch(payload: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < payload.length) {
    let n = 0;
    let scale = 1;
    for (let b = 0x80; b >= 0x80; scale *= 0x80) {
      if (pos >= payload.length || scale > 2 ** 28) throw new FrameError('ERR_FRAME_MALFORMED', 'malformed batch: a message length runs past the frame');
      b = payload[pos++];
      n += (b & 0x7f) * scale;
    }
    if (pos + n > payload.length) throw new FrameError('ERR_FRAME_MALFORMED', `malformed batch: a message of ${n} bytes runs past the frame`);
    out.push(payload.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

/**
 * Metrics key of a frame rejection; an oversize frame from a peer that has not authenticated is
 * `preauth_too_large`, so an outsider's attempts stand apart from a member's oversize message.
 */
export function frameRejectReason(err: FrameError, authenticated = true): 'auth' | 'too_large' | 'preauth_too_large' | 'malformed' {
  if (err.code === 'ERR_FRAME_AUTH') return 'auth';
  if (err.code === 'ERR_FRAME_TOO_LARGE') return authenticated ? 'too_large' : 'preauth_too_large';
  return 'malformed';
}
