/**
 * A rolling upgrade of an app's `sessionSchema`, end to end: node1 runs v1 of the app, node2 v2 (real
 * member processes, real koa-session, loopback multicast and TCP). Each member reads the other's
 * sessions as Avro resolution says, fetching each foreign writer schema once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSessionCodec } from '../../src/codec/index.js';
import { clusterConfig, startAppMember, waitForMembership } from '../helpers/app-cluster.js';
import { CookieJar, request } from '../helpers/http-client.js';
import type { MemberProcess } from '../helpers/member-process.js';
import { sessionSchemaV1, sessionSchemaV2 } from '../helpers/session-schemas.js';

const routeOf = (jar: CookieJar) => jar.get('koa.sess')?.split('.').pop();

/** The writer-schema fingerprint of a member running `sessionSchema` (independent of registered classes: the schemas use none). */
function fingerprintOf(sessionSchema: Record<string, unknown>): string {
  const codec = createSessionCodec({ types: [], sessionSchema, maxSessionBytes: 1024 * 1024 });
  return codec.fingerprintOf(codec.encodeEntries({}))!;
}

/** The 'fetched writer schema' log lines of a member (replicator.ts fetchSchema). */
function schemaFetches(proc: MemberProcess): { fingerprint: string; from: string }[] {
  return proc.lines
    .filter((l) => l.includes('"fetched writer schema"'))
    .map((l) => JSON.parse(l) as { fingerprint: string; from: string });
}

test('rolling upgrade: v1 and v2 members read each other\'s sessions as Avro resolution says, fetching each writer schema once', async (t) => {
  const c = await clusterConfig();
  const [node1, node2] = await Promise.all([
    startAppMember(t, 'node1', { ...c, env: { ...c.env, SESSION_SCHEMA: 'v1' } }),
    startAppMember(t, 'node2', { ...c, env: { ...c.env, SESSION_SCHEMA: 'v2' } }),
  ]);
  await waitForMembership([node1, node2], 2);
  const fpV1 = fingerprintOf(sessionSchemaV1);
  const fpV2 = fingerprintOf(sessionSchemaV2);
  assert.notEqual(fpV1, fpV2);

  const users = [0, 1, 2].map((i) => ({
    jar: new CookieJar(),
    data: { user: { id: 100 + i, name: `user${i}` }, cart: [`apple-${i}`, 'pear'], promo: `SPRING-${i}` },
  }));

  // Several sessions written on the v1 member.
  for (const { jar, data } of users) {
    const res = await request(jar, 'POST', `${node1.url}/set`, data);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.session, data);
    assert.equal(routeOf(jar), 'node1');
  }

  // Read on the v2 member (a takeover): v1's data, promo dropped (v2 removed it), theme's default.
  for (const { jar, data } of users) {
    const res = await request(jar, 'GET', `${node2.url}/get`);
    assert.equal(res.status, 200);
    assert.equal(res.body.route, 'node2');
    assert.equal(routeOf(jar), 'node2', 'node2 took the session over');
    assert.deepEqual(res.body.session, { user: data.user, cart: data.cart, theme: 'light' });
  }

  // A write on v2 (theme), read back on v1: v1 has no theme field, so it is absent there; the rest
  // is intact, promo included (v2 never knew the key, so it never removed it).
  const [first, ...others] = users;
  const write = await request(first.jar, 'POST', `${node2.url}/set`, { theme: 'dark', cart: [...first.data.cart, 'plum'] });
  assert.equal(write.status, 200);
  assert.deepEqual(write.body.session, { user: first.data.user, cart: [...first.data.cart, 'plum'], theme: 'dark' });
  const onV1 = await request(first.jar, 'GET', `${node1.url}/get`);
  assert.equal(onV1.status, 200);
  assert.equal(onV1.body.route, 'node1');
  assert.equal(routeOf(first.jar), 'node1');
  assert.deepEqual(onV1.body.session, { user: first.data.user, cart: [...first.data.cart, 'plum'], promo: first.data.promo });
  assert.equal('theme' in onV1.body.session, false);

  // And back on v2: the theme written on v2 survived the round trip through the v1 member.
  const again = await request(first.jar, 'GET', `${node2.url}/get`);
  assert.deepEqual(again.body.session, { user: first.data.user, cart: [...first.data.cart, 'plum'], theme: 'dark' });

  // More v1 sessions, after the schema was learnt: no more fetches.
  const late = { jar: new CookieJar(), data: { user: { id: 200, name: 'late' }, cart: [], promo: 'LATE' } };
  assert.equal((await request(late.jar, 'POST', `${node1.url}/set`, late.data)).status, 200);
  assert.deepEqual((await request(late.jar, 'GET', `${node2.url}/get`)).body.session, { user: late.data.user, cart: [], theme: 'light' });
  for (const { jar } of others) assert.equal((await request(jar, 'GET', `${node2.url}/get`)).body.session.theme, 'light');

  // node2 fetched node1's writer schema exactly once (then cached), and node1 node2's.
  const byNode2 = schemaFetches(node2.proc);
  assert.deepEqual(
    byNode2.filter((f) => f.fingerprint === fpV1).map((f) => f.from),
    ['node1'],
    `node2's schema fetches: ${JSON.stringify(byNode2)}`,
  );
  assert.deepEqual(byNode2.filter((f) => f.fingerprint !== fpV1), [], 'node2 fetched no other schema');
  const byNode1 = schemaFetches(node1.proc);
  assert.deepEqual(
    byNode1.map((f) => [f.fingerprint, f.from]),
    [[fpV2, 'node2']],
    `node1's schema fetches: ${JSON.stringify(byNode1)}`,
  );
});

