/**
 * Options of `createSessionCluster`, validated by zod (the validator koa-session itself uses).
 * Every failure becomes a `ClusterOptionsError` naming the option and what was expected.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import type { Logger } from 'pino';
import { DEFAULT_PREAUTH_LIMITS } from './cluster/admission.js';
import { ClusterOptionsError } from './errors.js';

/** Routes are the id suffix after the last dot, so they can never contain one. */
export const ROUTE_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;

const port = (what: string) =>
  z
    .number({ invalid_type_error: `expected ${what} as an integer from 0 to 65535` })
    .int(`expected ${what} as an integer from 0 to 65535`)
    .min(0, `expected ${what} as an integer from 0 to 65535`)
    .max(65535, `expected ${what} as an integer from 0 to 65535`);

const positiveMs = (what: string, dflt: number) =>
  z
    .number({ invalid_type_error: `expected ${what} in milliseconds (a positive integer)` })
    .int(`expected ${what} in milliseconds (a positive integer)`)
    .positive(`expected ${what} in milliseconds (a positive integer)`)
    .default(dflt);

function isMulticastV4(address: string): boolean {
  if (isIP(address) !== 4) return false;
  const first = Number(address.split('.')[0]);
  return first >= 224 && first <= 239;
}

const hostPort = z.string().refine(
  (s) => {
    const m = /^(.+):(\d{1,5})$/.exec(s);
    return m !== null && Number(m[2]) > 0 && Number(m[2]) <= 65535 && m[1].length > 0;
  },
  { message: 'expected "host:port" with a port from 1 to 65535' },
);

const multicastSchema = z
  .object({
    address: z
      .string({ required_error: 'expected a multicast group address such as "228.0.0.4"' })
      .refine(isMulticastV4, { message: 'expected an IPv4 multicast address in 224.0.0.0/4, e.g. "228.0.0.4"' }),
    port: port('the multicast port').refine((p) => p > 0, { message: 'expected a port from 1 to 65535' }),
    interface: z
      .string({ required_error: 'expected the IPv4 address of the interface to send and receive heartbeats on, e.g. "127.0.0.1"' })
      .refine((a) => isIP(a) === 4, { message: 'expected the IPv4 address of a local interface, e.g. "127.0.0.1"' }),
    frequency: positiveMs('the heartbeat interval', 500),
    dropTime: positiveMs('the silence after which a member is dropped', 3000),
    ttl: z.number().int().min(0).max(255).default(1),
  })
  .strict()
  .refine((m) => m.dropTime > m.frequency, {
    message: 'expected dropTime to be longer than frequency, or every member is dropped between heartbeats',
    path: ['dropTime'],
  });

/** A DNS server as Node's `Resolver.setServers` takes it: `ip`, `ipv4:port` or `[ipv6]:port`. */
function isDnsServer(s: string): boolean {
  if (isIP(s) !== 0) return true;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (m === null) return false;
  const p = Number(m[3]);
  return p > 0 && p <= 65535 && (m[1] !== undefined ? isIP(m[1]) === 6 : isIP(m[2]) === 4);
}

const dnsSchema = z
  .object({
    name: z.string().min(1, 'expected a DNS name whose A or AAAA records are the members'),
    port: port('the members\' receiver port').refine((p) => p > 0, { message: 'expected a port from 1 to 65535' }),
    interval: positiveMs('the re-resolution interval', 5000),
    /** A records (4), AAAA (6), or both ('any'). */
    family: z
      .union([z.literal(4), z.literal(6), z.literal('any')], {
        errorMap: () => ({ message: 'expected 4 (A records), 6 (AAAA records) or "any" (both)' }),
      })
      .default(4),
    /** DNS servers to ask instead of the system's resolver configuration (/etc/resolv.conf). */
    servers: z
      .array(
        z.string().refine(isDnsServer, {
          message: 'expected a DNS server\'s IP address, optionally with a port: "10.96.0.10", "10.96.0.10:53" or "[fd00::a]:53" (no host names)',
        }),
      )
      .min(1, 'expected at least one DNS server, or leave servers out to use the system\'s resolver')
      .optional(),
  })
  .strict();

const membershipSchema = z
  .object({
    multicast: multicastSchema.optional(),
    static: z.array(hostPort).min(1, 'expected at least one "host:port"').optional(),
    dns: dnsSchema.optional(),
    /** Liveness for static/DNS peers: TCP heartbeat interval and silence before suspicion. */
    frequency: positiveMs('the TCP heartbeat interval', 500),
    dropTime: positiveMs('the silence after which a member is suspected', 3000),
  })
  .strict()
  .refine((m) => [m.multicast, m.static, m.dns].filter((x) => x !== undefined).length === 1, {
    message: 'expected exactly one of membership.multicast, membership.static or membership.dns',
  });

