/**
 * One chaos run: start the members, let the clients work while the nemesis injects faults for
 * `duration` seconds, then stop the clients, read every live session once more, replay every
 * destroyed id the clients kept, read every live session at every member (all must answer),
 * check convergence a last time, and clean everything up (also on failure). The caller prints `table(result)` and fails on `result.violations`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuWait } from '../helpers/cpu-wait.js';
import { ChaosClient, type ClientWorld } from './client.js';
import { History } from './history.js';
import { ChaosCluster, type Framework } from './members.js';
import { Nemesis, type FaultKind } from './nemesis.js';
import { Random } from './random.js';
import type { ChaosResult } from './report.js';

export interface ChaosOptions {
  mode: 'backup' | 'delta';
  /** The members' web framework (koa-session, express-session or @fastify/session); default koa. */
  framework?: Framework;
  members: number;
  net: 'loopback' | 'netns';
  /** Seconds of fault injection. */
  duration: number;
  seed: number;
  clients?: number;
  /** The share of clients that send each request to any member (default 0). */
  roaming?: number;
  dropTime?: number;
  frequency?: number;
  /** A client abandons a request after this long and moves to another member. */
  requestTimeoutMs?: number;
  /** Only these kinds of fault (default: DEFAULT_FAULTS, those the network allows). */
  faults?: FaultKind[];
  /** Backup mode: option `backups` of every member (default: the library's, 1). */
  backups?: number;
  /** Members get option `zone` round-robin over this many zones (default: none). */
  zones?: number;
  /** Option `expectedMembers` of every member (default: `members`; 0: none, the majority of the members seen). */
  expectedMembers?: number;
  /** clock-step: the largest offset from true time, seconds (default 30). */
  clockMaxS?: number;
  /** Progress lines (faults, convergence); silent if absent. */
  log?: (line: string) => void;
}

/** Clusters of runs in progress, for a synchronous cleanup on Ctrl-C. */
const running = new Set<ChaosCluster>();

/** Kills every member of every run in progress (by pid) and deletes its namespaces, now. */
export function abortRuns(): void {
  for (const c of running) c.destroyNow();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const o = { clients: 30, dropTime: 1500, frequency: 200, requestTimeoutMs: 1500, log: () => {}, ...options };
  const t0 = Date.now();
  const now = () => Date.now() - t0;
  const logDir = mkdtempSync(join(tmpdir(), `ksc-chaos-${o.mode}-`));
  const rng = new Random(o.seed);
  const expectedMembers = o.expectedMembers ?? o.members;
  const cluster = await ChaosCluster.start({
    mode: o.mode,
    framework: o.framework,
    members: o.members,
    net: o.net,
    frequency: o.frequency,
    dropTime: o.dropTime,
    logDir,
    backups: o.backups,
    zones: o.zones,
    expectedMembers: expectedMembers === 0 ? undefined : expectedMembers,
  });
  running.add(cluster);
  try {
    let lifecycle = true;
    let stopping = false;
    // The nemesis knows the partitions that excuse an answer; the history asks it only later.
    const history: History = new History(now, (member: string, base: string, sentAt: number, answeredAt: number): string | undefined =>
      nemesis.excuse(member, base, sentAt, answeredAt),
    );
    // The nemesis holds the clients still (no request out) while it compares copies.
    let still: { promise: Promise<void>; release: () => void } | undefined;
    const world: ClientWorld = {
      urls: cluster.urls,
      history,
      now,
      lifecycleOpen: () => lifecycle,
      requestTimeoutMs: o.requestTimeoutMs,
      stopping: () => stopping,
      go: () => still?.promise ?? Promise.resolve(),
      busy: 0,
    };
    const hold = async (on: boolean): Promise<void> => {
      if (!on) {
        still?.release();
        still = undefined;
        return;
      }
      let release = () => {};
      still ??= { promise: new Promise<void>((r) => (release = r)), release: () => release() };
      // A step is at most two requests, each at most the timeout plus a 503's wait (1 s).
      const until = Date.now() + 2 * (o.requestTimeoutMs + 1000) + 1000;
      while (world.busy > 0 && Date.now() < until) await sleep(20);
    };
    const nemesis: Nemesis = new Nemesis(cluster, history, rng.fork('nemesis'), {
      mode: o.mode,
      dropTime: o.dropTime,
      backups: o.backups ?? 1,
      now,
      t0,
      endsAt: o.duration * 1000,
      lifecycle: (open) => (lifecycle = open),
      hold,
      tmpDir: logDir,
      clockMaxS: o.clockMaxS,
      capMs: 30_000,
      faults: o.faults,
      log: o.log,
    });
    const roamers = Math.round((o.roaming ?? 0) * o.clients);
    const clients = Array.from({ length: o.clients }, (_, i) => new ChaosClient(`c${i + 1}`, world, rng.fork(`client${i + 1}`), i, i >= o.clients - roamers));

    const kinds = nemesis.kinds(); // fails now, not after the start, when a fault asked for cannot run
    o.log(`faults: ${kinds.join(', ')}`);
    await nemesis.converge('start', now());
    const working = clients.map((c) => c.run());
    await nemesis.run(() => now() > o.duration * 1000);
    // A nemesis that stopped early (no convergence) leaves the clients working, without faults.
    if (now() < o.duration * 1000) await sleep(o.duration * 1000 - now());
    stopping = true;
    await Promise.all(working);
    o.log(`${(now() / 1000).toFixed(3)} s clients stopped; final reads and replays`);

    // Every live session read once more (retrying through the members), then every kept destroyed id.
    await Promise.all(
      clients.map(async (c) => {
        for (let attempt = 0; attempt < 10 && c.session !== undefined; attempt++) {
          if (await c.read(c.session.history, c.member)) break;
          await sleep(200);
        }
      }),
    );
    const replays = clients.flatMap((c) => c.destroyed.map((d) => ({ c, d })));
    const routes = cluster.routes;
    for (let i = 0; i < replays.length; i += 20) {
      await Promise.all(replays.slice(i, i + 20).map(({ c, d }) => c.replay(d, rng.pick(routes))));
    }
    // Once quiet, every live session is served by every live member (a balancer may send it anywhere):
    // five at a time, each within 5 s (each read at a member that does not own the session moves it).
    const waits = new CpuWait([process.pid, ...cluster.pids()]);
    for (const m of cluster.live()) {
      for (let i = 0; i < clients.length; i += 5) await Promise.all(clients.slice(i, i + 5).map((c) => c.probe(m.route, 5000, () => waits.longest())));
    }
    await nemesis.converge('final', now());

    return {
      options: {
        mode: o.mode,
        framework: o.framework ?? 'koa',
        members: o.members,
        net: o.net,
        duration: o.duration,
        seed: o.seed,
        clients: o.clients,
        roaming: o.roaming ?? 0,
        dropTime: o.dropTime,
        backups: o.backups ?? 1,
        zones: o.zones,
        expectedMembers: expectedMembers === 0 ? undefined : expectedMembers,
        faults: kinds,
      },
      totals: history.totals,
      violations: history.violations,
      faults: nemesis.faults,
      convergences: nemesis.convergences,
      liveAtEnd: history.liveRange(),
      stoppedBecause: nemesis.stoppedBecause,
      excuses: history.excuses,
      excusedBy: Object.fromEntries(nemesis.excusedBy),
      logDir,
      logFiles: Object.fromEntries(routes.map((r) => [r, cluster.logFile(r)])),
      t0,
      elapsedMs: now(),
    };
  } finally {
    running.delete(cluster);
    await cluster.destroy();
  }
}
