/**
 * Express and Fastify apps of the in-process cluster members, on port 0, closed when the test ends,
 * and the small HTTP helpers their tests share (a request with a Cookie header, Set-Cookie parsing).
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';

/** Listens on 127.0.0.1:0; resolves the base URL. Closed after the test. */
export async function listen(t: { after(fn: () => Promise<void>): void }, server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export interface SetCookie {
  name: string;
  /** As sent (still URL-encoded). */
  value: string;
  /** Attribute names (lower case) with their values ('' for flags), `expires` apart. */
  attributes: Record<string, string>;
  expires: number | undefined;
}

export function parseSetCookie(header: string): SetCookie {
  const [pair, ...attrs] = header.split(';').map((s) => s.trim());
  const eq = pair.indexOf('=');
  const attributes: Record<string, string> = {};
  let expires: number | undefined;
  for (const a of attrs) {
    const i = a.indexOf('=');
    const name = (i < 0 ? a : a.slice(0, i)).toLowerCase();
    const value = i < 0 ? '' : a.slice(i + 1);
    if (name === 'expires') expires = Date.parse(value);
    else attributes[name] = value;
  }
  return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes, expires };
}

export interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON
  body: any;
  text: string;
  headers: Headers;
  cookies: SetCookie[];
}

/**
 * One request; `cookie` is sent as the Cookie header. JSON bodies in and out. A 503 with Retry-After
 * (the cluster cannot tell now: a member just started, or the machine is slow) is retried for up to
 * 6 s, as a balancer or a browser does, unless `retry` is false.
 */
export async function call(method: string, url: string, cookie?: string, body?: unknown, options: { headers?: Record<string, string>; retry?: boolean } = {}): Promise<Answer> {
  const deadline = Date.now() + 6000;
  for (;;) {
    const answer = await callOnce(method, url, cookie, body, options.headers ?? {});
    if (answer.status !== 503 || answer.headers.get('retry-after') === null || options.retry === false || Date.now() > deadline) return answer;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function callOnce(method: string, url: string, cookie: string | undefined, body: unknown, headers: Record<string, string>): Promise<Answer> {
  const h: Record<string, string> = { ...headers };
  if (cookie !== undefined) h.cookie = cookie;
  if (body !== undefined) h['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text, headers: res.headers, cookies: res.headers.getSetCookie().map(parseSetCookie) };
}

/**
 * `value.signature` as cookie-signature (express-session) and @fastify/cookie's Signer (sha256) make
 * it, computed here independently: HMAC-SHA256 of the value, base64 without padding.
 */
export function hmacSigned(value: string, secret: string): string {
  return `${value}.${createHmac('sha256', secret).update(value).digest('base64').replace(/=+$/, '')}`;
}

/** How a framework's cookie carries the session id: the value as the framework signs it, and back. */
export interface CookieFormat {
  name: string;
  /** The id in a cookie value (URL-encoded, signed). */
  idOf(value: string): string;
  /** The value the framework sets for `id`, decoded. */
  signed(id: string): string;
}

/** A login's answer on member `route`: one session cookie, for an id bound to `route`, signed as the framework signs it. */
export function assertLogin(format: CookieFormat, answer: Answer, route: string): SetCookie {
  assert.equal(answer.status, 200);
  const first = answer.cookies.find((c) => c.name === format.name);
  assert.ok(first, 'the login sets the session cookie');
  assert.match(format.idOf(first.value), new RegExp(`\\.${route}$`));
  assert.equal(decodeURIComponent(first.value), format.signed(format.idOf(first.value)));
  return first;
}

/**
 * The seed's scenario, checked on the answer of the member `route` to a request carrying the login's
 * cookie `first`: still logged in as `user`, one rebound cookie for the same session bound to `route`,
 * signed as the framework signs it, with the attributes and expiry of the framework's own cookie.
 * Returns the rebound cookie.
 */
export function assertRebound(format: CookieFormat, first: SetCookie, answer: Answer, route: string, user: string): SetCookie {
  assert.equal(answer.status, 200);
  assert.equal(answer.body.user, user, 'still logged in on the other member');
  const all = answer.cookies.filter((c) => c.name === format.name);
  assert.equal(all.length, 1, 'the rebound cookie, once');
  const rebound = all[0];
  const id = format.idOf(rebound.value);
  assert.equal(id, `${format.idOf(first.value).split('.')[0]}.${route}`, `the same session, bound to ${route}`);
  assert.equal(answer.body.id, id, 'the framework served the rebound id');
  assert.equal(decodeURIComponent(rebound.value), format.signed(id), 'signed as the framework signs its cookie');
  assert.deepEqual(rebound.attributes, first.attributes, 'the attributes of the framework\'s own cookie');
  assert.ok(Math.abs(rebound.expires! - first.expires!) < 2000, 'the expiry the session has');
  return rebound;
}
