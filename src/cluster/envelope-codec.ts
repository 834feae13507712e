/**
 * Envelopes as one connection's negotiated protocol version writes them, one direction each.
 *
 * Version 1 is the Avro record of `messages.ts` (release 0.1.0's wire; the hello and welcome are
 * always version 1, since the version is chosen by them). Version 2 is compact:
 *
 *     head (1 byte): kind index (bits 0-2) | TYPE_CODE (0x08) | SAME_BODY (0x10) | PACKED (0x20)
 *     id:   zigzag varint of (id - the id of the previous envelope in this direction)
 *     type: requests only; with TYPE_CODE its code in `MESSAGE_TYPE_CODES` (varint), else varint
 *           length + UTF-8 name
 *     sent: version 3, requests with SENT (0x40) only: zigzag varint of (send time - the previous
 *           request's send time in this direction), varint of the ms the sender still waits
 *           (monotonic ms, integers; `late-requests.ts` says why)
 *     body: the rest of the message (its length is the batch item's); absent with SAME_BODY, which
 *           says "the body of the previous reply in this direction" (a run of acknowledgements is
 *           the same few bytes); with PACKED, the bytes of the type's `BodyPacker`
 *
 * The id delta and SAME_BODY make each direction stateful: the writer's and the reader's state stay
 * equal because they see the same envelopes in the same order (one TCP connection, each frame
 * authenticated and counted, so nothing is lost, replayed or reordered without closing it).
 */
import { FrameError } from '../errors.js';
import { FRAME_KINDS, decodeEnvelope, encodeEnvelope } from './messages.js';
import type { Envelope, FrameKind } from './messages.js';

/**
 * Codes of message types in version 2, by index. Part of the protocol: append, never reorder or
 * remove (a type not listed travels by name).
 */
export const MESSAGE_TYPE_CODES: readonly string[] = Object.freeze([
  'session.delta',
  'session.copy',
  'session.remove',
  'session.locate',
  'session.take',
  'session.fetch',
  'session.schema',
  'session.leaving',
  'session.handoff',
  'session.state-page',
  'session.state-pack',
  'session.audit',
  'session.survey',
  'session.forget',
  'member.lease',
  'principal.announce',
  'principal.lookup',
  'cluster.probe',
  'status.counts',
]);

const CODE_OF = new Map(MESSAGE_TYPE_CODES.map((t, i) => [t, i]));
const KIND_INDEX = new Map(FRAME_KINDS.map((k, i) => [k, i]));
const TYPE_CODE = 0x08;
const SAME_BODY = 0x10;
const PACKED = 0x20;
const SENT = 0x40;
/** Reply bodies up to this size are remembered for SAME_BODY. */
const SAME_BODY_MAX = 64;

/**
 * A version-2 rewrite of one message type's body, both ways, with state of its own per connection
 * direction (created by `state()`). `pack` may decline (undefined): the body then travels as is.
 */
export interface BodyPacker<S = unknown> {
  /** Packers with the same key share one state per direction (else each type has its own). */
  stateKey?: string;
  state(): S;
  /**
   * `route` is the sender's (this member's) route. Returns a body no longer than `body`, or undefined
   * with `state` unchanged (the other end changes its state only for what it unpacks).
   */
  pack(body: Buffer, state: S, route: string): Buffer | undefined;
  /** `route` is the sender's (the peer's) route. The original body, byte for byte. */
  unpack(bytes: Buffer, state: S, route: string): Buffer;
}

/** Body packers by message type. */
export type BodyPackers = ReadonlyMap<string, BodyPacker>;

const NO_PACKERS: BodyPackers = new Map();

