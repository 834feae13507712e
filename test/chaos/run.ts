/**
 * One chaos run: start the members, let the clients work while the nemesis injects faults for
 * `duration` seconds, then stop the clients, read every live session once more, replay every
 * destroyed id the clients kept, check convergence a last time, and clean everything up (also on
 * failure). The caller prints `table(result)` and fails on `result.violations`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  dropTime?: number;
  frequency?: number;
  /** A client abandons a request after this long and moves to another member. */
  requestTimeoutMs?: number;
  /** Only these kinds of fault (default: all the network allows). */
  faults?: FaultKind[];
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
  const cluster = await ChaosCluster.start({ mode: o.mode, framework: o.framework, members: o.members, net: o.net, frequency: o.frequency, dropTime: o.dropTime, logDir });
  running.add(cluster);
  try {
    let lifecycle = true;
    let stopping = false;
    // The nemesis knows the partitions that excuse an answer; the history asks it only later.
    const history: History = new History(now, (member: string, sentAt: number, answeredAt: number): string | undefined =>
      nemesis.excuse(member, sentAt, answeredAt),
    );
    const nemesis: Nemesis = new Nemesis(cluster, history, rng.fork('nemesis'), {
      mode: o.mode,
      dropTime: o.dropTime,
      now,
      t0,
      lifecycle: (open) => (lifecycle = open),
      capMs: 30_000,
      faults: o.faults,
      log: o.log,
    });
    const world: ClientWorld = {
      urls: cluster.urls,
      history,
      now,
      lifecycleOpen: () => lifecycle,
      requestTimeoutMs: o.requestTimeoutMs,
      stopping: () => stopping,
    };
    const clients = Array.from({ length: o.clients }, (_, i) => new ChaosClient(`c${i + 1}`, world, rng.fork(`client${i + 1}`), i));

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
    await nemesis.converge('final', now());

    return {
      options: { mode: o.mode, framework: o.framework ?? 'koa', members: o.members, net: o.net, duration: o.duration, seed: o.seed, clients: o.clients, dropTime: o.dropTime },
      totals: history.totals,
      violations: history.violations,
      faults: nemesis.faults,
      convergences: nemesis.convergences,
      liveAtEnd: history.liveRange(),
      stoppedBecause: nemesis.stoppedBecause,
      excuses: history.excuses,
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
