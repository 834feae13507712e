/** Bytes and messages between members per write, backup and delta mode, 2, 4 and 8 members. */
import { clusterEnv, commandFor, log, settings } from './lib/context.js';
import { cookiesFile, withProcesses } from './lib/phase.js';
import { login, metrics, sleep, startCluster, startLoad } from './lib/servers.js';
import { round } from './lib/stats.js';

export default async function bytesPerWrite(): Promise<Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = { backup: {}, delta: {} };
  for (const mode of ['backup', 'delta'] as const) {
    for (const n of [2, 4, 8]) {
      log(`bytes: ${mode}, ${n} members`);
      out[mode][String(n)] = await withProcesses(async (track) => {
        const cluster = await startCluster(n, mode, clusterEnv, track);
        const node1 = cluster.members[0];
        const cookies = cookiesFile(`bytes-${mode}-${n}`, await login(node1.url, settings.bytesSessions, 8));
        const snapshot = async () => Promise.all(cluster.members.map((m) => metrics(m.url)));
        const sum = (s: Record<string, number>[], k: string) => s.reduce((a, m) => a + (m[k] ?? 0), 0);
        // Background traffic (membership, liveness) measured over two idle seconds, subtracted below;
        // after the start-up's own traffic (a delta member's offers and reconciliation a drop time
        // after it meets the others), which counted as background once and made figures negative.
        await sleep(3000);
        const idle0 = await snapshot();
        const ti0 = performance.now();
        await sleep(2000);
        const idle1 = await snapshot();
        const idlePerMs = (sum(idle1, 'koa_session_cluster_bytes_sent_total') - sum(idle0, 'koa_session_cluster_bytes_sent_total')) / (performance.now() - ti0);
        const idleMsgsPerMs = (sum(idle1, 'koa_session_cluster_messages_sent_total') - sum(idle0, 'koa_session_cluster_messages_sent_total')) / (performance.now() - ti0);
        const m0 = await snapshot();
        const t0 = performance.now();
        const r = await startLoad({
          url: node1.url,
          cookiesFile: cookies,
          connections: settings.bytesConnections,
          method: 'POST',
          path: '/write',
          amount: settings.bytesWrites,
        }).result;
        const m1 = await snapshot();
        const ms = performance.now() - t0;
        const writes = (m1[0].koa_session_cluster_writes_total ?? 0) - (m0[0].koa_session_cluster_writes_total ?? 0) || r.ok;
        const bytes = sum(m1, 'koa_session_cluster_bytes_sent_total') - sum(m0, 'koa_session_cluster_bytes_sent_total') - idlePerMs * ms;
        const msgs = sum(m1, 'koa_session_cluster_messages_sent_total') - sum(m0, 'koa_session_cluster_messages_sent_total') - idleMsgsPerMs * ms;
        const result = {
          writes,
          failed: r.non2xx + r.errors,
          bytesPerWrite: round(bytes / Math.max(1, writes), 1),
          messagesPerWrite: round(msgs / Math.max(1, writes), 2),
          idleBytesPerSecond: round(idlePerMs * 1000, 0),
        };
        log(`  ${mode} N=${n}: ${result.bytesPerWrite} B/write, ${result.messagesPerWrite} messages/write`);
        return result;
      });
    }
  }
  return { command: commandFor('bytes'), note: 'sum over every member of koa_session_cluster_bytes_sent_total (writes, acknowledgements, any other cluster traffic), idle background subtracted, divided by writes', ...out };
}
