/** State transfer: 3 delta members hold 100k sessions, a 4th joins; time to ready, MB/s, and RSS per 10k sessions of each. */
import { clusterEnv, commandFor, log, settings } from './lib/context.js';
import { monotonicUs, per10k, steadyMemory, windows, withProcesses } from './lib/phase.js';
import { addMember, fill, metrics, startCluster, status, waitFor } from './lib/servers.js';
import { round } from './lib/stats.js';

export default async function transfer(): Promise<Record<string, unknown>> {
  const n = settings.transferSessions;
  log(`transfer: 3 delta members holding ${n} sessions, a 4th joins`);
  return withProcesses(async (track) => {
    const cluster = await startCluster(3, 'delta', clusterEnv, track);
    const mem0 = await steadyMemory(cluster.members);
    const filled = await fill(cluster.members[0].url, n);
    const mem1 = await steadyMemory(cluster.members);
    log(`  filled ${n} sessions in ${Math.round(filled.ms)} ms`);
    const joinStarted = performance.now();
    const joinStartedUs = monotonicUs();
    const joiner = await addMember(cluster, 'node4');
    track(joiner.proc);
    const listening = performance.now();
    let firstBatch: number | undefined;
    await waitFor(
      `node4 to hold ${n} sessions`,
      async () => {
        const s = await status(joiner.url);
        const held = s.sessions.primary + s.sessions.backup;
        if (held > 0 && firstBatch === undefined) firstBatch = performance.now();
        return held >= n;
      },
      600_000,
      50,
    );
    const done = performance.now();
    windows.push({ label: 'state transfer', startUs: joinStartedUs, endUs: monotonicUs() });
    const readyLine = await joiner.proc.waitForLine(/"event":"ready"/, 600_000);
    const readyMs = (JSON.parse(readyLine) as { readyMs: number }).readyMs;
    const received = (await metrics(joiner.url)).koa_session_cluster_bytes_received_total ?? 0;
    const joinerMem = await steadyMemory([joiner]);
    const seconds = readyMs / 1000;
    const result = {
      command: commandFor('transfer'),
      sessions: n,
      fillSessionsPerSecond: round(n / (filled.ms / 1000), 0),
      processStartSeconds: round((listening - joinStarted) / 1000, 2),
      seconds: round(seconds, 2),
      secondsListeningToAllHeld: round((done - listening) / 1000, 2),
      secondsFirstBatchToAllHeld: round((done - (firstBatch ?? listening)) / 1000, 2),
      bytesReceived: received,
      mbPerSecond: round(received / 1e6 / seconds, 2),
      sessionsPerSecond: round(n / seconds, 0),
      rssPer10kMiB: {
        writer: per10k(mem1.rss[0] - mem0.rss[0], n),
        replica: per10k(mem1.rss[1] - mem0.rss[1], n),
        joiner: per10k(joinerMem.rss[0] - mem0.rss[1], n),
      },
      heapPer10kMiB: {
        writer: per10k(mem1.heap[0] - mem0.heap[0], n),
        replica: per10k(mem1.heap[1] - mem0.heap[1], n),
        joiner: per10k(joinerMem.heap[0] - mem0.heap[1], n),
      },
    };
    log(`  ${result.seconds} s from cluster.start() to ready (${result.secondsListeningToAllHeld} s listening to all held), ${result.mbPerSecond} MB/s, ${result.sessionsPerSecond} sessions/s`);
    return result;
  });
}
