/**
 * Capacity as each framework answers it (issue 26): two real members in this process with
 * `maxSessions: 100` (two members in backup mode: new sessions stop at 50 held), real Koa with
 * koa-session, Express with express-session and Fastify with @fastify/session on member a. At the
 * planned level a new session gets 503 with Retry-After from all three while an existing session is
 * still written; with `onCapacity: 'evict-idle'` the least recently used idle session is destroyed
 * as durably as a logout (its copy gone, its cookie no session anywhere) and `sessionDestroyed` fires
 * with reason `evicted`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import Koa from 'koa';
import express from 'express';
import Fastify, { type FastifyRequest } from 'fastify';
import type { SessionCluster, SessionEvent } from '../../src/index.js';
import { twoMembers } from '../helpers/in-process-members.js';
import { call, listen, type Answer } from '../helpers/frameworks.js';

const SECRET = 'a-session-secret-of-at-least-32-characters';

async function koaApp(t: { after(fn: () => Promise<void>): void }, cluster: SessionCluster): Promise<string> {
  const app = new Koa();
  app.keys = [SECRET];
  app.silent = true;
  app.use(cluster.session(app, { maxAge: 3_600_000 }));
  app.use((ctx) => {
    if (ctx.method === 'POST') Object.assign(ctx.session, ctx.query);
    ctx.body = { route: cluster.route, session: ctx.session?.toJSON() };
  });
  return listen(t, createServer(app.callback()));
}

async function expressApp(t: { after(fn: () => Promise<void>): void }, cluster: SessionCluster): Promise<string> {
  const app = express();
  app.use(cluster.expressSession({ name: 'sid', secret: SECRET, resave: false, saveUninitialized: false }));
  app.post('/set', (req, res) => {
    Object.assign((req as unknown as { session: Record<string, unknown> }).session, req.query);
    res.json({ stored: true });
  });
  return listen(t, createServer(app));
}

async function fastifyApp(t: { after(fn: () => Promise<void>): void }, cluster: SessionCluster): Promise<string> {
  const app = Fastify();
  await app.register(cluster.fastifySession, { secret: SECRET, cookieName: 'sid', cookie: { secure: false }, saveUninitialized: false });
  app.post('/set', (req: FastifyRequest) => {
    Object.assign((req as unknown as { session: Record<string, unknown> }).session, req.query);
    return { stored: true };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => app.close());
  const address = app.server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

/** The Cookie header that replays an answer's cookies. */
const cookieHeader = (a: Answer) => a.cookies.map((c) => `${c.name}=${c.value}`).join('; ');

function assertRefused(a: Answer, framework: string): void {
  assert.equal(a.status, 503, `${framework}: a new session at capacity is refused with 503 (${a.text})`);
  assert.equal(a.headers.get('retry-after'), '1', `${framework}: with Retry-After, so the balancer tries another member`);
  assert.equal(a.cookies.length, 0, `${framework}: and no cookie`);
}

test("'refuse': at the planned level Koa, Express and Fastify answer a new session 503 with Retry-After; existing sessions are still written", async (t) => {
  const [a] = await twoMembers(t, { maxSessions: 100, maxEventLoopDelay: 0 }); // not about shedding: a loaded machine must not change the counts
  const [koa, exp, fst] = [await koaApp(t, a), await expressApp(t, a), await fastifyApp(t, a)];
  const first = await call('POST', `${koa}/set?k=first`);
  assert.equal(first.status, 200);
  const existing = cookieHeader(first);
  for (let i = 1; i < 50; i++) assert.equal((await call('POST', `${koa}/set?k=${i}`)).status, 200, `session ${i} fits`);
  assert.equal((a.status().capacity as { plannedLevel: number }).plannedLevel, 50);

  assertRefused(await call('POST', `${koa}/set?k=over`, undefined, undefined, { retry: false }), 'koa');
  assertRefused(await call('POST', `${exp}/set?k=over`, undefined, undefined, { retry: false }), 'express');
  assertRefused(await call('POST', `${fst}/set?k=over`, undefined, undefined, { retry: false }), 'fastify');

  const again = await call('POST', `${koa}/set?more=yes`, existing, undefined, { retry: false });
  assert.equal(again.status, 200, 'an existing session is served and written at capacity');
  assert.deepEqual([again.body.session.k, again.body.session.more], ['first', 'yes']);
  const capacity = a.status().capacity as { held: number; refusedFull: number; evicted: number };
  assert.deepEqual([capacity.held, capacity.refusedFull, capacity.evicted], [50, 3, 0]);
  assert.match(a.metricsText(), /^koa_session_cluster_sessions_refused_total\{reason="full"\} 3$/m);
});

test("'evict-idle': the least recently used idle session is destroyed as a logout is, with sessionDestroyed reason evicted", async (t) => {
  const [a, b] = await twoMembers(t, { maxSessions: 100, onCapacity: 'evict-idle', evictIdleAfter: 1000, maxEventLoopDelay: 0 });
  const events: SessionEvent[] = [];
  for (const m of [a, b]) m.on('sessionDestroyed', (e) => events.push(e));
  const koa = await koaApp(t, a);
  const cookies: string[] = [];
  for (let i = 0; i < 50; i++) {
    const res = await call('POST', `${koa}/set?n=${i}`);
    assert.equal(res.status, 200);
    cookies.push(cookieHeader(res));
  }
  // (Refused while nothing is idle long enough: capacity.test.ts, without the clock of a loaded machine.)
  await new Promise((resolve) => setTimeout(resolve, 1100));
  // Session 0 is used again: session 1 is now the least recently used.
  assert.equal((await call('GET', `${koa}/`, cookies[0])).body.session.n, '0');
  const held = b.status().sessions as { backup: number };
  assert.equal(held.backup, 50, 'b holds a copy of each');

  const created = await call('POST', `${koa}/set?n=new`);
  assert.equal(created.status, 200, 'room was made for the new session');
  assert.equal(events.length, 1);
  assert.deepEqual([events[0].reason, events[0].route], ['evicted', 'a']);
  assert.equal(events[0].handle, a.handleOf(decodeURIComponent(cookies[1].split(';')[0].split('=')[1])));
  // Durable as a logout: the copy went too, and the cookie is no session on either member.
  assert.equal((b.status().sessions as { backup: number }).backup, 50, "b dropped the evicted session's copy and holds the new one's");
  const replay = await call('GET', `${koa}/`, cookies[1]);
  assert.equal(replay.body.session.n, undefined, 'the evicted session is gone');
  assert.equal((await call('GET', `${koa}/`, cookies[0])).body.session.n, '0', 'the session used a moment ago stays');
  assert.equal((a.status().capacity as { evicted: number }).evicted, 1);
});
