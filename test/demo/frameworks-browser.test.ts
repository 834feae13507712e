/**
 * Issue 29, in a real browser (Debian's Chromium through playwright-core), for the Express and the
 * Fastify demo members (demo/express-app.ts, demo/fastify-app.ts): the seed's scenario (log in on
 * one member's page, open another's, still logged in with the cart, the cookie rebound and re-signed),
 * and `npm run demo -- --framework F` (4 members behind the balancer) surviving kill -9 of the member
 * that served. `KEEP_SCREENSHOTS=<dir>` keeps the screenshots there.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { cookieSessionId, startDemoCluster } from './demo-cluster.js';
import { runDemo, stopsCleanly } from './demo-runner.js';

async function sessionCookie(context: BrowserContext): Promise<string | undefined> {
  return (await context.cookies()).find((c) => c.name === 'sid')?.value;
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.textContent(selector)) ?? '').trim();
}

/** A screenshot of `page` with content, in a directory removed after the test (and in KEEP_SCREENSHOTS). */
async function screenshot(t: TestContext, page: Page, name: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ksc-browser-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await page.screenshot({ path: join(dir, name), fullPage: true });
  assert.ok((await stat(join(dir, name))).size > 1000, 'the screenshot has content');
  if (process.env.KEEP_SCREENSHOTS !== undefined) await page.screenshot({ path: join(process.env.KEEP_SCREENSHOTS, name), fullPage: true });
}

async function logIn(page: Page, url: string, user: string, item: string): Promise<void> {
  await page.goto(`${url}/`);
  await page.fill('input[name=username]', user);
  await page.click('#login');
  await page.waitForSelector('#greeting');
  assert.equal(await text(page, '#greeting'), `Welcome, ${user}`);
  await page.fill('input[name=item]', item);
  await page.click('#add');
  await page.waitForSelector('#cart li');
}

for (const framework of ['express', 'fastify'] as const) {
  test(`browser, ${framework}: log in on member 1's page, open member 2's page, still logged in with the cart; the cookie rebound to member 2 and re-signed`, async (t) => {
    const browser = await launchChromium(t);
    if (browser === undefined) return;
    const [node1, node2] = await startDemoCluster(t, 2, 'backup', {}, framework);
    const context = await browser.newContext();
    const page = await context.newPage();
    await logIn(page, node1.url, 'alice', 'coffee');
    assert.match(await text(page, '#served-by'), /^served by node1/);
    const before = (await sessionCookie(context))!;
    assert.match(cookieSessionId(before), /\.node1$/);

    await page.goto(`${node2.url}/`);
    assert.match(await text(page, '#served-by'), /^served by node2/);
    assert.equal(await text(page, '#greeting'), 'Welcome, alice', 'still logged in on the other member');
    assert.deepEqual(await page.locator('#cart li').allTextContents(), ['coffee']);
    assert.equal(await text(page, '#session-route'), 'node2');
    const after = (await sessionCookie(context))!;
    assert.equal(cookieSessionId(after), `${cookieSessionId(before).split('.')[0]}.node2`, 'node2 took the session over and rebound the cookie');
    assert.notEqual(decodeURIComponent(after).split('.').pop(), decodeURIComponent(before).split('.').pop(), 'and signed it anew');
    await screenshot(t, page, `welcome-${framework}.png`);

    // Logging out on node2 logs out on node1 too, even with the old cookie put back.
    const cookies = await context.cookies();
    await page.click('#logout');
    await page.waitForSelector('#login');
    await context.addCookies(cookies);
    await page.goto(`${node1.url}/`);
    assert.equal(await page.locator('#greeting').count(), 0);
    assert.equal(await page.locator('#login').count(), 1);
  });

  test(`browser, ${framework}: npm run demo -- --framework ${framework} (4 members behind the balancer): kill -9 the member that served, reload, still logged in with the cart`, async (t) => {
    const browser = await launchChromium(t);
    if (browser === undefined) return;
    const demo = await runDemo(t, ['--framework', framework]);
    assert.equal(demo.members.length, 4);
    assert.ok(demo.proc.lines.some((l) => l.includes(`4 members, backup mode, ${framework}`)), 'the runner says which framework');
    const context = await browser.newContext();
    const page = await context.newPage();
    await logIn(page, demo.url, 'bob', 'tea');
    const served = /^served by (node\d)/.exec(await text(page, '#served-by'))![1];
    const before = (await sessionCookie(context))!;
    assert.match(cookieSessionId(before), new RegExp(`\\.${served}$`));

    const victim = demo.members.find((m) => m.route === served)!;
    process.kill(victim.pid, 'SIGKILL');
    await page.reload();
    const now = /^served by (node\d)/.exec(await text(page, '#served-by'))![1];
    assert.notEqual(now, served, 'another member served the reload');
    assert.equal(await text(page, '#greeting'), 'Welcome, bob', 'still logged in');
    assert.deepEqual(await page.locator('#cart li').allTextContents(), ['tea'], 'the cart is intact');
    assert.equal(await text(page, '#session-route'), now);
    const after = (await sessionCookie(context))!;
    assert.match(cookieSessionId(after), new RegExp(`\\.${now}$`), 'the cookie now names the member that took over');
    await screenshot(t, page, `failover-${framework}.png`);
    await stopsCleanly(demo, 'SIGINT');
  });
}
