/**
 * Session ids: `<base>.<route>`. The base is 144 random bits in base64url (24 characters); the route
 * names the primary. Anything that does not parse is "no session", never an error.
 */
import { randomBytes } from 'node:crypto';

/** A parsed session id. */
export interface SessionId {
  /** The random part: the session's identity across takeovers. */
  readonly base: string;
  /** The route of the member the id was last bound to. */
  readonly route: string;
}

// base64url of at least 16 bytes (128 bits) is at least 22 characters; we accept up to 64.
const ID_PATTERN = /^([A-Za-z0-9_-]{22,64})\.([A-Za-z0-9_-]{1,32})$/;

/** Parses `base.route`; `undefined` for anything malformed (wrong characters, no route, too short). */
export function parseSessionId(id: unknown): SessionId | undefined {
  if (typeof id !== 'string' || id.length > 100) return undefined;
  const m = ID_PATTERN.exec(id);
  return m === null ? undefined : { base: m[1], route: m[2] };
}

/** Formats an id. */
export function formatSessionId(base: string, route: string): string {
  return `${base}.${route}`;
}

/** A new base: 18 random bytes (144 bits) from the CSPRNG, base64url. */
export function newBase(): string {
  return randomBytes(18).toString('base64url');
}

/** A short, log-safe form of a base: enough to correlate log lines, useless to hijack a session. */
export function shortId(base: string): string {
  return base.slice(0, 6);
}
