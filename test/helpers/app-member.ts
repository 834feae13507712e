/**
 * A member process for the replication tests: a real Koa app with real koa-session and the cluster,
 * configured by environment. Prints `{"event":"listening",...}` when it serves and `{"event":"ready"}` once `cluster.ready()` resolved; on SIGTERM it closes
 * the HTTP server, leaves the cluster gracefully and prints `{"event":"stopped"}`.
 */
import { createServer } from 'node:http';
import Koa from 'koa';
import session from 'koa-session';
import { pino } from 'pino';
import { createSessionCluster } from '../../src/index.js';
import { sessionSchemaFor } from './session-schemas.js';

/** The seed's TestUser, registered: it must come back as a TestUser on any member. */
export class TestUser {
  constructor(
    public id: number,
    public name: string,
  ) {}
  greeting(): string {
    return `hello ${this.name}`;
  }
}

/** A class nobody registered: storing it must fail loudly. */
export class Avatar {
  constructor(public url: string) {}
}

const env = process.env;
const route = env.ROUTE ?? 'node1';
const logger = pino({ level: env.LOG_LEVEL ?? 'info', base: { member: route } });
const dnsMembership = () => ({
  name: env.DNS_NAME!,
  port: Number(env.DNS_PORT),
  family: env.DNS_FAMILY === 'any' ? ('any' as const) : env.DNS_FAMILY === '6' ? (6 as const) : (4 as const),
  ...(env.DNS_SERVERS !== undefined ? { servers: env.DNS_SERVERS.split(',') } : {}),
});
const membership =
  env.STATIC_MEMBERS !== undefined
    ? { static: env.STATIC_MEMBERS.split(',') }
    : env.DNS_NAME !== undefined
      ? { dns: dnsMembership() }
      : {
        multicast: {
          address: env.MCAST_ADDRESS ?? '228.0.0.4',
          port: Number(env.MCAST_PORT ?? 45564),
          interface: env.MCAST_INTERFACE ?? '127.0.0.1',
          frequency: Number(env.MCAST_FREQUENCY ?? 200),
          dropTime: Number(env.MCAST_DROP ?? 1500),
        },
      };
const cluster = createSessionCluster({
  route,
  mode: (env.MODE ?? 'backup') as 'backup' | 'delta',
  ack: (env.ACK ?? 'sync') as 'sync' | 'async',
  // CLUSTER_SECRETS=a,b: a rotation's list (sends with a, accepts both).
  secret: env.CLUSTER_SECRETS !== undefined ? env.CLUSTER_SECRETS.split(',') : (env.CLUSTER_SECRET ?? 'test-secret-0123456789'),
  encrypt: env.ENCRYPT === '1',
  clusterName: env.CLUSTER_NAME ?? 'test',
  membership,
  receiver: {
    host: env.RECEIVER_HOST ?? '127.0.0.1',
    port: Number(env.RECEIVER_PORT ?? 0),
    ...(env.RECEIVER_ADVERTISE !== undefined ? { advertise: env.RECEIVER_ADVERTISE } : {}),
  },
  // REGISTER_AVATAR=1: a newer release of the app that registered Avatar (older members have not).
  types: [{ name: 'TestUser', type: TestUser, fields: ['id', 'name'] }, ...(env.REGISTER_AVATAR === '1' ? [{ name: 'Avatar', type: Avatar, fields: ['url'] }] : [])],
  reprotectRate: Number(env.REPROTECT_RATE ?? 5000),
  maxSessionBytes: Number(env.MAX_SESSION_BYTES ?? 1024 * 1024),
  stateTransferBatch: Number(env.STATE_TRANSFER_BATCH ?? 500),
  // SESSION_SCHEMA=v1|v2: one of the two versions of the app's session schema (session-schemas.ts).
  sessionSchema: sessionSchemaFor(env.SESSION_SCHEMA),
  logger,
  // PRINCIPAL=1: sessions are indexed by their user's id (sessionsOf, destroySessions, the cap).
  ...(env.PRINCIPAL === '1' ? { principal: (s: Record<string, unknown>) => (s.user as TestUser | undefined)?.id } : {}),
  ...(env.MAX_SESSIONS !== undefined ? { maxSessionsPerPrincipal: Number(env.MAX_SESSIONS) } : {}),
  ...(env.ON_LIMIT !== undefined ? { onSessionLimit: env.ON_LIMIT as 'refuse' | 'destroy-oldest' } : {}),
  ...(env.ABSOLUTE_MAX_AGE !== undefined ? { absoluteMaxAge: Number(env.ABSOLUTE_MAX_AGE) } : {}),
  ...(env.EXPECTED_MEMBERS !== undefined ? { expectedMembers: Number(env.EXPECTED_MEMBERS) } : {}),
  ...(env.BACKUPS !== undefined ? { backups: Number(env.BACKUPS) } : {}),
  ...(env.ACK_TIMEOUT !== undefined ? { ackTimeout: Number(env.ACK_TIMEOUT) } : {}),
  ...(env.ZONE !== undefined ? { zone: env.ZONE } : {}),
  // Capacity (issue 26): CAPACITY unset leaves maxSessions to the heap-derived default.
  ...(env.CAPACITY !== undefined ? { maxSessions: Number(env.CAPACITY) } : {}),
  ...(env.ON_CAPACITY !== undefined ? { onCapacity: env.ON_CAPACITY as 'refuse' | 'evict-idle' } : {}),
  ...(env.EVICT_IDLE_AFTER !== undefined ? { evictIdleAfter: Number(env.EVICT_IDLE_AFTER) } : {}),
  ...(env.MAX_EVENT_LOOP_DELAY !== undefined ? { maxEventLoopDelay: Number(env.MAX_EVENT_LOOP_DELAY) } : {}),
});
// Every session event, one JSON line: tests count them across members.
for (const name of ['sessionCreated', 'sessionDestroyed', 'sessionExpired'] as const) {
  cluster.on(name, (e) => process.stdout.write(JSON.stringify({ event: 'session-event', name, ...e }) + '\n'));
}

