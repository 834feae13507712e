/**
 * Starts clusters of app-member processes on loopback multicast (a group and port of the test's own)
 * and reads their status.
 */
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startProcess, type MemberProcess } from './member-process.js';
import { freeUdpPort, randomGroup } from './ports.js';
import { CookieJar, request } from './http-client.js';
import { waitFor } from './wait.js';

const APP = fileURLToPath(new URL('./app-member.ts', import.meta.url));

export interface AppMember {
  route: string;
  url: string;
  port: number;
  proc: MemberProcess;
}

export interface AppClusterConfig {
  mode?: 'backup' | 'delta';
  ack?: 'sync' | 'async';
  group?: string;
  mcastPort?: number;
  env?: Record<string, string>;
}

/** The shared settings of one test's cluster (its own multicast group and port). */
export async function clusterConfig(config: AppClusterConfig = {}): Promise<Required<Omit<AppClusterConfig, 'env'>> & { env: Record<string, string> }> {
  return {
    mode: config.mode ?? 'backup',
    ack: config.ack ?? 'sync',
    group: config.group ?? randomGroup(),
    mcastPort: config.mcastPort ?? (await freeUdpPort()),
    env: config.env ?? {},
  };
}

/** Starts one app member and waits until it serves HTTP. */
export async function startAppMember(
  t: TestContext,
  route: string,
  config: Awaited<ReturnType<typeof clusterConfig>>,
  script = APP,
): Promise<AppMember> {
  const proc = startProcess(t, route, script, {
    ROUTE: route,
    MODE: config.mode,
    ACK: config.ack,
    MCAST_ADDRESS: config.group,
    MCAST_PORT: String(config.mcastPort),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info',
    ...config.env,
  });
  const line = await proc.waitForLine(/"event":"listening"/, 30_000);
  const { port } = JSON.parse(line) as { port: number };
  return { route, port, url: `http://127.0.0.1:${port}`, proc };
}

/**
 * Starts `n` members (node1..nodeN) and waits until each sees all of them and is ready, as a balancer
 * with a readiness probe would: a fresh delta cluster needs its discovery window before its members
 * hold each other's sessions (deltas wait in a queue until then).
 */
export async function startAppCluster(t: TestContext, n: number, config: AppClusterConfig = {}): Promise<{ members: AppMember[]; config: Awaited<ReturnType<typeof clusterConfig>> }> {
  const c = await clusterConfig(config);
  const members = await Promise.all(Array.from({ length: n }, (_, i) => startAppMember(t, `node${i + 1}`, c)));
  await waitForMembership(members, n);
  await Promise.all(members.map((m) => m.proc.waitForLine(/"event":"ready"/, 30_000)));
  return { members, config: c };
}

export interface Status {
  route: string;
  mode: string;
  members: { route: string; host: string; port: number }[];
  sessions: { primary: number; backup: number };
  majority: { size: number; expected: boolean; answering: string[]; holds: boolean };
  replication: Record<string, unknown>;
}

export async function status(m: AppMember): Promise<Status> {
  const res = await fetch(`${m.url}/cluster/status`, { signal: AbortSignal.timeout(5000) });
  return (await res.json()) as Status;
}

/** Waits until every given member sees exactly `n` live members. */
export async function waitForMembership(members: AppMember[], n: number, timeoutMs = 15_000): Promise<void> {
  await waitFor(
    `${members.map((m) => m.route).join(',')} to see ${n} members`,
    async () => {
      const all = await Promise.all(members.map(status));
      return all.every((s) => s.members.length === n);
    },
    timeoutMs,
    100,
  );
}

/** Copies held across `members`: sessions served (primary) and copies kept for others (backup). */
export async function copies(members: AppMember[]): Promise<{ primary: number; backup: number }> {
  const all = await Promise.all(members.map(status));
  return all.reduce((acc, s) => ({ primary: acc.primary + s.sessions.primary, backup: acc.backup + s.sessions.backup }), {
    primary: 0,
    backup: 0,
  });
}

/**
 * Creates `n` sessions round-robin over `members` (POST /set `{ n: i }`), `concurrency` at a time, each
 * answered 200: a creation a loaded machine refuses or leaves unanswered is tried again with a fresh
 * cookie, 5 times at most. Returns the jars in order of `n`.
 */
export async function createSessions(members: AppMember[], n: number, concurrency = 1): Promise<CookieJar[]> {
  const create = async (i: number): Promise<CookieJar> => {
    const member = members[i % members.length];
    let last = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const jar = new CookieJar();
      try {
        const res = await request(jar, 'POST', `${member.url}/set`, { n: i });
        if (res.status === 200) return jar;
        last = `answered ${res.status}`;
      } catch (err) {
        last = (err as Error).message;
      }
    }
    throw new Error(`creating session ${i} on ${member.route} failed five times; last: ${last}`);
  };
  const jars: CookieJar[] = [];
  for (let i = 0; i < n; i += concurrency) {
    jars.push(...(await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, (_, k) => create(i + k)))));
  }
  return jars;
}

/**
 * Waits until each session held has exactly one backup and returns how many are held (at least
 * `created`: a creation that was refused may have left its session, as promise 4 allows).
 */
export async function heldTwice(members: AppMember[], created: number, timeoutMs = 5000): Promise<number> {
  let held = { primary: 0, backup: 0 };
  await waitFor(`each of ${created} sessions held twice`, async () => {
    held = await copies(members);
    return held.primary >= created && held.primary === held.backup;
  }, timeoutMs).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(held)}`);
  });
  return held.primary;
}
