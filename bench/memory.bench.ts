/**
 * Resident memory per 10k sessions: the memory-store app, redis-server, and each member of a backup
 * cluster; and `sessionsPerGiB`, the sessions one GiB of member memory holds, copies included (issue
 * 26: what `maxSessions` should be for a member's memory); and the bytes one backup copy costs in the
 * members that hold it (V8 heap and external memory, and RSS), issue 28's `rss_per_copy_bytes`.
 */
import { commandFor, log, settings } from './lib/context.js';
import { per10k, startVariant, steadyMemory, withProcesses } from './lib/phase.js';
import { rssBytes } from './lib/processes.js';
import { fill, sleep } from './lib/servers.js';

export default async function memory(): Promise<Record<string, unknown>> {
  const n = settings.memorySessions;
  const out: Record<string, unknown> = { command: commandFor('memory'), sessions: n };
  log(`memory: RSS per 10k sessions (${n} created)`);
  out.memory = await withProcesses(async (track) => {
    const v = await startVariant('memory', track);
    const m0 = await steadyMemory(v.members);
    await fill(v.url, n);
    const m1 = await steadyMemory(v.members);
    return { appPer10kMiB: per10k(m1.rss[0] - m0.rss[0], n), heapPer10kMiB: per10k(m1.heap[0] - m0.heap[0], n) };
  });
  out.redis = await withProcesses(async (track) => {
    const v = await startVariant('redis', track);
    const redisPid = v.redis!.pid;
    const r0 = rssBytes(redisPid);
    await fill(v.url, n);
    await sleep(200);
    return { redisServerPer10kMiB: per10k(rssBytes(redisPid) - r0, n) };
  });
  out.backup = await withProcesses(async (track) => {
    const v = await startVariant('backup', track);
    const m0 = await steadyMemory(v.members);
    await fill(v.url, n);
    const m1 = await steadyMemory(v.members);
    const growth = m1.rss.map((r, i) => r - m0.rss[i]);
    const heap = m1.heap.map((r, i) => r - m0.heap[i]);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    return {
      primaryPer10kMiB: per10k(growth[0], n),
      backupsPer10kMiB: per10k(sum(growth.slice(1)), n),
      clusterPer10kMiB: per10k(sum(growth), n),
      sessionsPerGiB: sum(growth) > 0 ? Math.round(n / (sum(growth) / 1024 ** 3)) : null,
      heap: { primaryPer10kMiB: per10k(heap[0], n), backupsPer10kMiB: per10k(sum(heap.slice(1)), n) },
      // Load goes to node1, which serves every session; nodes 2-4 hold only the n copies (backups: 1).
      perCopyBytes: { heapAndExternal: Math.round(sum(heap.slice(1)) / n), rss: Math.round(sum(growth.slice(1)) / n) },
    };
  });
  log(`  ${JSON.stringify(out)}`);
  return out;
}
