/**
 * express-session and @fastify/session keep the session's cookie in the session itself (`cookie`,
 * with its settings and `expires`). The store keeps the settings as one key and the expiry as the
 * copies' own (so a touch, which only moves `expires`, changes no value), and puts `expires` back
 * when it reads.
 */
import type { SessionRead } from '../replication/replicator.js';
import { setOwn } from '../replication/session-value.js';
import type { SessionData } from '../codec/types.js';
import { sessionMeta, type SessionMeta } from './session-access.js';

/** Cookie settings both frameworks take. */
export interface CookieSettings {
  maxAge?: number;
  expires?: Date;
  path?: string;
  domain?: string;
  httpOnly?: boolean;
  partitioned?: boolean;
}

/** An expiry as a framework's cookie holds it (a Date, or an ISO string after JSON), in epoch ms. */
function epochMs(value: unknown): number | undefined {
  const t = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Splits a session as the framework hands it to the store into the values to replicate (the cookie's
 * settings as the key `cookie`, without `expiryKeys`) and when the session ends (`expires`, and
 * `originalMaxAge` as its max age; neither: a browser-session cookie).
 */
export function splitCookieSession(sess: Record<string, unknown>, expiryKeys: readonly string[]): { data: SessionData; meta: SessionMeta } {
  const data: SessionData = {};
  for (const k of Object.keys(sess)) if (k !== 'cookie') setOwn(data, k, sess[k]);
  const cookie = sess.cookie as { toJSON?: () => Record<string, unknown> } | undefined;
  if (typeof cookie !== 'object' || cookie === null) return { data, meta: sessionMeta(undefined, undefined) };
  const json = typeof cookie.toJSON === 'function' ? cookie.toJSON() : (cookie as Record<string, unknown>);
  const settings: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (v !== undefined && !expiryKeys.includes(k)) settings[k] = v;
  data.cookie = settings;
  const maxAge = typeof json.originalMaxAge === 'number' ? json.originalMaxAge : undefined;
  return { data, meta: sessionMeta(epochMs(json.expires), maxAge) };
}

/** A read as the framework expects it from `get`: the values, with a `cookie` whose `expires` is the session's expiry. */
export function withCookie(read: SessionRead): Record<string, unknown> {
  const out = read.values as Record<string, unknown>;
  const stored = typeof out.cookie === 'object' && out.cookie !== null ? (out.cookie as Record<string, unknown>) : {};
  const browser = read.maxAge === 'session';
  out.cookie = { ...stored, originalMaxAge: browser ? null : read.maxAge, expires: browser ? null : new Date(read.expire) };
  return out;
}
