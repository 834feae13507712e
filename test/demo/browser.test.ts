/**
 * The seed's own test, in a real browser (Debian's Chromium through playwright-core): log in on the
 * first instance's page, open the second instance's page, and still be logged in. Browsers keep
 * cookies per host, not per port, so 127.0.0.1:<port1> and 127.0.0.1:<port2> share the session
 * cookie, exactly as 8081 and 8082 did in the seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { startDemoCluster } from './demo-cluster.js';

async function sessionCookie(context: BrowserContext): Promise<string | undefined> {
  return (await context.cookies()).find((c) => c.name === 'sid')?.value;
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.textContent(selector)) ?? '').trim();
}

for (const mode of ['delta', 'backup'] as const) {
  test(`browser, ${mode} mode: log in on member 1's page, open member 2's page, still logged in with the cart`, async (t) => {
    const browser = await launchChromium(t);
    if (browser === undefined) return;
    const [node1, node2] = await startDemoCluster(t, 2, mode);
    const context = await browser.newContext();
    const page = await context.newPage();

    await page.goto(`${node1.url}/`);
    assert.match(await text(page, '#served-by'), /^served by node1/);
    await page.fill('input[name=username]', 'alice');
    await page.click('#login');
    await page.waitForSelector('#greeting');
    assert.equal(await text(page, '#greeting'), 'Welcome, alice');
    await page.fill('input[name=item]', 'coffee');
    await page.click('#add');
    await page.waitForSelector('#cart li');
    assert.match((await sessionCookie(context)) ?? '', /\.node1$/);

    await page.goto(`${node2.url}/`);
    assert.match(await text(page, '#served-by'), /^served by node2/);
    assert.equal(await text(page, '#greeting'), 'Welcome, alice', 'still logged in on the other member');
    assert.deepEqual(await page.locator('#cart li').allTextContents(), ['coffee']);
    assert.equal(await text(page, '#session-route'), 'node2');
    assert.match((await sessionCookie(context)) ?? '', /\.node2$/, 'node2 took the session over and rewrote the cookie');

    const dir = await mkdtemp(join(tmpdir(), 'ksc-browser-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const shot = join(dir, `welcome-${mode}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok((await stat(shot)).size > 1000, 'the screenshot of the welcome page has content');
    if (process.env.KEEP_SCREENSHOTS !== undefined) await page.screenshot({ path: join(process.env.KEEP_SCREENSHOTS, `welcome-${mode}.png`), fullPage: true });

    // Logging out on node2 logs out on node1 too: the removal is replicated. Putting the old cookie
    // back after the logout shows it is the session that is gone, not only the browser's cookie.
    const before = await context.cookies();
    await page.click('#logout');
    await page.waitForSelector('#login');
    await context.addCookies(before);
    await page.goto(`${node1.url}/`);
    assert.match(await text(page, '#served-by'), /^served by node1/);
    assert.equal(await page.locator('#greeting').count(), 0);
    assert.equal(await page.locator('#login').count(), 1);
  });
}

test('browser: "Your sessions" lists the same user logged in from two browsers, on two members; "Log out the others" logs the other browser out', async (t) => {
  const browser = await launchChromium(t);
  if (browser === undefined) return;
  const [node1, node2, node3] = await startDemoCluster(t, 4, 'backup');
  const laptop = await (await browser.newContext()).newPage();
  const phone = await (await browser.newContext()).newPage();
  for (const [page, member] of [
    [laptop, node1],
    [phone, node2],
  ] as const) {
    await page.goto(`${member.url}/`);
    await page.fill('input[name=username]', 'bob');
    await page.click('#login');
    await page.waitForSelector('#greeting');
  }
  // The laptop, now served by a third member, sees both sessions, each on the member serving it.
  await laptop.goto(`${node3.url}/`);
  const rows = laptop.locator('#sessions tbody tr');
  assert.equal(await rows.count(), 2);
  const members = (await laptop.locator('#sessions tbody tr td:first-child').allTextContents()).sort();
  assert.deepEqual(members, ['node2', 'node3'], 'the phone on node2, the laptop taken over by node3');
  assert.equal(await laptop.locator('#sessions tr.current').count(), 1, 'this browser\'s session is marked');
  assert.match(await text(laptop, '#sessions tr.current td:last-child'), /this browser/);

  await laptop.click('#logout-others');
  await laptop.waitForSelector('#greeting');
  assert.equal(await laptop.locator('#sessions tbody tr').count(), 1, 'only this browser\'s session is left');
  assert.equal(await laptop.locator('#logout-others').count(), 0);

  // The phone is logged out, on its own member and on any other.
  for (const member of [node2, node1]) {
    await phone.goto(`${member.url}/`);
    assert.equal(await phone.locator('#greeting').count(), 0, `the phone is logged out on ${member.route}`);
    assert.equal(await phone.locator('#login').count(), 1);
  }
  await laptop.goto(`${node1.url}/`);
  assert.equal(await text(laptop, '#greeting'), 'Welcome, bob', 'the laptop stays logged in');
});
