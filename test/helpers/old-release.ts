/**
 * The previous release of this package, built from git history for the rolling-upgrade test: the
 * tree of tag `v0.1.0` (or, where tags were not fetched, its commit c291da5) exported into a temporary
 * directory with `git archive`, its dependencies linked from this checkout when they are the same
 * versions (else installed with `npm ci --offline`). Removed when the test ends.
 *
 * Without the history (a shallow clone, an export without .git) the test cannot run: it is skipped
 * with the reason, and fails under `REQUIRE_SYSTEM_TESTS=1` (CI), where it must prove something.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The previous release: its tag, and its commit for clones without tags. */
export const OLD_RELEASE = { tag: 'v0.1.0', commit: 'c291da5' } as const;

function git(args: string[], cwd = ROOT): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** The commit of the previous release, or why it cannot be had. */
function findRelease(): { rev: string } | { missing: string } {
  try {
    git(['rev-parse', '--git-dir']);
  } catch {
    return { missing: 'this checkout has no git history (not a git repository)' };
  }
  for (const rev of [OLD_RELEASE.tag, OLD_RELEASE.commit]) {
    try {
      return { rev: git(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]) };
    } catch {
      // not here: try the next name
    }
  }
  const shallow = (() => {
    try {
      return git(['rev-parse', '--is-shallow-repository']) === 'true';
    } catch {
      return false;
    }
  })();
  return {
    missing: `neither tag ${OLD_RELEASE.tag} nor commit ${OLD_RELEASE.commit} is in this clone${shallow ? ' (a shallow clone: fetch with --unshallow, or clone without --depth)' : ''}`,
  };
}

/**
 * Exports the previous release and returns the path of its app member script, or undefined when
 * the test was skipped (history missing outside CI). Throws under REQUIRE_SYSTEM_TESTS=1.
 */
export function prepareOldRelease(t: TestContext): { dir: string; appMember: string; rev: string } | undefined {
  const found = findRelease();
  if ('missing' in found) {
    const why = `the rolling upgrade needs the previous release from git history: ${found.missing}`;
    if (process.env.REQUIRE_SYSTEM_TESTS === '1') throw new Error(`${why}, and REQUIRE_SYSTEM_TESTS=1 says it must run`);
    t.skip(why);
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'ksc-old-release-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('sh', ['-c', `git archive --format=tar "${found.rev}" src test/helpers package.json package-lock.json tsconfig.json | tar -x -C "${dir}"`], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const deps = (file: string) => JSON.stringify((JSON.parse(readFileSync(file, 'utf8')) as { dependencies?: unknown }).dependencies ?? {});
  const lockedRuntime = (file: string) => {
    const lock = JSON.parse(readFileSync(file, 'utf8')) as { packages: Record<string, { version?: string }> };
    const names = Object.keys((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {});
    return JSON.stringify(names.map((n) => lock.packages[`node_modules/${n}`]?.version));
  };
  const same = deps(join(dir, 'package.json')) === deps(join(ROOT, 'package.json')) && lockedRuntime(join(dir, 'package-lock.json')) === lockedRuntime(join(ROOT, 'package-lock.json'));
  if (same) symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  else execFileSync('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--omit=dev'], { cwd: dir, stdio: 'ignore' });
  const appMember = join(dir, 'test', 'helpers', 'app-member.ts');
  if (!existsSync(appMember)) throw new Error(`the previous release (${found.rev}) has no ${appMember}`);
  return { dir, appMember, rev: found.rev };
}
