/**
 * A session's public name: a keyed one-way function of its base. Every member derives the same key
 * from the cluster secret, so a handle is stable across members and takeovers; without the secret it
 * tells nothing about the base, and it is never a cookie (a cookie needs the base itself).
 */
import { createHmac, hkdfSync } from 'node:crypto';

/** The key handles are made with, derived from the cluster secret (apart from the traffic keys). */
export function deriveHandleKey(secret: string | Buffer): Buffer {
  const ikm = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  return Buffer.from(hkdfSync('sha256', ikm, Buffer.from('koa-session-cluster'), Buffer.from('session-handle'), 32));
}

/** 128 bits of HMAC-SHA256(key, base), base64url: 22 characters. */
export function sessionHandle(key: Buffer, base: string): string {
  return createHmac('sha256', key).update(base).digest().subarray(0, 16).toString('base64url');
}
