/**
 * `npm run demo` (demo/run.ts) as a test runs it: with the flags a user types, on ports and a
 * multicast group of the test's own, reading the instructions it prints; and its clean stop.
 */
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startProcess, type MemberProcess } from '../helpers/member-process.js';
import { freePort, freeUdpPort, randomGroup } from '../helpers/ports.js';
import { DEMO_RUN } from './demo-cluster.js';

export interface RunningDemo {
  proc: MemberProcess;
  /** The balancer's URL, as printed. */
  url: string;
  /** The members, as printed: route, URL and pid. */
  members: { route: string; url: string; pid: number }[];
}

/**
 * Runs `demo/run.ts <flags>` as `npm run demo -- <flags>` does, on ports and a multicast group of
 * the test's own, and reads the instructions it prints.
 */
export async function runDemo(t: TestContext, flags: string[]): Promise<RunningDemo> {
  const own = ['--base-port', '0', '--lb-port', String(await freePort()), '--mcast-address', randomGroup(), '--mcast-port', String(await freeUdpPort())];
  // startProcess runs `node --import tsx <script>`; the shell appends the flags and execs it, so the
  // pid stays the runner's.
  const proc = startProcess(t, 'demo', DEMO_RUN, {}, { command: ['sh', '-c', `exec "$0" "$@" ${[...flags, ...own].join(' ')}`] });
  await proc.waitForLine(/Ctrl-C stops everything/, 60_000);
  const url = /open (http:\/\/127\.0\.0\.1:\d+)\//.exec(proc.lines.join('\n'))?.[1];
  assert.ok(url, `the balancer's URL is printed:\n${proc.lines.join('\n')}`);
  const members = proc.lines
    .map((l) => /^\s+(node\d+)\s+(http:\/\/127\.0\.0\.1:\d+)\/\s+pid (\d+)\s+kill -9 \3$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({ route: m[1], url: m[2], pid: Number(m[3]) }));
  return { proc, url, members };
}

export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopsCleanly(demo: RunningDemo, signal: NodeJS.Signals): Promise<void> {
  const started = Date.now();
  demo.proc.kill(signal);
  await demo.proc.exited();
  assert.equal(demo.proc.child.exitCode, 0, `the runner exits 0 on ${signal}`);
  assert.ok(demo.proc.lines.some((l) => l === 'demo: stopped'));
  for (const m of demo.members) assert.equal(isRunning(m.pid), false, `${m.route} (pid ${m.pid}) is gone`);
  // The runner waits for its members, so this is how long a user waits after Ctrl-C.
  assert.ok(Date.now() - started < 15_000, `stopped within 15 s (took ${Date.now() - started} ms)`);
}
