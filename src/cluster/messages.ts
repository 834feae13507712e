/**
 * Avro schemas of the cluster layer's own messages: the frame envelope and the bodies of the
 * control messages (hello, remote error). One schema per message type; bodies of application
 * messages are opaque bytes that the layer above encodes with its own schemas.
 */
import avro from 'avsc';
import { FrameError } from '../errors.js';
import type { MemberInfo } from './types.js';

/**
 * Protocol version 1, as release 0.1.0 speaks it: the one value of the `protocolVersion` fields of the
 * v1 heartbeat and hello, which such a member requires to equal its own.
 */
export const PROTOCOL_VERSION = 1;

/** A range of protocol versions a member speaks (hashicorp/memberlist's ProtocolMin and ProtocolMax). */
export interface VersionRange {
  readonly min: number;
  readonly max: number;
}

/**
 * The versions this release speaks. 1: release 0.1.0's wire; 2: the compact envelope
 * (`envelope-codec.ts`); 3: version 2 with each request's send time and wait (`late-requests.ts`).
 * Per connection the highest version both ends speak is used.
 */
export const PROTOCOL_RANGE: VersionRange = Object.freeze({ min: 1, max: 3 });

/** The highest version both ranges hold, or undefined when they have none in common. */
export function highestCommon(a: VersionRange, b: VersionRange): number | undefined {
  const v = Math.min(a.max, b.max);
  return v >= Math.max(a.min, b.min) ? v : undefined;
}

/** `1-2`: a range as logs, the status page and the hello's envelope `type` carry it. */
export function formatRange(r: VersionRange): string {
  return `${r.min}-${r.max}`;
}

/** A zone as option `zone` allows it: printable ASCII without spaces. */
export const ZONE = /^[\x21-\x7e]{1,64}$/;

/**
 * The range a hello or welcome advertises in its envelope's `type` (a field release 0.1.0 ignores
 * there); a member that advertises none speaks just the body's `protocolVersion`.
 */
export function parseRange(type: string, protocolVersion: number): VersionRange {
  const m = /^v(\d{1,4})-(\d{1,4})(?: \S+)?$/.exec(type);
  if (m === null) return { min: protocolVersion, max: protocolVersion };
  const min = Number(m[1]);
  const max = Number(m[2]);
  return min <= max ? { min, max } : { min: protocolVersion, max: protocolVersion };
}

/**
 * The envelope `type` of a hello or welcome advertising `r`, and the sender's zone after a space (the
 * hello's body is what release 0.1.0 decodes, so nothing can be added there).
 */
export function rangeType(r: VersionRange, zone?: string): string {
  return zone === undefined ? `v${formatRange(r)}` : `v${formatRange(r)} ${zone}`;
}

/** `member` with the zone a hello's or welcome's `type` names, when it names a valid one. */
export function withZoneOf(member: MemberInfo, type: string): MemberInfo {
  const zone = /^v\d{1,4}-\d{1,4} (\S+)$/.exec(type)?.[1];
  return zone !== undefined && ZONE.test(zone) ? { ...member, zone } : member;
}

/** Kinds of frames. Changing this list changes the wire format: bump `PROTOCOL_VERSION`. */
export const FRAME_KINDS = ['hello', 'welcome', 'request', 'reply', 'error', 'ping', 'pong', 'leave'] as const;
export type FrameKind = (typeof FRAME_KINDS)[number];

/** What every frame carries once authenticated. */
export interface Envelope {
  kind: FrameKind;
  /** Correlates a reply, error or pong with its request, ping or leave. */
  id: number;
  /** Application message type (`request` only), empty otherwise. */
  type: string;
  body: Buffer;
  /**
   * Requests only, sending side: the sender's monotonic time (`performance.now()`) at which it gives
   * up. Protocol version 3 writes it as `sent`, measured when the frame is written.
   */
  deadline?: number;
  /**
   * Requests of protocol version 3, receiving side: the sender's monotonic time when it wrote the
   * request (ms, integer) and how long it would still wait for the answer then (`late-requests.ts`).
   */
  sent?: { at: number; leftMs: number };
}

/** Body of `hello` (client to receiver) and `welcome` (the receiver's answer). */
export interface Hello {
  member: MemberInfo;
  clusterName: string;
  protocolVersion: number;
}

/** Body of an `error` frame: why the remote handler failed. */
export interface RemoteErrorBody {
  code: string;
  message: string;
}

const envelopeType = avro.Type.forSchema({
  type: 'record',
  name: 'Envelope',
  fields: [
    { name: 'kind', type: { type: 'enum', name: 'FrameKind', symbols: [...FRAME_KINDS] } },
    { name: 'id', type: 'long' },
    { name: 'type', type: 'string' },
    { name: 'body', type: 'bytes' },
  ],
});

const helloType = avro.Type.forSchema({
  type: 'record',
  name: 'Hello',
  fields: [
    {
      name: 'member',
      type: {
        type: 'record',
        name: 'MemberInfo',
        fields: [
          { name: 'id', type: 'string' },
          { name: 'route', type: 'string' },
          { name: 'host', type: 'string' },
          { name: 'port', type: 'int' },
          { name: 'startTime', type: 'long' },
        ],
      },
    },
    { name: 'clusterName', type: 'string' },
    { name: 'protocolVersion', type: 'int' },
  ],
});

