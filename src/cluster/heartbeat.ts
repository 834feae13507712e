/**
 * Multicast heartbeat datagrams (Tomcat's McastService member broadcasts), pure: encode, and
 * decode with every check a datagram from the network needs. A datagram is
 * `"KSH1" | Avro(Heartbeat) | HMAC-SHA256(magic | record)[0..16]`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import avro from 'avsc';
import { HeartbeatError } from '../errors.js';
import { isValidMemberInfo } from './messages.js';
import type { MemberInfo } from './types.js';

const MAGIC = Buffer.from('KSH1');
const MAC_BYTES = 16;

/** `alive` every `frequency` ms; `leave` once on a graceful stop. */
export type HeartbeatKind = 'alive' | 'leave';

/** What a heartbeat says. */
export interface Heartbeat {
  clusterName: string;
  member: MemberInfo;
  protocolVersion: number;
  /** Sender's clock, epoch ms, when sent. */
  timestamp: number;
  kind: HeartbeatKind;
}

const heartbeatType = avro.Type.forSchema({
  type: 'record',
  name: 'Heartbeat',
  fields: [
    { name: 'clusterName', type: 'string' },
    { name: 'memberId', type: 'string' },
    { name: 'route', type: 'string' },
    { name: 'host', type: 'string' },
    { name: 'port', type: 'int' },
    { name: 'startTime', type: 'long' },
    { name: 'protocolVersion', type: 'int' },
    { name: 'timestamp', type: 'long' },
    { name: 'kind', type: { type: 'enum', name: 'HeartbeatKind', symbols: ['alive', 'leave'] } },
  ],
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
}

function mac(key: Buffer, signed: Buffer): Buffer {
  return createHmac('sha256', key).update(signed).digest().subarray(0, MAC_BYTES);
}

/** Encodes and signs a heartbeat datagram. */
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
  const signed = Buffer.concat([MAGIC, heartbeatType.toBuffer(record)]);
  return Buffer.concat([signed, mac(key, signed)]);
}

/** What the receiving member checks a heartbeat against. */
export interface HeartbeatCheck {
  /** MAC key, or the keys of every accepted secret (a rotation). */
  key: Buffer | readonly Buffer[];
  clusterName: string;
  protocolVersion: number;
  /** Receiver's clock, epoch ms. */
  now: number;
  /** Heartbeats older than this (or this far in the future: clocks differ) are stale. */
  maxAgeMs: number;
}

/**
 * Decodes and verifies a datagram. Checks run cheapest first, and the timestamp is trusted only
 * after the MAC: a forged timestamp must not count as anything but a failed MAC.
 * @throws HeartbeatError `ERR_HEARTBEAT_MALFORMED`, `_FOREIGN` (other cluster name or protocol
 * version), `_AUTH` (MAC) or `_STALE`.
 */
export function decodeHeartbeat(datagram: Buffer, check: HeartbeatCheck): Heartbeat {
  if (datagram.length <= MAGIC.length + MAC_BYTES || !datagram.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new HeartbeatError('ERR_HEARTBEAT_MALFORMED', 'malformed heartbeat: bad magic or too short');
  }
  const signed = datagram.subarray(0, datagram.length - MAC_BYTES);
  let r: HeartbeatRecord;
  try {
    r = heartbeatType.fromBuffer(signed.subarray(MAGIC.length)) as HeartbeatRecord;
  } catch (err) {
    throw new HeartbeatError('ERR_HEARTBEAT_MALFORMED', `malformed heartbeat: ${(err as Error).message}`);
  }
  const member: MemberInfo = { id: r.memberId, route: r.route, host: r.host, port: r.port, startTime: r.startTime };
  if (!isValidMemberInfo(member) || !Number.isSafeInteger(r.timestamp)) {
    throw new HeartbeatError('ERR_HEARTBEAT_MALFORMED', 'malformed heartbeat: implausible member record');
  }
  if (r.clusterName !== check.clusterName) {
    throw new HeartbeatError('ERR_HEARTBEAT_FOREIGN', `heartbeat from cluster "${r.clusterName.slice(0, 64)}"`);
  }
  if (r.protocolVersion !== check.protocolVersion) {
    throw new HeartbeatError('ERR_HEARTBEAT_FOREIGN', `heartbeat of protocol version ${r.protocolVersion}`);
  }
  const tag = datagram.subarray(datagram.length - MAC_BYTES);
  const keys = Buffer.isBuffer(check.key) ? [check.key] : check.key;
  if (!keys.some((key) => timingSafeEqual(mac(key, signed), tag))) {
    throw new HeartbeatError('ERR_HEARTBEAT_AUTH', 'heartbeat MAC does not match: another secret, or tampered');
  }
  if (Math.abs(check.now - r.timestamp) > check.maxAgeMs) {
    throw new HeartbeatError('ERR_HEARTBEAT_STALE', `heartbeat ${check.now - r.timestamp} ms old`);
  }
  return { clusterName: r.clusterName, member, protocolVersion: r.protocolVersion, timestamp: r.timestamp, kind: r.kind };
}

/** Metrics key of a heartbeat drop reason. */
export function heartbeatDropReason(err: HeartbeatError): 'stale' | 'foreign' | 'malformed' | 'auth' {
  switch (err.code) {
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
