/**
 * Multicast heartbeat datagrams (Tomcat's McastService member broadcasts), pure: encode, and
 * decode with every check a datagram from the network needs. A datagram is
 * `"KSH1" | Avro(Heartbeat) | HMAC-SHA256(magic | record)[0..16]`, or, advertising a range of
 * protocol versions, `"KSH2" | Avro(Heartbeat2) | MAC`. Release 0.1.0 reads only KSH1 (and requires
 * its `protocolVersion` to be 1), so a member that still speaks version 1 sends both.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import avro from 'avsc';
import { HeartbeatError } from '../errors.js';
import { PROTOCOL_VERSION, ZONE, formatRange, highestCommon, isValidMemberInfo } from './messages.js';
import type { VersionRange } from './messages.js';
import type { MemberInfo } from './types.js';

const MAGIC = Buffer.from('KSH1');
const MAGIC2 = Buffer.from('KSH2');
const MAC_BYTES = 16;

/** `alive` every `frequency` ms; `leave` once on a graceful stop. */
export type HeartbeatKind = 'alive' | 'leave';

/** What a heartbeat says. */
export interface Heartbeat {
  clusterName: string;
  member: MemberInfo;
  /** The lowest protocol version the sender speaks (the only one, in a KSH1 datagram). */
  protocolVersion: number;
  /** The highest it speaks; absent in KSH1 (which says: just `protocolVersion`). */
  protocolMax?: number;
  /** Sender's clock, epoch ms, when sent. */
  timestamp: number;
  kind: HeartbeatKind;
}

const HEARTBEAT_FIELDS: { name: string; type: avro.Schema }[] = [
  { name: 'clusterName', type: 'string' },
  { name: 'memberId', type: 'string' },
  { name: 'route', type: 'string' },
  { name: 'host', type: 'string' },
  { name: 'port', type: 'int' },
  { name: 'startTime', type: 'long' },
  { name: 'protocolVersion', type: 'int' },
  { name: 'timestamp', type: 'long' },
  { name: 'kind', type: { type: 'enum', name: 'HeartbeatKind', symbols: ['alive', 'leave'] } },
];

const heartbeatType = avro.Type.forSchema({ type: 'record', name: 'Heartbeat', fields: HEARTBEAT_FIELDS });

/** KSH2: the same fields, the highest version the sender speaks, and its zone ('' for none). */
const heartbeat2Type = avro.Type.forSchema({
  type: 'record',
  name: 'Heartbeat2',
  fields: [...HEARTBEAT_FIELDS, { name: 'protocolMax', type: 'int' }, { name: 'zone', type: 'string', default: '' }],
});

interface HeartbeatRecord {
  clusterName: string;
  memberId: string;
  route: string;
  host: string;
  port: number;
  startTime: number;
  protocolVersion: number;
  timestamp: number;
  kind: HeartbeatKind;
  protocolMax?: number;
  zone?: string;
}

function mac(key: Buffer, signed: Buffer): Buffer {
  return createHmac('sha256', key).update(signed).digest().subarray(0, MAC_BYTES);
}

/** Encodes and signs a heartbeat datagram: KSH2 when `protocolMax` is given, else KSH1. */
export function encodeHeartbeat(hb: Heartbeat, key: Buffer): Buffer {
  const record: HeartbeatRecord = {
    clusterName: hb.clusterName,
    memberId: hb.member.id,
    route: hb.member.route,
    host: hb.member.host,
    port: hb.member.port,
    startTime: hb.member.startTime,
    protocolVersion: hb.protocolVersion,
    timestamp: hb.timestamp,
    kind: hb.kind,
  };
  const signed =
    hb.protocolMax === undefined
      ? Buffer.concat([MAGIC, heartbeatType.toBuffer(record)])
      : Buffer.concat([MAGIC2, heartbeat2Type.toBuffer({ ...record, protocolMax: hb.protocolMax, zone: hb.member.zone ?? '' })]);
  return Buffer.concat([signed, mac(key, signed)]);
}

/**
 * The datagrams a member speaking `range` sends each beat: KSH2 with the range, and while it still
 * speaks version 1 a KSH1 too, which is all a member of release 0.1.0 reads.
 */
export function encodeHeartbeats(hb: Omit<Heartbeat, 'protocolVersion' | 'protocolMax'>, range: VersionRange, key: Buffer): Buffer[] {
  const out = [encodeHeartbeat({ ...hb, protocolVersion: range.min, protocolMax: range.max }, key)];
  if (range.min <= PROTOCOL_VERSION) out.push(encodeHeartbeat({ ...hb, protocolVersion: PROTOCOL_VERSION }, key));
  return out;
}