function writeVarint(out: number[], n: number): void {
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

function unzigzag(n: number): number {
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

function malformed(what: string): FrameError {
  return new FrameError('ERR_FRAME_MALFORMED', `malformed compact envelope: ${what}`);
}

/**
 * Bytes an envelope takes at most, without encoding it: its version-1 size (Avro: enum, zigzag long,
 * string, bytes), plus what a version-2 id delta may take beyond (a reply far behind the previous id)
 * and version 3's send time (two varints of at most 8 and 4 bytes).
 */
export function envelopeBound(e: Envelope): number {
  const typeBytes = Buffer.byteLength(e.type);
  return 1 + varintLength(e.id * 2) + varintLength(typeBytes) + typeBytes + varintLength(e.body.length) + e.body.length + 8 + (e.deadline === undefined ? 0 : 12);
}

function varintLength(n: number): number {
  let bytes = 1;
  for (; n >= 0x80; n = Math.floor(n / 0x80)) bytes++;
  return bytes;
}

/** What both directions of a connection share: its version, the packers, and who sits at each end. */
export interface EnvelopeContext {
  packers?: BodyPackers;
  /** Route of the member writing this direction. */
  route(): string;
  /** The writer's monotonic clock for version 3's send times; `performance.now` unless given. */
  monotonic?(): number;
}

/** The state of one direction, the same at both ends: version, previous id and reply body, packer states. */
class Direction {
  version = 1;
  protected lastId = 0;
  /** Send time of the previous request with SENT (version 3). */
  protected lastSent = 0;
  protected lastReply: Buffer | undefined;
  protected readonly ctx: EnvelopeContext;
  readonly #states = new Map<string, unknown>();

  constructor(ctx: EnvelopeContext) {
    this.ctx = ctx;
  }

  protected packer(type: string): { packer: BodyPacker; state: unknown } | undefined {
    const packer = (this.ctx.packers ?? NO_PACKERS).get(type);
    if (packer === undefined) return undefined;
    const key = packer.stateKey ?? type;
    let state = this.#states.get(key);
    if (state === undefined) {
      state = packer.state();
      this.#states.set(key, state);
    }
    return { packer, state };
  }

  /** Remembers a reply body for SAME_BODY. */
  protected rememberReply(body: Buffer): void {
    this.lastReply = body.length <= SAME_BODY_MAX ? Buffer.from(body) : undefined;
  }
}

/** Encodes the envelopes of one direction of one connection. */
export class EnvelopeWriter extends Direction {
  encode(e: Envelope): Buffer {
    if (this.version < 2) return encodeEnvelope(e);
    const head: number[] = [KIND_INDEX.get(e.kind)!];
    writeVarint(head, zigzag(e.id - this.lastId));
    this.lastId = e.id;
    let body = e.body;
    if (e.kind === 'request') {
      const code = CODE_OF.get(e.type);
      if (code !== undefined) {
        head[0] |= TYPE_CODE;
        writeVarint(head, code);
      } else {
        const name = Buffer.from(e.type, 'utf8');
        writeVarint(head, name.length);
        head.push(...name);
      }
      if (this.version >= 3 && e.deadline !== undefined) {
        const at = Math.round(this.ctx.monotonic?.() ?? performance.now());
        head[0] |= SENT;
        writeVarint(head, zigzag(at - this.lastSent));
        writeVarint(head, Math.max(0, Math.round(e.deadline - at)));
        this.lastSent = at;
      }
      const p = this.packer(e.type);
      if (p !== undefined) {
        const packed = p.packer.pack(body, p.state, this.ctx.route());
        if (packed !== undefined) {
          // A packer's state has moved with what it packed: dropping it now would part the two ends.
          // Longer than the body would break `envelopeBound` (the frame limit is checked before encoding).
          if (packed.length > body.length) throw new Error(`the packer of "${e.type}" made ${packed.length} bytes of ${body.length}`);
          head[0] |= PACKED;
          body = packed;
        }
      }
    } else if (e.kind === 'reply') {
      if (this.lastReply !== undefined && body.equals(this.lastReply)) {
        head[0] |= SAME_BODY;
        body = Buffer.alloc(0);
      } else {
        this.rememberReply(body);
      }
    }
    return Buffer.concat([Buffer.from(head), body]);
  }
}

/** Decodes the envelopes of one direction of one connection. */
export class EnvelopeReader extends Direction {
  /** @throws FrameError `ERR_FRAME_MALFORMED` on bad bytes (only an authenticated peer gets here). */
  decode(bytes: Buffer): Envelope {
    if (this.version < 2) return decodeEnvelope(bytes);
    if (bytes.length === 0) throw malformed('empty');
    const head = bytes[0];
    const kind: FrameKind | undefined = FRAME_KINDS[head & 0x07];
    if (kind === undefined || (head & ~(this.version >= 3 ? 0x7f : 0x3f)) !== 0) throw malformed(`bad head byte ${head}`);
    let pos = 1;
    const varint = (): number => {
      let n = 0;
      for (let scale = 1; ; scale *= 0x80) {
        if (pos >= bytes.length || scale > 2 ** 49) throw malformed('a number runs past the message');
        const b = bytes[pos++];
        n += (b & 0x7f) * scale;
        if (b < 0x80) return n;
      }
    };
    const id = this.lastId + unzigzag(varint());
    if (!Number.isSafeInteger(id) || id < 0) throw malformed('bad message id');
    this.lastId = id;
    let type = '';
    if (kind === 'request') {
      if ((head & TYPE_CODE) !== 0) {
        const code = varint();
        type = MESSAGE_TYPE_CODES[code] ?? '';
        if (type === '') throw malformed(`unknown message type code ${code}`);
      } else {
        const n = varint();
        if (pos + n > bytes.length) throw malformed('a type name runs past the message');
        type = bytes.toString('utf8', pos, pos + n);
        pos += n;
      }
    }
    let sent: Envelope['sent'];
    if ((head & SENT) !== 0) {
      if (kind !== 'request') throw malformed(`a send time on a ${kind}`);
      const at = this.lastSent + unzigzag(varint());
      if (!Number.isSafeInteger(at)) throw malformed('bad send time');
      this.lastSent = at;
      sent = { at, leftMs: varint() };
    }
    let body = bytes.subarray(pos);
    if ((head & PACKED) !== 0) {
      const p = this.packer(type);
      if (p === undefined) throw malformed(`packed body of "${type}", which has no packer here`);
      try {
        body = p.packer.unpack(body, p.state, this.ctx.route());
      } catch (err) {
        throw malformed(`packed body of "${type}": ${(err as Error).message}`);
      }
    }
    if (kind === 'reply') {
      if ((head & SAME_BODY) !== 0) {
        if (this.lastReply === undefined || body.length > 0) throw malformed('a repeated reply body with nothing to repeat');
        body = this.lastReply;
      } else {
        this.rememberReply(body);
      }
    }
    return sent === undefined ? { kind, id, type, body } : { kind, id, type, body, sent };
  }
}
