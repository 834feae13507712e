/**
 * What the chaos run's members share, whatever their framework (member.ts: Koa, member-express.ts,
 * member-fastify.ts): the cluster configured by environment, the counter the checker reads, the
 * session cookie's name, and the lifecycle (print `{"event":"listening",...}` when serving; on
 * SIGTERM close the HTTP server, leave gracefully and print `{"event":"stopped"}`).
 */
import type { Server } from 'node:http';
import { pino } from 'pino';
import { createSessionCluster, type SessionCluster } from '../../src/index.js';

/** The session cookie every member uses (the clients read it: client.ts). */
export const CHAOS_COOKIE = 'koa.sess';

/** The counter: its value and the id of the request that wrote it (one key: replicated atomically). */
export interface Counter {
  n: number;
  w: string;
}

const env = process.env;
export const route = env.ROUTE ?? 'node1';
export const logger = pino({ level: env.LOG_LEVEL ?? 'info', base: { member: route } });
export const maxAge = Number(env.MAX_AGE ?? 7_200_000);

export function chaosCluster(): SessionCluster {
  return createSessionCluster({
    route,
    mode: (env.MODE ?? 'backup') as 'backup' | 'delta',
    ack: 'sync',
    secret: env.CLUSTER_SECRET ?? 'chaos-secret-0123456789',
    clusterName: env.CLUSTER_NAME ?? 'chaos',
    membership: {
      multicast: {
        address: env.MCAST_ADDRESS ?? '228.0.0.4',
        port: Number(env.MCAST_PORT ?? 45564),
        interface: env.MCAST_INTERFACE ?? '127.0.0.1',
        frequency: Number(env.MCAST_FREQUENCY ?? 200),
        dropTime: Number(env.MCAST_DROP ?? 1500),
      },
    },
    receiver: { host: env.RECEIVER_HOST ?? '127.0.0.1', port: Number(env.RECEIVER_PORT ?? 0) },
    logger,
    // Each client is one user: its second device's session is revoked from its first (POST /revoke-others).
    principal: (s) => (typeof s.user === 'string' ? s.user : undefined),
  });
}

/** Starts the cluster, then serves `server`; stops gracefully on SIGTERM. */
export async function serveMember(cluster: SessionCluster, server: Server): Promise<void> {
  await cluster.start();
  server.keepAliveTimeout = 1000;
  server.listen(Number(env.PORT ?? 0), env.HTTP_HOST ?? '127.0.0.1', () => {
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const self = cluster.members().find((m) => m.self)!;
    process.stdout.write(JSON.stringify({ event: 'listening', route, port, receiver: self.port, id: self.id }) + '\n');
  });
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    void cluster.stop().then(() => {
      process.stdout.write(JSON.stringify({ event: 'stopped', route }) + '\n');
      process.exit(0);
    });
  });
}
