/**
 * Headless Chromium for browser tests: Debian's `/usr/bin/chromium` driven by playwright-core (never
 * a downloaded browser: no `playwright install`). Closed when the test ends.
 */
import type { TestContext } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { hasSystemTool } from './system-tool.js';

/** Where Debian's chromium package puts the browser. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Launches headless Chromium, closed at the end of `t`. Resolves undefined (the test is skipped) when
 * Chromium is not installed, unless `REQUIRE_SYSTEM_TESTS=1`, where that fails the test.
 */
export async function launchChromium(t: TestContext): Promise<Browser | undefined> {
  if (!hasSystemTool(t, CHROMIUM, `needs ${CHROMIUM} (apt-get install chromium)`)) return undefined;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Quiet and offline: no update checks, sync or QUIC probes leave the machine during tests.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-quic',
      '--no-first-run',
      '--disable-sync',
    ],
  });
  t.after(() => browser.close());
  return browser;
}
