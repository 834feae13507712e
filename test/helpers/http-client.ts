/**
 * A minimal HTTP client with a cookie jar, over Node's own fetch: enough to act as one browser
 * against several members (the cookie follows the user from member to member).
 */
export class CookieJar {
  readonly cookies = new Map<string, string>();

  /** Stores the cookies of a response (`Set-Cookie`), dropping expired ones. */
  store(res: Response): void {
    for (const header of res.headers.getSetCookie()) {
      const [pair, ...attrs] = header.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1]).getTime() < Date.now());
      if (value === '' || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  get(name: string): string | undefined {
    return this.cookies.get(name);
  }

  /** Another browser tab's view: the same cookies, from now on kept apart. */
  copy(): CookieJar {
    const jar = new CookieJar();
    for (const [k, v] of this.cookies) jar.cookies.set(k, v);
    return jar;
  }
}

export interface JsonResponse {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON
  body: any;
  headers: Headers;
}

/**
 * Sends a request with the jar's cookies and stores the response's. JSON bodies in and out. A 503 with
 * `Retry-After` (a session that cannot be told present or absent right now) is retried, as a balancer
 * or a browser does, for up to `retryFor` ms; then the 503 is returned.
 */
export async function request(
  jar: CookieJar,
  method: string,
  url: string,
  body?: unknown,
  timeoutMs = 10_000,
  retryFor = 6000,
): Promise<JsonResponse> {
  const deadline = Date.now() + retryFor;
  for (;;) {
    const res = await requestOnce(jar, method, url, body, timeoutMs);
    if (res.status !== 503 || res.headers.get('retry-after') === null || Date.now() >= deadline) return res;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function requestOnce(jar: CookieJar, method: string, url: string, body: unknown, timeoutMs: number): Promise<JsonResponse> {
  const headers: Record<string, string> = { cookie: jar.header(), accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'manual',
    });
  } catch (err) {
    // fetch's timeout is a DOMException, which the test reporter prints as "{}": say what timed out.
    if ((err as Error).name === 'TimeoutError') throw new Error(`${method} ${url}: no answer within ${timeoutMs} ms`, { cause: err });
    throw err;
  }
  jar.store(res);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}
