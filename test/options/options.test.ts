import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createSessionCluster, ClusterOptionsError, type SessionClusterOptions } from '../../src/index.js';
import { parseOptions } from '../../src/options.js';

const valid: SessionClusterOptions = {
  route: 'node1',
  secret: 'a-secret-of-enough-length',
  membership: { multicast: { address: '228.0.0.4', port: 45564, interface: '127.0.0.1' } },
  receiver: { host: '127.0.0.1', port: 4001 },
  logger: pino({ level: 'silent' }),
};

/** Applies `patch` to a deep copy of the valid options (undefined deletes a key). */
function withPatch(path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone({ ...valid, logger: undefined }) as Record<string, unknown>;
  copy.logger = valid.logger;
  const keys = path.split('.');
  let at: Record<string, unknown> = copy;
  for (const k of keys.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
  const last = keys[keys.length - 1];
  if (value === undefined) delete at[last];
  else at[last] = value;
  return copy;
}

function expectOptionError(options: unknown, option: string, pattern: RegExp): void {
  assert.throws(
    () => createSessionCluster(options as SessionClusterOptions),
    (err: unknown) => {
      assert.ok(err instanceof ClusterOptionsError, `expected ClusterOptionsError, got ${String(err)}`);
      assert.equal(err.code, 'ERR_CLUSTER_OPTIONS');
      assert.equal(err.option, option);
      assert.match(err.message, new RegExp(option.replace(/\./g, '\\.')));
      assert.match(err.message, pattern);
      return true;
    },
  );
}

test('valid options make a cluster with the documented defaults', () => {
  const cluster = createSessionCluster(valid);
  assert.equal(cluster.route, 'node1');
  assert.equal(cluster.mode, 'backup');
  assert.equal(typeof cluster.genid, 'function');
  assert.match(cluster.genid(), /^[A-Za-z0-9_-]{24}\.node1$/);
  assert.equal(typeof cluster.store.get, 'function');
});

const cases: [string, string, unknown, RegExp][] = [
  ['missing route', 'route', undefined, /required|route name/],
  ['route with a dot', 'route', 'node.1', /no dots/],
  ['route too long', 'route', 'n'.repeat(33), /1 to 32/],
  ['empty route', 'route', '', /1 to 32/],
  ['unknown mode', 'mode', 'replicated', /"backup" or "delta"/],
  ['missing secret', 'secret', undefined, /16 bytes/],
  ['secret shorter than 16 bytes', 'secret', 'short', /at least 16 bytes/],
  ['secret of the wrong type', 'secret', 1234567890123456, /string or Buffer/],
  ['empty list of secrets', 'secret', [], /at least one secret/],
  ['five secrets', 'secret', Array.from({ length: 5 }, (_, i) => `secret-number-${i}-of-five`), /at most 4/],
  ['encrypt not a boolean', 'encrypt', 'yes', /boolean/],
  ['unknown ack', 'ack', 'never', /"sync" or "async"/],
  ['multicast address outside 224.0.0.0/4', 'membership.multicast.address', '10.0.0.1', /224\.0\.0\.0\/4/],
  ['multicast address not an IP', 'membership.multicast.address', 'group', /224\.0\.0\.0\/4/],
  ['multicast port out of range', 'membership.multicast.port', 70000, /0 to 65535|1 to 65535/],
  ['multicast port zero', 'membership.multicast.port', 0, /1 to 65535/],
  ['multicast interface not an address', 'membership.multicast.interface', 'eth0', /IPv4 address/],
  ['missing multicast interface', 'membership.multicast.interface', undefined, /interface/],
  ['negative frequency', 'membership.multicast.frequency', -5, /positive integer/],
  ['dropTime shorter than frequency', 'membership.multicast.dropTime', 100, /longer than frequency/],
  ['receiver port out of range', 'receiver.port', 65536, /0 to 65535/],
  ['receiver port not an integer', 'receiver.port', 40.5, /integer/],
  ['receiver port a string', 'receiver.port', '4001', /integer/],
  ['unknown option', 'recieverr', 1, /unknown option/],
  ['unknown nested option', 'receiver.hots', 'x', /unknown option/],
  ['logger that is not pino', 'logger', console, /pino logger/],
  ['maxSessionBytes zero', 'maxSessionBytes', 0, /greater than 0|positive/i],
  ['unknownIds burst zero', 'unknownIds.burst', 0, /greater than or equal to 1|at least 1|>=\s*1/i],
  ['unknownIds perSecond negative', 'unknownIds.perSecond', -1, /greater than 0|positive/i],
];

for (const [name, path, value, pattern] of cases) {
  test(`rejects ${name}, naming ${path}`, () => {
    expectOptionError(withPatch(path, value), path, pattern);
  });
}

test('rejects membership with none or two of multicast, static and dns', () => {
  expectOptionError({ ...valid, membership: {} }, 'membership', /exactly one/);
  expectOptionError(
    { ...valid, membership: { multicast: valid.membership.multicast, static: ['127.0.0.1:4002'] } },
    'membership',
    /exactly one/,
  );
});

test('rejects a static member that is not host:port', () => {
  expectOptionError({ ...valid, membership: { static: ['127.0.0.1'] } }, 'membership.static.0', /host:port/);
  expectOptionError({ ...valid, membership: { static: ['127.0.0.1:0'] } }, 'membership.static.0', /1 to 65535/);
});

test('rejects dns membership without a name', () => {
  expectOptionError({ ...valid, membership: { dns: { name: '', port: 4001 } } }, 'membership.dns.name', /DNS name/);
});

test('dns membership: family (A by default, AAAA, both) and servers (addresses with optional ports), each validated', () => {
  const dns = (extra: Record<string, unknown>) => ({ ...valid, membership: { dns: { name: 'members.local', port: 4001, ...extra } } });
  const parsed = parseOptions(dns({})).membership.dns!;
  assert.equal(parsed.family, 4);
  assert.equal(parsed.servers, undefined, 'the system resolver unless servers are given');
  for (const family of [4, 6, 'any'] as const) assert.equal(parseOptions(dns({ family })).membership.dns!.family, family);
  const servers = ['10.96.0.10', '10.96.0.10:5353', 'fd00::a', '[fd00::a]:53'];
  assert.deepEqual(parseOptions(dns({ servers })).membership.dns!.servers, servers);
  expectOptionError(dns({ family: 'AAAA' }), 'membership.dns.family', /4 \(A records\), 6 \(AAAA records\) or "any"/);
  expectOptionError(dns({ servers: [] }), 'membership.dns.servers', /at least one DNS server/);
  expectOptionError(dns({ servers: ['kube-dns.kube-system'] }), 'membership.dns.servers.0', /IP address.*no host names/);
  expectOptionError(dns({ servers: ['10.96.0.10:0'] }), 'membership.dns.servers.0', /IP address/);
  expectOptionError(dns({ servers: ['fd00::a:53:x'] }), 'membership.dns.servers.0', /IP address/);
});

test('rejects a registered type that is not a class or has neither schema nor fields', () => {
  class Profile {}
  expectOptionError({ ...valid, types: [{ name: 'Profile', type: 'Profile', fields: ['a'] }] }, 'types.0.type', /class/);
  expectOptionError({ ...valid, types: [{ name: 'Profile', type: Profile }] }, 'types.0', /schema .* or fields/);
  expectOptionError({ ...valid, types: [{ name: 'Pro file', type: Profile, fields: ['a'] }] }, 'types.0.name', /Avro name/);
});

test('rejects options that are not an object', () => {
  expectOptionError(undefined, 'options', /options object/);
  expectOptionError('node1', 'options', /options object/);
});

test('accepts static and dns membership and the delta mode', () => {
  assert.equal(createSessionCluster({ ...valid, mode: 'delta', membership: { static: ['127.0.0.1:4002'] } }).mode, 'delta');
  assert.equal(createSessionCluster({ ...valid, membership: { dns: { name: 'members.local', port: 4001 } } }).route, 'node1');
});

test('receiver.preauth: documented defaults, and each limit validated with its name', () => {
  assert.deepEqual(parseOptions(valid).receiver.preauth, { timeout: 1000, maxFrameBytes: 4096, maxPerSource: 16, maxUnauthenticated: 128 });
  const custom = parseOptions({ ...valid, receiver: { ...valid.receiver, preauth: { timeout: 500, maxPerSource: 4 } } }).receiver.preauth;
  assert.deepEqual(custom, { timeout: 500, maxFrameBytes: 4096, maxPerSource: 4, maxUnauthenticated: 128 });
  const bad: [string, unknown, RegExp][] = [
    ['timeout', 50, /at least 100 ms/],
    ['timeout', 120_000, /at most 60000/],
    ['maxFrameBytes', 512, /hello .* must fit/],
    ['maxFrameBytes', 8 * 1024 * 1024, /at most 1048576/],
    ['maxPerSource', 0, /integer from 1/],
    ['maxUnauthenticated', 2.5, /integer/],
    ['maxUnauthenticated', '64', /integer/],
  ];
  for (const [k, v, pattern] of bad) {
    expectOptionError({ ...valid, receiver: { ...valid.receiver, preauth: { [k]: v } } }, `receiver.preauth.${k}`, pattern);
  }
  expectOptionError({ ...valid, receiver: { ...valid.receiver, preauth: { maxConnections: 5 } } }, 'receiver.preauth.maxConnections', /unknown option/);
});

test('sessions by user: principal, maxSessionsPerPrincipal, onSessionLimit and absoluteMaxAge are validated', () => {
  const ok = parseOptions({ ...valid, principal: (s: Record<string, unknown>) => String(s.user), maxSessionsPerPrincipal: 3, absoluteMaxAge: 3_600_000 });
  assert.equal(ok.onSessionLimit, 'destroy-oldest');
  assert.equal(ok.maxSessionsPerPrincipal, 3);
  expectOptionError({ ...valid, principal: 'user.id' }, 'principal', /expected a function/);
  expectOptionError({ ...valid, maxSessionsPerPrincipal: 2 }, 'maxSessionsPerPrincipal', /principal option too/);
  expectOptionError({ ...valid, principal: () => 'x', maxSessionsPerPrincipal: 0 }, 'maxSessionsPerPrincipal', /integer from 1/);
  expectOptionError({ ...valid, principal: () => 'x', onSessionLimit: 'kick' }, 'onSessionLimit', /"destroy-oldest" or "refuse"/);
  expectOptionError({ ...valid, absoluteMaxAge: -5 }, 'absoluteMaxAge', /positive integer/);
  expectOptionError({ ...valid, absoluteMaxAge: 1.5 }, 'absoluteMaxAge', /positive integer/);
});

test('secret: a list of secrets (a rotation) is accepted; a short one in it is named by its index', () => {
  assert.deepEqual(parseOptions({ ...valid, secret: ['the-new-cluster-secret-4567', 'the-old-cluster-secret-0123'] }).secret, [
    'the-new-cluster-secret-4567',
    'the-old-cluster-secret-0123',
  ]);
  expectOptionError({ ...valid, secret: ['the-new-cluster-secret-4567', 'short'] }, 'secret.1', /at least 16 bytes/);
});

test('capacity: maxSessions, onCapacity, evictIdleAfter and maxEventLoopDelay are validated, each error naming its option', () => {
  const dflt = parseOptions(valid);
  assert.equal(dflt.maxSessions, undefined); // derived from the heap at start
  assert.equal(dflt.onCapacity, 'refuse');
  assert.equal(dflt.evictIdleAfter, 600_000);
  assert.equal(dflt.maxEventLoopDelay, 250);
  const ok = parseOptions({ ...valid, maxSessions: 50_000, onCapacity: 'evict-idle', evictIdleAfter: 5000, maxEventLoopDelay: 0 });
  assert.deepEqual([ok.maxSessions, ok.onCapacity, ok.evictIdleAfter, ok.maxEventLoopDelay], [50_000, 'evict-idle', 5000, 0]);
  expectOptionError({ ...valid, maxSessions: 10 }, 'maxSessions', /maxSessions of at least 100/);
  expectOptionError({ ...valid, maxSessions: 1000.5 }, 'maxSessions', /maxSessions as an integer/);
  expectOptionError({ ...valid, maxSessions: '1000' }, 'maxSessions', /expected maxSessions/);
  expectOptionError({ ...valid, onCapacity: 'drop' }, 'onCapacity', /onCapacity "refuse" or "evict-idle"/);
  expectOptionError({ ...valid, evictIdleAfter: 10 }, 'evictIdleAfter', /evictIdleAfter of at least 1000/);
  expectOptionError({ ...valid, maxEventLoopDelay: -1 }, 'maxEventLoopDelay', /maxEventLoopDelay of 0/);
});
