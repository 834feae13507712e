/**
 * What every demo member shares, whatever its framework (app.ts: Koa, express-app.ts,
 * fastify-app.ts): the cluster made from the environment (see app.ts for the variables), the cookie
 * secret, the "served by" line, and the lifecycle (listen and say so, leave gracefully on SIGTERM,
 * SIGINT or when `npm run demo` goes away).
 */
import { hkdfSync } from 'node:crypto';
import type { Server } from 'node:http';
import { pino, type Logger } from 'pino';
// An application imports from 'koa-session-cluster'; the demo runs against the sources.
import { ClusterOptionsError, createSessionCluster, type SessionCluster } from '../src/index.js';
import type { ServedBy } from './pages.js';
import { User, userType } from './user.js';

/** nginx reads the cookie as `$cookie_sid`, and nginx variable names cannot contain a dot. */
export const COOKIE = 'sid';
export const MAX_BODY_BYTES = 16 * 1024;
/** Sessions end after 30 minutes without a request. */
export const SESSION_MAX_AGE = 30 * 60 * 1000;

const env = process.env;
export const route = env.ROUTE ?? 'node1';
export const logger: Logger = pino({ level: env.LOG_LEVEL ?? 'info', base: { member: route } });

/** The cluster member, from the environment; a wrong variable exits with a one-line message. */
export function demoCluster(): SessionCluster {
  try {
    return createSessionCluster({
      route,
      mode: (env.MODE ?? 'backup') as 'backup' | 'delta',
      ack: (env.ACK ?? 'sync') as 'sync' | 'async',
      secret: env.CLUSTER_SECRET as string,
      clusterName: 'koa-session-cluster-demo',
      membership: {
        multicast: {
          address: env.MCAST_ADDRESS ?? '228.0.0.4',
          port: Number(env.MCAST_PORT ?? 45564),
          interface: env.MCAST_INTERFACE ?? '127.0.0.1',
        },
      },
      receiver: { host: env.MCAST_INTERFACE ?? '127.0.0.1', port: Number(env.RECEIVER_PORT ?? 0) },
      types: [userType],
      ...(env.EXPECTED_MEMBERS === undefined ? {} : { expectedMembers: Number(env.EXPECTED_MEMBERS) }),
      // Slower re-protection makes a failover visible on the status page for a few seconds.
      ...(env.REPROTECT_RATE === undefined ? {} : { reprotectRate: Number(env.REPROTECT_RATE) }),
      logger,
      // Sessions by user: "Your sessions" lists them on every member, and logs the others out.
      principal: (s) => (s.user instanceof User ? s.user.username : undefined),
    });
  } catch (err) {
    // A wrong variable is a one-line message naming the option, not a stack trace.
    if (!(err instanceof ClusterOptionsError)) throw err;
    process.stderr.write(`demo member ${route}: ${err.message}\n`);
    process.exit(1);
  }
}

/**
 * The keys signing the session cookie. Members must share them; deriving them from the shared secret
 * means one less thing to configure, and HKDF with its own label keeps them independent of the
 * cluster's own keys.
 */
export function cookieKeys(): string[] {
  if (env.COOKIE_KEYS !== undefined) return env.COOKIE_KEYS.split(',');
  return [Buffer.from(hkdfSync('sha256', env.CLUSTER_SECRET!, '', 'koa-session-cluster demo cookie', 32)).toString('base64url')];
}

/** The member that serves a request, for the pages and `/me`. */
export function servedBy(cluster: SessionCluster, server: Server): ServedBy {
  const address = server.address();
  return {
    route,
    port: typeof address === 'object' && address !== null ? address.port : 0,
    pid: process.pid,
    mode: cluster.mode,
    members: cluster.members().map((m) => m.route).sort(),
  };
}

/** Whether a connection comes from this machine: the demo's status page is for it alone. */
export function isLoopback(address: string | undefined): boolean {
  const a = address ?? '';
  return a.startsWith('127.') || a === '::1' || a.startsWith('::ffff:127.');
}

/**
 * Starts the cluster, then the HTTP server, printing `{"event":"listening",...}`; stops gracefully
 * (no new requests, sessions handed off, leave) on SIGTERM, SIGINT, or the runner's end.
 */
export async function runMember(cluster: SessionCluster, server: Server): Promise<void> {
  let stopping = false;
  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, 'stopping');
    // A leave that cannot finish (e.g. every other member stopping at once) must not hang the demo.
    setTimeout(() => process.exit(1), 15_000).unref();
    server.close();
    server.closeIdleConnections();
    void cluster.stop().then(
      () => {
        process.stdout.write(JSON.stringify({ event: 'stopped', route }) + '\n');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'leaving the cluster failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Started by demo/run.ts: stdin is a pipe from it, so its end means the runner is gone.
  if (env.DEMO_EXIT_WITH_PARENT === '1') {
    process.stdin.on('end', () => stop('runner exited'));
    process.stdin.on('error', () => stop('runner exited'));
    process.stdin.resume();
  }
  server.on('error', (err) => {
    logger.error({ err }, 'HTTP server failed');
    process.exit(1);
  });
  await cluster.start();
  server.listen(Number(env.PORT ?? 0), env.HOST ?? '127.0.0.1', () => {
    const { port } = servedBy(cluster, server);
    process.stdout.write(JSON.stringify({ event: 'listening', route, port, pid: process.pid }) + '\n');
  });
}