/**
 * The channel's own request type for an indirect check (SWIM's ping-req): "do you reach this member?".
 * A member of an older release has no handler for it, which counts as "cannot tell".
 */
export const PROBE_TYPE = 'cluster.probe';

/** Body of a `cluster.probe` request: the suspect, and how long the asked member may try. */
export interface ProbeRequest {
  id: string;
  timeoutMs: number;
}

/** Its answer: `reached` it, or not, and whether its own attempt was refused (not just silent). */
export interface ProbeReply {
  reached: boolean;
  refused: boolean;
}

const probeRequestType = avro.Type.forSchema({
  type: 'record',
  name: 'ProbeRequest',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'timeoutMs', type: 'int' },
  ],
});

const probeReplyType = avro.Type.forSchema({
  type: 'record',
  name: 'ProbeReply',
  fields: [
    { name: 'reached', type: 'boolean' },
    { name: 'refused', type: 'boolean' },
  ],
});

export function encodeProbeRequest(p: ProbeRequest): Buffer {
  return probeRequestType.toBuffer(p);
}

export function decodeProbeRequest(bytes: Buffer): ProbeRequest {
  const p = decodeWith<ProbeRequest>(probeRequestType, bytes, 'probe request');
  return { id: p.id, timeoutMs: Math.max(1, Math.min(p.timeoutMs, 10_000)) };
}

export function encodeProbeReply(p: ProbeReply): Buffer {
  return probeReplyType.toBuffer(p);
}

export function decodeProbeReply(bytes: Buffer): ProbeReply {
  const p = decodeWith<ProbeReply>(probeReplyType, bytes, 'probe reply');
  return { reached: p.reached, refused: p.refused };
}

const remoteErrorType = avro.Type.forSchema({
  type: 'record',
  name: 'RemoteError',
  fields: [
    { name: 'code', type: 'string' },
    { name: 'message', type: 'string' },
  ],
});

const ROUTE = /^[A-Za-z0-9_-]{1,32}$/;

/** Whether a decoded member record is plausible; the sender is authenticated, but bugs and versions happen. */
export function isValidMemberInfo(m: MemberInfo): boolean {
  return (
    m.id.length >= 8 &&
    m.id.length <= 64 &&
    ROUTE.test(m.route) &&
    m.host.length >= 1 &&
    m.host.length <= 255 &&
    Number.isInteger(m.port) &&
    m.port >= 1 &&
    m.port <= 65535 &&
    Number.isSafeInteger(m.startTime) &&
    m.startTime >= 0
  );
}

/** Avro decode that turns every failure (truncated, trailing bytes, bad enum) into one error. */
function decodeWith<T>(type: avro.Type, bytes: Buffer, what: string): T {
  try {
    return type.fromBuffer(bytes) as T;
  } catch (err) {
    throw new FrameError('ERR_FRAME_MALFORMED', `malformed ${what}: ${(err as Error).message}`);
  }
}

/** Encodes a frame envelope. */
export function encodeEnvelope(e: Envelope): Buffer {
  return envelopeType.toBuffer(e);
}

/** Decodes a frame envelope; `FrameError` `ERR_FRAME_MALFORMED` on bad bytes. */
export function decodeEnvelope(bytes: Buffer): Envelope {
  const e = decodeWith<Envelope>(envelopeType, bytes, 'frame envelope');
  if (!Number.isSafeInteger(e.id) || e.id < 0) throw new FrameError('ERR_FRAME_MALFORMED', 'malformed frame envelope: bad message id');
  return e;
}

/** Encodes the body of a `hello` or `welcome`. */
export function encodeHello(h: Hello): Buffer {
  return helloType.toBuffer({ ...h, member: { ...h.member } });
}

/** Decodes the body of a `hello` or `welcome`; `FrameError` on bad bytes or an implausible member. */
export function decodeHello(bytes: Buffer): Hello {
  const h = decodeWith<Hello>(helloType, bytes, 'hello');
  const m = h.member;
  const member: MemberInfo = { id: m.id, route: m.route, host: m.host, port: m.port, startTime: m.startTime };
  if (!isValidMemberInfo(member)) throw new FrameError('ERR_FRAME_MALFORMED', 'malformed hello: implausible member record');
  return { member, clusterName: h.clusterName, protocolVersion: h.protocolVersion };
}

/** Encodes the body of an `error` frame. */
export function encodeRemoteError(e: RemoteErrorBody): Buffer {
  return remoteErrorType.toBuffer(e);
}

/** Decodes the body of an `error` frame. */
export function decodeRemoteError(bytes: Buffer): RemoteErrorBody {
  const r = decodeWith<RemoteErrorBody>(remoteErrorType, bytes, 'error body');
  return { code: r.code, message: r.message };
}

/** The first 8 characters of a member id: enough to tell restarts apart in logs. */
export function shortId(id: string): string {
  return id.slice(0, 8);
}
