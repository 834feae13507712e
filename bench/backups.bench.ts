/**
 * The price of a second backup (issue 25): the same 5-member backup cluster with `backups: 1` and
 * `backups: 2`, side by side in one run. Per write: the CPU of every member and the bytes between
 * them; per session: the cluster's resident memory. Reported as each figure and the 2-to-1 ratio.
 */
import { clusterEnv, commandFor, log, settings } from './lib/context.js';
import { cookiesFile, named, per10k, phase, quietPhase, steadyMemory, strip, withProcesses } from './lib/phase.js';
import { fill, login, metrics, sleep, startCluster, status } from './lib/servers.js';
import { round } from './lib/stats.js';

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

async function measure(backups: number): Promise<Record<string, unknown>> {
  return withProcesses(async (track) => {
    const cluster = await startCluster(settings.backupsMembers, 'backup', { ...clusterEnv, BACKUPS: String(backups) }, track);
    const node1 = cluster.members[0];
    const procs = cluster.members.map(named);
    const cookies = cookiesFile(`backups-${backups}`, await login(node1.url, settings.sessions));
    const held = await Promise.all(cluster.members.map((m) => status(m.url)));
    const copiesPerSession = round(sum(held.map((h) => h.sessions.primary + h.sessions.backup)) / settings.sessions, 2);
    const base = { url: node1.url, cookiesFile: cookies, connections: settings.connections, method: 'POST' as const, path: '/write' };
    await quietPhase(`backups ${backups} warm-up`, procs, { ...base, duration: settings.warmupSeconds });
    const bytesSent = async () => sum((await Promise.all(cluster.members.map((m) => metrics(m.url)))).map((x) => x.koa_session_cluster_bytes_sent_total ?? 0));
    // Background traffic (membership, leases) over an idle second, subtracted as the bytes bench does.
    const i0 = await bytesSent();
    const ti = performance.now();
    await sleep(1000);
    const idlePerMs = ((await bytesSent()) - i0) / (performance.now() - ti);
    const b0 = await bytesSent();
    const t0 = performance.now();
    const write = await phase(`backups ${backups} writes`, procs, { ...base, duration: settings.phaseSeconds });
    const bytes = (await bytesSent()) - b0 - idlePerMs * (performance.now() - t0);
    const m0 = await steadyMemory(cluster.members);
    await fill(node1.url, settings.backupsFill);
    const m1 = await steadyMemory(cluster.members);
    const ok = Math.max(1, write.requests - write.failed);
    const result = {
      copiesPerSession,
      write: strip(write),
      bytesPerWrite: round(bytes / ok, 1),
      clusterRssPer10kMiB: per10k(sum(m1.rss) - sum(m0.rss), settings.backupsFill),
      clusterHeapPer10kMiB: per10k(sum(m1.heap) - sum(m0.heap), settings.backupsFill),
    };
    log(`  backups ${backups}: ${copiesPerSession} copies per session, ${write.rps} writes/s, ${write.cpuSecondsPer1000} CPU s/1k writes, ${result.bytesPerWrite} B/write , ${result.clusterRssPer10kMiB} MiB RSS/10k sessions`);
    return result;
  });
}

export default async function backupsPrice(): Promise<Record<string, unknown>> {
  log(`backups: ${settings.backupsMembers} members, backups 1 then 2`);
  const one = (await measure(1)) as { write: { cpuSecondsPer1000: number }; bytesPerWrite: number; clusterRssPer10kMiB: number; clusterHeapPer10kMiB: number };
  const two = (await measure(2)) as typeof one;
  const ratio = (a: number, b: number) => round(a / Math.max(1e-9, b), 2);
  return {
    command: commandFor('backups'),
    members: settings.backupsMembers,
    sessionsFilled: settings.backupsFill,
    note: 'load on node1; CPU of all 5 members; bytes: sum of koa_session_cluster_bytes_sent_total over the phase, idle background subtracted, per acknowledged write (one phase, not repeated when the machine is busy, so that bytes and phase match)',
    backups1: one,
    backups2: two,
    ratios: {
      cpuPerWrite: ratio(two.write.cpuSecondsPer1000, one.write.cpuSecondsPer1000),
      bytesPerWrite: ratio(two.bytesPerWrite, one.bytesPerWrite),
      clusterRss: ratio(two.clusterRssPer10kMiB, one.clusterRssPer10kMiB),
      clusterHeap: ratio(two.clusterHeapPer10kMiB, one.clusterHeapPer10kMiB),
    },
  };
}
