/**
 * Real nginx for tests: runs a given configuration in the foreground from a temporary prefix
 * directory (pid file, temp paths and relative paths land there), and stops it when the test ends.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { hasSystemTool } from './system-tool.js';
import { waitFor } from './wait.js';

/** Where Debian's nginx packages put the binary. */
export const NGINX = '/usr/sbin/nginx';

/** A running nginx. */
export interface Nginx {
  readonly pid: number;
  /** The prefix directory (`-p`), holding the configuration and nginx's files. */
  readonly dir: string;
  /** Every line nginx printed: the error log (stderr) and, if configured so, the access log. */
  readonly lines: string[];
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * True when nginx is installed. Otherwise the test is skipped (false), or fails under
 * `REQUIRE_SYSTEM_TESTS=1`. Call it before starting what nginx would sit in front of.
 */
export function hasNginx(t: TestContext): boolean {
  return hasSystemTool(t, NGINX, `needs ${NGINX} (apt-get install nginx-light)`);
}

/**
 * Starts nginx with `config` (whole nginx.conf text) and waits until `port` on 127.0.0.1 accepts
 * connections. Resolves undefined (the test is skipped) when nginx is not installed, unless
 * `REQUIRE_SYSTEM_TESTS=1`, where that fails the test. Stopped (SIGTERM to its master, which stops
 * its workers) and its directory removed when the test ends.
 */
export async function startNginx(t: TestContext, config: string, port: number): Promise<Nginx | undefined> {
  if (!hasNginx(t)) return undefined;
  const dir = await mkdtemp(join(tmpdir(), 'ksc-nginx-'));
  // Run as root, nginx's workers run as nobody and must reach the temp paths under the prefix.
  await chmod(dir, 0o755);
  const conf = join(dir, 'nginx.conf');
  await writeFile(conf, config);
  // -e stderr: errors before the configuration is read go to stderr, not /var/log/nginx.
  const child = spawn(NGINX, ['-p', dir, '-c', conf, '-e', 'stderr', '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const onLine = (line: string) => {
    lines.push(line);
    if (process.env.TEST_ECHO === '1') process.stderr.write(`[nginx] ${line}\n`);
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  let exited = false;
  const exit = once(child, 'exit').then(() => {
    exited = true;
  });
  t.after(async () => {
    // SIGTERM, not SIGKILL: the master then stops its workers, which would otherwise keep the port.
    if (!exited) child.kill('SIGTERM');
    await exit;
    await rm(dir, { recursive: true, force: true });
  });
  await waitFor(`nginx to accept connections on ${port}`, async () => {
    if (exited) throw new Error(`nginx exited:\n${lines.join('\n')}`);
    return accepts(port);
  }, 10_000);
  return { pid: child.pid!, dir, lines };
}
