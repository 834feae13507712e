/**
 * Starts members of the demo app (demo/app.ts) for the demo tests, through the shared app-cluster
 * helpers: their own multicast group and port on 127.0.0.1, any free HTTP ports, a fresh secret.
 */
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { clusterConfig, startAppMember, waitForMembership, type AppMember } from '../helpers/app-cluster.js';
import type { CookieJar } from '../helpers/http-client.js';

/** The demo's member script (Koa). */
export const DEMO_APP = fileURLToPath(new URL('../../demo/app.ts', import.meta.url));
/** The demo's member script of each framework (`npm run demo -- --framework F`). */
export const DEMO_APPS = {
  koa: DEMO_APP,
  express: fileURLToPath(new URL('../../demo/express-app.ts', import.meta.url)),
  fastify: fileURLToPath(new URL('../../demo/fastify-app.ts', import.meta.url)),
} as const;
/** The demo's runner (`npm run demo`). */
export const DEMO_RUN = fileURLToPath(new URL('../../demo/run.ts', import.meta.url));
/** The demo's nginx configuration. */
export const DEMO_NGINX_CONF = fileURLToPath(new URL('../../demo/nginx.conf', import.meta.url));

/** Starts demo members node1..nodeN (`env` added to theirs) and waits until each sees all of them. */
export async function startDemoCluster(
  t: TestContext,
  n: number,
  mode: 'backup' | 'delta',
  env: Record<string, string> = {},
  framework: keyof typeof DEMO_APPS = 'koa',
): Promise<AppMember[]> {
  // The cluster's size, as `npm run demo` gives it: a one-member demo serves at once.
  const config = await clusterConfig({ mode, env: { CLUSTER_SECRET: randomBytes(24).toString('base64url'), EXPECTED_MEMBERS: String(n), ...env } });
  const members = await Promise.all(Array.from({ length: n }, (_, i) => startAppMember(t, `node${i + 1}`, config, DEMO_APPS[framework])));
  await waitForMembership(members, n);
  return members;
}

/**
 * The session id in a demo session cookie's value: `<base>.<route>` (koa-session), or signed into it,
 * `s:<id>.<signature>` (express-session) and `<id>.<signature>` (@fastify/session), URL-encoded.
 */
export function cookieSessionId(value: string): string {
  const v = decodeURIComponent(value).replace(/^s:/, '');
  return v.split('.').length === 3 ? v.slice(0, v.lastIndexOf('.')) : v;
}

/** The route suffix of the demo's session cookie (`sid`) in a jar. */
export function cookieRoute(jar: CookieJar): string | undefined {
  const value = jar.get('sid');
  return value === undefined ? undefined : cookieSessionId(value).split('.').pop();
}
