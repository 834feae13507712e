/**
 * Issue 13, item 3: with unsigned cookies every unknown id costs a question to every member; a client
 * address that sends many ids nobody holds gets 503 (Retry-After) until its budget refills, without
 * touching the cluster, while other addresses are served as before. Two real members in this process
 * (loopback multicast), a real Koa app with real koa-session.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { twoMembers } from '../helpers/in-process-members.js';

test('a source sending many unknown unsigned ids gets 503 once its budget is spent; other sources do not', async (t) => {
  const members = await twoMembers(t, { unknownIds: { burst: 5, perSecond: 0.5 } });
  const app = new Koa();
  app.proxy = true; // ctx.ip from X-Forwarded-For, as behind a balancer
  app.use(members[0].session(app, { signed: false }));
  app.use((ctx) => {
    ctx.body = { user: ctx.session?.user ?? null };
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((r) => server.once('listening', () => r()));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const get = (ip: string) =>
    fetch(url, { headers: { 'x-forwarded-for': ip, cookie: `koa.sess=${randomBytes(18).toString('base64url')}.b` } });

  for (let i = 0; i < 5; i++) {
    const res = await get('10.9.9.9');
    assert.equal(res.status, 200, 'within the budget an unknown id is "no session"');
    assert.deepEqual(await res.json(), { user: null });
  }
  const refused = await get('10.9.9.9');
  assert.equal(refused.status, 503, 'the budget is spent: no more questions to the cluster for this source');
  assert.equal(refused.headers.get('retry-after'), '1');
  assert.equal((await get('10.9.9.8')).status, 200, 'another source has its own budget');
  await new Promise((r) => setTimeout(r, 2100)); // 0.5 per second: one more after 2 s
  assert.equal((await get('10.9.9.9')).status, 200, 'the budget refills');
});

test('a spent budget still lets a session fail over (found where the ring puts it); IPv6 sources share a budget per /64', async (t) => {
  const members = await twoMembers(t, { unknownIds: { burst: 2, perSecond: 0.01 } });
  const apps = members.map((member) => {
    const app = new Koa();
    app.proxy = true;
    app.use(member.session(app, { signed: false }));
    app.use((ctx) => {
      if (ctx.method === 'POST') ctx.session!.user = 'ada';
      ctx.body = { user: ctx.session?.user ?? null };
    });
    return app;
  });
  const urls: string[] = [];
  for (const app of apps) {
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((r) => server.once('listening', () => r()));
    t.after(() => new Promise<void>((r) => server.close(() => r())));
    urls.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  }
  // A session made on member b, whose cookie later reaches member a (b's balancer target failed over).
  const made = await fetch(urls[1], { method: 'POST', headers: { 'x-forwarded-for': '2001:db8:1:2::7' } });
  const cookie = made.headers.getSetCookie().map((c) => c.split(';')[0]).find((c) => c.startsWith('koa.sess='))!;
  assert.match(cookie, /\.b$/);
  const unknown = (ip: string) => fetch(urls[0], { headers: { 'x-forwarded-for': ip, cookie: `koa.sess=${randomBytes(18).toString('base64url')}.b` } });
  // Two addresses of one /64 spend one budget: an IPv6 host cannot get a fresh budget per address.
  assert.equal((await unknown('2001:db8:1:2::1')).status, 200);
  assert.equal((await unknown('2001:db8:1:2:ffff::9')).status, 200);
  assert.equal((await unknown('2001:db8:1:2::3')).status, 503, 'the /64 spent its budget');
  assert.equal((await unknown('2001:db8:1:3::1')).status, 200, 'the next /64 has its own');
  const moved = await fetch(urls[0], { headers: { 'x-forwarded-for': '2001:db8:1:2::5', cookie } });
  assert.equal(moved.status, 200, 'a live session is found where the ring puts it, budget or not');
  assert.deepEqual(await moved.json(), { user: 'ada' });
});
