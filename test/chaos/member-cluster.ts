/**
 * What the chaos run's members share, whatever their framework (member.ts: Koa, member-express.ts,
 * member-fastify.ts): the cluster configured by environment, the counter the checker reads, the
 * session cookie's name, and the lifecycle (print `{"event":"listening",...}` when serving; on
 * SIGTERM close the HTTP server, leave gracefully and print `{"event":"stopped"}`).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { pino } from 'pino';
import { createSessionCluster, type SessionCluster } from '../../src/index.js';
import { unpackEntries, type Packed } from '../../src/replication/packed-entries.js';
import { SessionTable, type SessionEntry } from '../../src/replication/session-table.js';

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
    // --backups K, --zones Z, --expected-members N of the chaos run (absent: the library's defaults).
    ...(env.BACKUPS !== undefined ? { backups: Number(env.BACKUPS) } : {}),
    ...(env.ZONE !== undefined ? { zone: env.ZONE } : {}),
    ...(env.EXPECTED_MEMBERS !== undefined ? { expectedMembers: Number(env.EXPECTED_MEMBERS) } : {}),
    logger,
    // Each client is one user: its second device's session is revoked from its first (POST /revoke-others).
    principal: (s) => (typeof s.user === 'string' ? s.user : undefined),
  });
}

/**
 * The manager's session table, for the run's per-session copy check (`GET /chaos/copies`). The cluster
 * keeps it private, so the status call that counts it (`census` walks `table.held()`) hands it over
 * here: a test-only hook on the prototype, which leaves what the table does unchanged.
 */
let table: SessionTable | undefined;
const remember = (t: SessionTable) => (table = t);
const held = Object.getOwnPropertyDescriptor(SessionTable.prototype, 'held')!.value as (this: SessionTable) => IterableIterator<SessionEntry>;
SessionTable.prototype.held = function (this: SessionTable) {
  remember(this);
  return held.call(this);
};

/** One copy a member holds, as `GET /chaos/copies` lists it (the run compares them per session). */
export interface ChaosCopy {
  base: string;
  role: string;
  owner: string;
  epoch: number;
  version: number;
  /** The backups a primary names (comma-joined routes), or ''. */
  backup: string;
  unverified: boolean;
  resync: boolean;
  /** A hash of the session's keys and their encoded values: copies holding the same values have the same hash. */
  content: string;
}

/** A hash of a session's values, whatever order its keys were packed in (deltas and whole copies differ there). */
function contentHash(packed: Packed): string {
  const h = createHash('sha1');
  for (const { key, value } of unpackEntries(packed).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    h.update(`${key.length}:${key}:${value.length}:`).update(value);
  }
  return h.digest('base64').slice(0, 12);
}

/** Every live copy this member holds. */
function copies(cluster: SessionCluster): ChaosCopy[] {
  cluster.status(); // walks table.held(): makes sure `table` is this cluster's
  if (table === undefined) return [];
  const now = table.now();
  const out: ChaosCopy[] = [];
  for (const e of table.held()) {
    if (e.expire <= now) continue;
    out.push({
      base: e.base,
      role: e.role,
      owner: e.owner,
      epoch: e.epoch,
      version: e.version,
      backup: e.backup ?? '',
      unverified: e.unverified === true,
      resync: e.resync === true,
      content: contentHash(e.packed),
    });
  }
  return out;
}

/**
 * `GET /chaos/copies` answered before the framework sees the request (the same for Koa, Express and
 * Fastify members): `{ route, copies }`. Test-only: the library has no such route.
 */
function withCopiesRoute(cluster: SessionCluster, server: Server): void {
  const handlers = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.url !== '/chaos/copies') {
      for (const h of handlers) h.call(server, req, res);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ route, copies: copies(cluster) }));
  });
}

/** Starts the cluster, then serves `server`; stops gracefully on SIGTERM. */
export async function serveMember(cluster: SessionCluster, server: Server): Promise<void> {
  await cluster.start();
  withCopiesRoute(cluster, server);
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
