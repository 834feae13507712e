/**
 * Keys derived from the cluster secret. HKDF gives each use its own key, so a heartbeat MAC can
 * never be replayed as a frame MAC, and per-connection keys (mixed with both sides' random nonces)
 * make every TCP connection's frames useless on any other connection.
 */
import { hkdfSync } from 'node:crypto';

/** HKDF salt: names the protocol, so keys never collide with another use of the same secret. */
const SALT = Buffer.from('koa-session-cluster/v1');

/** The long-lived keys of one secret. */
export interface SecretKeys {
  /** HMAC-SHA256 key of multicast heartbeats. */
  readonly heartbeatMac: Buffer;
  /** Master key from which each connection's frame MAC keys are derived. */
  readonly frameMac: Buffer;
  /** Master key from which each connection's AES-256-GCM keys are derived (`encrypt: true`). */
  readonly frameEnc: Buffer;
}

/**
 * The keys every member derives from its secrets at start: those of the first secret (what it sends
 * with) and, in `accepted`, those of every secret it accepts, the first included. Secrets rotate by
 * rolling restarts: a member accepting old and new talks with members that know only one of them.
 */
export interface ClusterKeys extends SecretKeys {
  /** Keys of every accepted secret, the first (sending) one first. */
  readonly accepted: readonly SecretKeys[];
}

/** Keys of one direction of one TCP connection. */
export interface DirectionKeys {
  /** HMAC-SHA256 key, or AES-256-GCM key when encrypting. */
  readonly key: Buffer;
  readonly encrypt: boolean;
}

/** Both directions of one connection, as seen from one side. */
export interface ConnectionKeys {
  readonly send: DirectionKeys;
  readonly receive: DirectionKeys;
}

function derive(ikm: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from(info), 32));
}

/** A cluster secret, or the list of them during a rotation (the first is sent with). */
export type ClusterSecret = string | Buffer | readonly (string | Buffer)[];

/** The secrets of `secret` in order, the sending one first. */
export function secretList(secret: ClusterSecret): readonly (string | Buffer)[] {
  return typeof secret === 'string' || Buffer.isBuffer(secret) ? [secret] : secret;
}

function deriveSecretKeys(secret: string | Buffer): SecretKeys {
  const ikm = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  return {
    heartbeatMac: derive(ikm, SALT, 'heartbeat-mac'),
    frameMac: derive(ikm, SALT, 'frame-mac'),
    frameEnc: derive(ikm, SALT, 'frame-enc'),
  };
}

/** Derives the heartbeat and frame master keys from the cluster secret (or secrets, the first sent with). */
export function deriveClusterKeys(secret: ClusterSecret): ClusterKeys {
  const accepted = secretList(secret).map(deriveSecretKeys);
  if (accepted.length === 0) throw new Error('deriveClusterKeys: no secret');
  return { ...accepted[0], accepted };
}

/**
 * Derives one connection's keys from both sides' nonces. Each direction has its own key, so the
 * implicit per-direction sequence number (and the GCM nonce built from it) is never reused under
 * one key, and a frame reflected back to its sender fails authentication.
 */
export function deriveConnectionKeys(
  keys: SecretKeys,
  encrypt: boolean,
  role: 'client' | 'server',
  clientNonce: Buffer,
  serverNonce: Buffer,
): ConnectionKeys {
  const master = encrypt ? keys.frameEnc : keys.frameMac;
  const salt = Buffer.concat([clientNonce, serverNonce]);
  const c2s: DirectionKeys = { key: derive(master, salt, 'client-to-server'), encrypt };
  const s2c: DirectionKeys = { key: derive(master, salt, 'server-to-client'), encrypt };
  return role === 'client' ? { send: c2s, receive: s2c } : { send: s2c, receive: c2s };
}