/** What the receiving member checks a heartbeat against. */
export interface HeartbeatCheck {
  /** MAC key, or the keys of every accepted secret (a rotation). */
  key: Buffer | readonly Buffer[];
  clusterName: string;
  /** The versions the receiver speaks: a sender with none of them in common is refused. */
  protocol: VersionRange;
  /** Receiver's clock, epoch ms. */
  now: number;
  /** Heartbeats older than this (or this far in the future: clocks differ) are stale. */
  maxAgeMs: number;
}

/**
 * Decodes and verifies a datagram. Checks run cheapest first, and the timestamp is trusted only
 * after the MAC: a forged timestamp must not count as anything but a failed MAC.
 * @throws HeartbeatError `ERR_HEARTBEAT_MALFORMED`, `_FOREIGN` (other cluster name), `_AUTH` (MAC),
 * `_VERSION` (no protocol version in common; checked after the MAC, so `peer` names a member) or `_STALE`.
 */
export function decodeHeartbeat(datagram: Buffer, check: HeartbeatCheck): Heartbeat {
  const magic = datagram.subarray(0, MAGIC.length);
  const v2 = magic.equals(MAGIC2);
  if (datagram.length <= MAGIC.length + MAC_BYTES || !(v2 || magic.equals(MAGIC))) {
    throw new HeartbeatError('ERR_HEARTBEAT_MALFORMED', 'malformed heartbeat: bad magic or too short');
  }
  const signed = datagram.subarray(0, datagram.length - MAC_BYTES);
  let r: HeartbeatRecord;
  try {
    r = (v2 ? heartbeat2Type : heartbeatType).fromBuffer(signed.subarray(MAGIC.length)) as HeartbeatRecord;
  } catch (err) {
    throw new HeartbeatError('ERR_HEARTBEAT_MALFORMED', `malformed heartbeat: ${(err as Error).message}`);
  }
  const zone = v2 && r.zone !== undefined && ZONE.test(r.zone) ? { zone: r.zone } : {};
  const member: MemberInfo = { id: r.memberId, route: r.route, host: r.host, port: r.port, startTime: r.startTime, ...zone };
  if (!isValidMemberInfo(member) || !Number.isSafeInteger(r.timestamp)) {
    throw new HeartbeatError('ERR_HEARTBEAT_MALFORMED', 'malformed heartbeat: implausible member record');
  }
  if (r.clusterName !== check.clusterName) {
    throw new HeartbeatError('ERR_HEARTBEAT_FOREIGN', `heartbeat from cluster "${r.clusterName.slice(0, 64)}"`);
  }
  const tag = datagram.subarray(datagram.length - MAC_BYTES);
  const keys = Buffer.isBuffer(check.key) ? [check.key] : check.key;
  if (!keys.some((key) => timingSafeEqual(mac(key, signed), tag))) {
    throw new HeartbeatError('ERR_HEARTBEAT_AUTH', 'heartbeat MAC does not match: another secret, or tampered');
  }
  const range = { min: r.protocolVersion, max: v2 ? (r.protocolMax ?? r.protocolVersion) : r.protocolVersion };
  if (range.max < range.min || highestCommon(range, check.protocol) === undefined) {
    throw new HeartbeatError(
      'ERR_HEARTBEAT_VERSION',
      `member ${member.route} speaks protocol versions ${formatRange(range)}, this member ${formatRange(check.protocol)}: none in common, so it is not admitted (upgrade through a release that speaks both)`,
      { id: member.id, route: member.route, host: member.host, port: member.port, ...range },
    );
  }
  if (Math.abs(check.now - r.timestamp) > check.maxAgeMs) {
    throw new HeartbeatError('ERR_HEARTBEAT_STALE', `heartbeat ${check.now - r.timestamp} ms old`);
  }
  return {
    clusterName: r.clusterName,
    member,
    protocolVersion: r.protocolVersion,
    ...(v2 ? { protocolMax: range.max } : {}),
    timestamp: r.timestamp,
    kind: r.kind,
  };
}

/** Metrics key of a heartbeat drop reason. */
export function heartbeatDropReason(err: HeartbeatError): 'stale' | 'foreign' | 'version' | 'malformed' | 'auth' {
  switch (err.code) {
    case 'ERR_HEARTBEAT_VERSION':
      return 'version';
    case 'ERR_HEARTBEAT_STALE':
      return 'stale';
    case 'ERR_HEARTBEAT_FOREIGN':
      return 'foreign';
    case 'ERR_HEARTBEAT_AUTH':
      return 'auth';
    default:
      return 'malformed';
  }
}
