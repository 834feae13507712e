/** Throughput, latency and CPU per request of every variant under the same closed-loop load (autocannon, 32 connections). */
import { args, commandFor, log, previousSections, quick, settings } from './lib/context.js';
import { cookiesFile, quietPhase, startVariant, strip, withProcesses } from './lib/phase.js';
import { login, startLoad } from './lib/servers.js';

export default async function throughput(): Promise<Record<string, unknown>> {
  const all = ['memory', 'redis', 'backup', 'delta'] as const;
  const chosen = args.variants === undefined ? all : all.filter((v) => args.variants!.split(',').includes(v));
  // Variants not measured this time keep their previous figures.
  const out: Record<string, unknown> = { ...(previousSections.throughput ?? {}) };
  for (const variant of chosen) {
    log(`throughput: ${variant}`);
    out[variant] = await withProcesses(async (track) => {
      const v = await startVariant(variant, track);
      const cookies = cookiesFile(variant, await login(v.url, settings.sessions));
      const base = { url: v.url, cookiesFile: cookies, connections: settings.connections };
      await startLoad({ ...base, method: 'POST', path: '/write', duration: settings.warmupSeconds }).result;
      await startLoad({ ...base, method: 'GET', path: '/read', duration: settings.warmupSeconds }).result;
      const write = await quietPhase(`${variant} writes`, v.procs, { ...base, method: 'POST', path: '/write', duration: settings.phaseSeconds });
      const read = await quietPhase(`${variant} reads`, v.procs, { ...base, method: 'GET', path: '/read', duration: settings.phaseSeconds });
      log(
        `  ${variant}: writes ${write.rps}/s p99 ${write.p99Ms} ms, ${write.cpuSecondsPer1000} CPU s/1k; ` +
          `reads ${read.rps}/s p99 ${read.p99Ms} ms, ${read.cpuSecondsPer1000} CPU s/1k; other load ${write.otherCores}/${read.otherCores} cores`,
      );
      return {
        processes: v.procs.length,
        loadOn: variant === 'backup' || variant === 'delta' ? 'node1' : 'the app',
        write: strip(write),
        read: strip(read),
        measuredAt: new Date().toISOString(),
        quick,
      };
    });
  }
  return { ...out, command: commandFor('throughput') };
}