const count = (what: string, max: number) =>
  z
    .number({ invalid_type_error: `expected ${what} as an integer from 1 to ${max}` })
    .int(`expected ${what} as an integer from 1 to ${max}`)
    .min(1, `expected ${what} as an integer from 1 to ${max}`)
    .max(max, `expected ${what} as an integer from 1 to ${max}`);

const preauthSchema = z
  .object({
    timeout: z
      .number({ invalid_type_error: 'expected the time a new connection has to authenticate, in ms from 100 to 60000' })
      .int('expected an integer number of ms from 100 to 60000')
      .min(100, 'expected at least 100 ms: a member must get its hello through a round trip and a busy event loop')
      .max(60_000, 'expected at most 60000 ms: longer lets strangers hold slots for nothing')
      .default(DEFAULT_PREAUTH_LIMITS.timeout),
    maxFrameBytes: z
      .number({ invalid_type_error: 'expected the largest frame before authentication in bytes, from 1024 to 1048576' })
      .int('expected an integer number of bytes from 1024 to 1048576')
      .min(1024, 'expected at least 1024 bytes: the hello (a member record and the cluster name) must fit')
      .max(1024 * 1024, 'expected at most 1048576 bytes (1 MiB): whoever has not authenticated may make us buffer this much per connection')
      .default(DEFAULT_PREAUTH_LIMITS.maxFrameBytes),
    maxPerSource: count('the unauthenticated connections one address may hold', 4096).default(DEFAULT_PREAUTH_LIMITS.maxPerSource),
    maxUnauthenticated: count('the unauthenticated connections non-members may hold in all', 65_536).default(
      DEFAULT_PREAUTH_LIMITS.maxUnauthenticated,
    ),
  })
  .strict()
  .default({});

const isClass = (v: unknown): v is abstract new (...args: never[]) => object =>
  typeof v === 'function' && typeof (v as { prototype?: unknown }).prototype === 'object';

const typeSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an Avro name: letters, digits and _'),
    type: z.custom<abstract new (...args: never[]) => object>(isClass, { message: 'expected the class itself' }),
    schema: z.record(z.unknown()).optional(),
    fields: z.array(z.string().min(1)).min(1).optional(),
    revive: z
      .custom<(fields: Record<string, unknown>) => object>((v) => typeof v === 'function', {
        message: 'expected a function (fields) => instance',
      })
      .optional(),
  })
  .strict()
  .refine((t) => (t.schema === undefined) !== (t.fields === undefined), {
    message: 'expected exactly one of schema (an Avro record schema) or fields (a list of field names)',
  });