const app = new Koa();
app.keys = ['test-cookie-key'];
app.proxy = true;
app.silent = true;
app.on('error', (err: Error & { code?: string }) => logger.warn({ code: err.code, msg: err.message }, 'request failed'));
const sessionConfig = { store: cluster.store, genid: cluster.genid, maxAge: Number(env.MAX_AGE ?? 3_600_000) };

async function readJson(req: NodeJS.ReadableStream): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return text.length > 0 ? (JSON.parse(text) as Record<string, unknown>) : {};
}

app.use(cluster.statusRouter().routes());
app.use(cluster.routeBinder());
app.use(session(sessionConfig, app));
app.use(async (ctx) => {
  const s = ctx.session!;
  const delay = Number(ctx.query.delay ?? 0);
  const sleep = () => new Promise((r) => setTimeout(r, delay));
  switch (`${ctx.method} ${ctx.path}`) {
    case 'POST /login': {
      const body = await readJson(ctx.req);
      s.user = new TestUser(Number(body.id ?? 1), typeof body.name === 'string' ? body.name : 'alice');
      break;
    }
    case 'POST /set': {
      const body = await readJson(ctx.req);
      if (delay > 0) await sleep();
      Object.assign(s, body);
      break;
    }
    case 'POST /date': {
      s.when = new Date(String((await readJson(ctx.req)).when));
      break;
    }
    case 'POST /unregistered':
      s.user = { profile: { avatar: new Avatar('x.png') } };
      break;
    case 'POST /incr': {
      const key = String(ctx.query.key ?? 'n');
      const before = typeof s[key] === 'number' ? (s[key]) : 0;
      if (delay > 0) await sleep();
      s[key] = before + 1;
      break;
    }
    case 'POST /unset':
      delete s[String(ctx.query.key)];
      break;
    case 'POST /logout':
      ctx.session = null;
      ctx.body = { route, loggedOut: true };
      return;
    case 'POST /regenerate':
      await s.regenerate(); // koa-session 7: a new id now, the data kept
      s.regenerated = true;
      break;
    case 'GET /get':
      break;
    case 'GET /sessions':
    case 'POST /revoke-others': {
      const user = s.user as TestUser | undefined;
      if (user === undefined) {
        ctx.status = 401;
        return;
      }
      const id = ctx.cookies.get('koa.sess') ?? '';
      if (ctx.method === 'POST') ctx.body = { destroyed: await cluster.destroySessions(String(user.id), { except: id }) };
      else ctx.body = { route, current: cluster.handleOf(id), sessions: await cluster.sessionsOf(String(user.id)) };
      return;
    }
    case 'POST /destroy-all':
      ctx.body = { destroyed: await cluster.destroySessions(String(ctx.query.principal)) };
      return;
    case 'GET /sessions-of':
      ctx.body = { route, sessions: await cluster.sessionsOf(String(ctx.query.principal)) };
      return;
    default:
      ctx.status = 404;
      return;
  }
  const user = ctx.session?.user as TestUser | undefined;
  ctx.body = {
    route,
    session: ctx.session?.toJSON(),
    isTestUser: user instanceof TestUser,
    greeting: user instanceof TestUser ? user.greeting() : null,
    whenIsDate: ctx.session?.when instanceof Date,
  };
});

await cluster.start();
const server = createServer(app.callback());
server.keepAliveTimeout = 1000;
server.listen(Number(env.PORT ?? 0), env.HTTP_HOST ?? '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const self = cluster.members().find((m) => m.self)!;
  process.stdout.write(JSON.stringify({ event: 'listening', route, port, receiver: self.port }) + '\n');
});
// What a readiness probe waits for: a majority met and, in delta mode, the state pulled.
void cluster.ready().then(() => process.stdout.write(JSON.stringify({ event: 'ready', route }) + '\n'));

process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void cluster.stop().then(() => {
    process.stdout.write(JSON.stringify({ event: 'stopped', route }) + '\n');
    process.exit(0);
  });
});