/**
 * A default that decoding filled in has no entry of its own: the write path stores it with the first
 * write, so that a later decode (after a takeover through a v1 member) does not lose it.
 */
test(
  'rolling upgrade: a default shown on v2, or written on v2 with the default\'s value, survives a round trip through v1',
  async (t) => {
    const c = await clusterConfig();
    const [node1, node2] = await Promise.all([
      startAppMember(t, 'node1', { ...c, env: { ...c.env, SESSION_SCHEMA: 'v1' } }),
      startAppMember(t, 'node2', { ...c, env: { ...c.env, SESSION_SCHEMA: 'v2' } }),
    ]);
    await waitForMembership([node1, node2], 2);

    const shown = new CookieJar();
    assert.equal((await request(shown, 'POST', `${node1.url}/set`, { cart: ['x'] })).status, 200);
    assert.deepEqual((await request(shown, 'GET', `${node2.url}/get`)).body.session, { cart: ['x'], theme: 'light' });
    assert.deepEqual((await request(shown, 'POST', `${node2.url}/set`, { cart: ['x', 'y'] })).body.session, { cart: ['x', 'y'], theme: 'light' });
    assert.deepEqual((await request(shown, 'GET', `${node1.url}/get`)).body.session, { cart: ['x', 'y'] });
    const explicit = new CookieJar();
    assert.equal((await request(explicit, 'POST', `${node1.url}/set`, { cart: ['z'] })).status, 200);
    assert.equal((await request(explicit, 'GET', `${node2.url}/get`)).body.session.theme, 'light');
    assert.deepEqual((await request(explicit, 'POST', `${node2.url}/set`, { theme: 'light' })).body.session, { cart: ['z'], theme: 'light' });
    assert.equal((await request(explicit, 'GET', `${node1.url}/get`)).status, 200);

    // Back on v2 (another takeover, decoding the entries again): both still read theme "light".
    assert.deepEqual((await request(shown, 'GET', `${node2.url}/get`)).body.session, { cart: ['x', 'y'], theme: 'light' });
    assert.deepEqual((await request(explicit, 'GET', `${node2.url}/get`)).body.session, { cart: ['z'], theme: 'light' });

    // Removing a key that only a default filled in stays removed.
    const removing = new CookieJar();
    assert.equal((await request(removing, 'POST', `${node1.url}/set`, { cart: ['r'] })).status, 200);
    assert.equal((await request(removing, 'GET', `${node2.url}/get`)).body.session.theme, 'light');
    assert.equal((await request(removing, 'POST', `${node2.url}/unset?key=theme`)).status, 200);
    assert.deepEqual((await request(removing, 'GET', `${node1.url}/get`)).body.session, { cart: ['r'] });
    assert.deepEqual((await request(removing, 'GET', `${node2.url}/get`)).body.session, { cart: ['r'] }, 'the default does not come back');
  },
);
