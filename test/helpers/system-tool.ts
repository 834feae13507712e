/**
 * Tests that need a program from the system (Debian's chromium, nginx): skipped with the reason when
 * it is missing, except in CI (`REQUIRE_SYSTEM_TESTS=1`, set by .ci/run after installing them), where
 * a missing program fails the test instead of silently proving nothing.
 */
import { accessSync, constants } from 'node:fs';
import type { TestContext } from 'node:test';

/**
 * True when `path` is an executable. Otherwise fails the test under `REQUIRE_SYSTEM_TESTS=1`, or
 * marks it skipped with `why` and returns false (the caller then returns).
 */
export function hasSystemTool(t: TestContext, path: string, why: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    if (process.env.REQUIRE_SYSTEM_TESTS === '1') {
      throw new Error(`${why}, and REQUIRE_SYSTEM_TESTS=1 says system tests must run: ${path} is missing`);
    }
    t.skip(why);
    return false;
  }
}
