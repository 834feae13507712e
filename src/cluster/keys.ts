/**
 * Keys derived from the cluster secret. HKDF gives each use its own key, so a heartbeat MAC can
 * never be replayed as a frame MAC, and per-connection keys (mixed with both sides' random nonces)
 * make every TCP connection's frames useless on any other connection.
 */
import { hkdfSync } from 'node:crypto';

/** HKDF salt: names the protocol, so keys never collide with another use of the same secret. */
const SALT = Buffer.from('koa-session-cluster/v1');

/** The long-lived keys every member derives from the shared secret at start. */
export interface ClusterKeys {
  /** HMAC-SHA256 key of multicast heartbeats. */
  readonly heartbeatMac: Buffer;
  /** Master key from which each connection's frame MAC keys are derived. */
  readonly frameMac: Buffer;
  /** Master key from which each connection's AES-256-GCM keys are derived (`encrypt: true`). */
  readonly frameEnc: Buffer;
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

/** Derives the heartbeat and frame master keys from the cluster secret. */
export function deriveClusterKeys(secret: string | Buffer): ClusterKeys {
  const ikm = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  return {
    heartbeatMac: derive(ikm, SALT, 'heartbeat-mac'),
    frameMac: derive(ikm, SALT, 'frame-mac'),
    frameEnc: derive(ikm, SALT, 'frame-enc'),
  };
}

/**
 * Derives one connection's keys from both sides' nonces. Each direction has its own key, so the
 * implicit per-direction sequence number (and the GCM nonce built from it) is never reused under
 * one key, and a frame reflected back to its sender fails authentication.
 */
export function deriveConnectionKeys(
  keys: ClusterKeys,
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