const loggerSchema = z.custom<Logger>(
  (v) =>
    typeof v === 'object' &&
    v !== null &&
    ['info', 'warn', 'error', 'debug', 'child'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function'),
  { message: 'expected a pino logger (an object with info, warn, error, debug and child)' },
);

const oneSecretSchema = z
  .union([z.string(), z.instanceof(Buffer)], {
    errorMap: () => ({ message: 'expected a string or Buffer of at least 16 bytes, or a list of them (set CLUSTER_SECRET)' }),
  })
  .refine((s) => Buffer.byteLength(s) >= 16, {
    message: 'expected at least 16 bytes; use a long random secret shared by every member',
  });

/**
 * One secret, or the secrets of a rotation: the first signs what this member sends, every one is
 * accepted (README "Operations": rotate in three rolling restarts).
 */
const secretSchema = z.union(
  [
  oneSecretSchema,
  z
    .array(oneSecretSchema, { errorMap: () => ({ message: 'expected a string or Buffer of at least 16 bytes, or a list of them (set CLUSTER_SECRET)' }) })
    .min(1, 'expected at least one secret in the list (the first is sent with)')
    .max(4, 'expected at most 4 secrets (the current one, the next, and old ones being retired)'),
  ],
  { errorMap: () => ({ message: 'expected a string or Buffer of at least 16 bytes, or a list of them (set CLUSTER_SECRET)' }) },
);

/** The zod schema of every option; exported for tooling, use `parseOptions` in code. */
export const optionsSchema = z
  .object({
    route: z
      .string({ required_error: 'expected this member\'s route name, e.g. "node1"' })
      .regex(ROUTE_PATTERN, 'expected 1 to 32 of A-Z a-z 0-9 _ - (no dots: the route is the session id\'s suffix)'),
    mode: z.enum(['backup', 'delta'], { errorMap: () => ({ message: 'expected "backup" or "delta"' }) }).default('backup'),
    secret: secretSchema,
    encrypt: z.boolean().default(false),
    ack: z.enum(['sync', 'async'], { errorMap: () => ({ message: 'expected "sync" or "async"' }) }).default('sync'),
    clusterName: z.string().min(1).max(64).default('koa-session-cluster'),
    membership: membershipSchema,
    receiver: z
      .object({
        host: z.string().min(1, 'expected a host or address to listen on').default('127.0.0.1'),
        port: port('the receiver port'),
        /** Address peers should use, when it differs from the bound host (e.g. 0.0.0.0). */
        advertise: z.string().min(1).optional(),
        /** Limits on connections that have not authenticated yet (what an outsider can hold). */
        preauth: preauthSchema,
      })
      .strict(),
    logger: loggerSchema.optional(),
    types: z.array(typeSchema).default([]),
    sessionSchema: z.record(z.unknown()).optional(),
    maxSessionBytes: z.number().int().positive().default(1024 * 1024),
    maxFrameBytes: z.number().int().min(1024).default(8 * 1024 * 1024),
    ackTimeout: positiveMs('the acknowledgement timeout', 5000),
    stateTransferTimeout: positiveMs('the state transfer timeout', 60_000),
    /** Sessions per page of a delta-mode state transfer. */
    stateTransferBatch: z.number().int().min(1).max(5000).default(2000),
    /** Sessions re-protected (copied to a new backup) per second after a member is lost. */
    reprotectRate: z.number().int().positive().default(5000),
    /**
     * Sessions a primary keeps decoded besides their encoded copy, the most recently read (0: none).
     * Decoding costs about ten times the copy a request needs; memory is at most this many sessions.
     */
    decodedCache: z.number().int().min(0).default(10_000),
    /**
     * Per client address (`ctx.ip`; set `app.proxy` behind a balancer): how many session ids that no
     * member holds it may send at once (`burst`) and per second, before the route binder answers 503.
     */
    unknownIds: z
      .object({ burst: z.number().int().min(1).default(100), perSecond: z.number().positive().default(20) })
      .strict()
      .default({}),
    /** Whose a session is, e.g. `(s) => s.user?.id`: indexes sessions by user (`sessionsOf`, `destroySessions`). */
    principal: z
      .custom<(session: Record<string, unknown>) => string | number | undefined>((v) => typeof v === 'function', {
        message: 'expected a function (session) => string | undefined, e.g. (s) => s.user?.id',
      })
      .optional(),
    /** At most this many sessions per principal in the whole cluster (needs `principal`). */
    maxSessionsPerPrincipal: count('the sessions one principal may have', 1_000_000).optional(),
    /** At the cap: destroy the principal's oldest session, or refuse the login with `SessionLimitError` (409). */
    onSessionLimit: z
      .enum(['destroy-oldest', 'refuse'], { errorMap: () => ({ message: 'expected "destroy-oldest" or "refuse"' }) })
      .default('destroy-oldest'),
    /**
     * Backup mode: each session has one primary and this many backups, on distinct members (and zones
     * first). Sessions survive this many simultaneous member failures. More than the live members can
     * hold is a warning and `sessions.underReplicated`, not an error.
     */
    backups: z
      .number({ invalid_type_error: 'expected the number of backups per session as an integer from 1 to 8' })
      .int('expected the number of backups per session as an integer from 1 to 8')
      .min(1, 'expected the number of backups per session as an integer from 1 to 8 (delta mode holds every session everywhere)')
      .max(8, 'expected the number of backups per session as an integer from 1 to 8')
      .default(1),
    /** This member's failure domain (a zone, a rack, a host): a session's copies go to distinct zones first. */
    zone: z
      .string({ invalid_type_error: 'expected the zone as a string, e.g. "eu-west-1a" or the node name' })
      .regex(/^[\x21-\x7e]{1,64}$/, 'expected 1 to 64 printable characters without spaces, e.g. "eu-west-1a"')
      .optional(),
    /**
     * The cluster's size: a member serves only while a strict majority of it answers, so no partition,
     * however long, lets two sides serve, and a member started cut off serves nothing. Derived from a
     * static list when not given; without it (multicast, DNS) the majority is of the members seen.
     */
    expectedMembers: count('the number of members the cluster has', 1000).optional(),
    /**
     * Sessions this member holds at most, primaries and copies together (`replication/capacity.ts`).
     * New primaries stop earlier, at the planned level that leaves room for a failed member's share.
     * Default: half the heap limit over the measured heap cost of one session, logged at start.
     */
    maxSessions: z
      .number({ invalid_type_error: 'expected maxSessions, the sessions one member holds (primaries and copies), as an integer from 100 to 100000000' })
      .int('expected maxSessions as an integer from 100 to 100000000')
      .min(100, 'expected maxSessions of at least 100: a member must hold its share of the sessions and the copies of a failed member\'s')
      .max(100_000_000, 'expected maxSessions as an integer from 100 to 100000000')
      .optional(),
    /** At capacity: refuse the new session (503, Retry-After), or destroy the least recently used idle one first. */
    onCapacity: z
      .enum(['refuse', 'evict-idle'], { errorMap: () => ({ message: 'expected onCapacity "refuse" or "evict-idle"' }) })
      .default('refuse'),
    /** `onCapacity: 'evict-idle'`: only sessions unused for this many ms are evicted. */
    evictIdleAfter: z
      .number({ invalid_type_error: 'expected evictIdleAfter, the idle time before a session may be evicted, in milliseconds from 1000' })
      .int('expected evictIdleAfter in whole milliseconds, at least 1000')
      .min(1000, 'expected evictIdleAfter of at least 1000 ms: a session in use between two clicks must not be evicted')
      .default(10 * 60 * 1000),
    /**
     * Median event-loop delay (ms, over half a second, for a second in a row) past which new sessions
     * are refused (503) so existing ones keep being served; 0: never.
     */
    maxEventLoopDelay: z
      .number({ invalid_type_error: 'expected maxEventLoopDelay in milliseconds (0 turns load shedding off)' })
      .int('expected maxEventLoopDelay in whole milliseconds (0 turns load shedding off)')
      .min(0, 'expected maxEventLoopDelay of 0 (off) or more milliseconds')
      .default(250),
    /** A session ends this many ms after its creation, however active. */
    absoluteMaxAge: z
      .number({ invalid_type_error: 'expected the absolute session lifetime in milliseconds (a positive integer)' })
      .int('expected the absolute session lifetime in milliseconds (a positive integer)')
      .positive('expected the absolute session lifetime in milliseconds (a positive integer)')
      .optional(),
  })
  .strict()
  .refine((o) => o.backups === 1 || o.mode === 'backup', {
    message: 'expected backups only in backup mode: delta mode holds every session on every member',
    path: ['backups'],
  })
  .refine((o) => o.maxSessionsPerPrincipal === undefined || o.principal !== undefined, {
    message: 'expected the principal option too: the cap counts the sessions of each principal',
    path: ['maxSessionsPerPrincipal'],
  });

/** Options as the user writes them. */
export type SessionClusterOptions = z.input<typeof optionsSchema>;
/** Options after validation, defaults filled in. */
export type ResolvedOptions = z.output<typeof optionsSchema>;
// The codec declares the shape (it may not import options); re-exported for the public API.
export type { RegisteredType } from './codec/types.js';

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Buffer.isBuffer(value)) return `a Buffer of ${value.length} bytes`;
  return typeof value;
}

function valueAt(input: unknown, path: (string | number)[]): unknown {
  let v: unknown = input;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[k];
  }
  return v;
}

/**
 * Validates user options and fills defaults.
 * @throws ClusterOptionsError naming the first offending option.
 */
export function parseOptions(input: unknown): ResolvedOptions {
  if (input === null || typeof input !== 'object') {
    throw new ClusterOptionsError('options', 'createSessionCluster: expected an options object');
  }
  const result = optionsSchema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const option = issue.path.length > 0 ? issue.path.join('.') : 'options';
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const where = issue.path.length > 0 ? `${option}.` : '';
    throw new ClusterOptionsError(
      `${where}${issue.keys[0]}`,
      `createSessionCluster: unknown option ${where}${issue.keys.join(`, ${where}`)}; check its spelling against the README's options table`,
    );
  }
  if (issue.code === 'invalid_type' && issue.received === 'undefined') {
    message = message === 'Required' ? 'is required' : message;
  }
  throw new ClusterOptionsError(
    option,
    `createSessionCluster: option ${option}: ${message}, got ${describe(valueAt(input, issue.path))}`,
  );
}
