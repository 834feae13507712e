/** The README tables of the realistic-network and re-protection scenarios. */
import { code, fmt, type Json } from './format.js';

type Stamp = (x: Json | undefined) => string;

export function rttTables(x: Json | undefined, stamp: Stamp): string[] {
  const out = [`### Realistic network: latency at a moderate load${stamp(x)}`, '', `Command: ${code(x?.command)}`, ''];
  if (x === undefined) return [...out, '_not measured yet_', ''];
  out.push(
    `bench/delay-proxy.ts (its own process) between the app and redis-server and between members, configured to add ${fmt(x.delayMs)} ms each way: ` +
      `measured +${fmt(x.addedRttMs, 3)} ms per round trip (p50, 16 bytes to an echo server, against the same directly) with a configured delay of ${fmt(x.configuredDelayMs, 3)} ms, ` +
      `+${fmt(x.addedRttAfterMs, 3)} ms after the phases. Load: ${fmt(x.rate)} requests/s evenly paced (bench/lib/paced.ts), at most ${x.connections} connections, ` +
      `${x.rounds} rounds of ${x.secondsPerPhase} s per variant and kind, the variants taking turns.`,
    '',
    '| variant | write p50 ms | write p99 ms | read p50 ms | read p99 ms | CPU s per 1k writes | CPU s per 1k reads | proxy CPU s per 1k writes | proxy CPU s per 1k reads | failed |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const names: Record<string, string> = {
    memory: '(a) memory store (no network)',
    redis: '(b) koa-redis, redis-server behind the proxy',
    backup: '(c) cluster backup, 4 members behind the proxy',
    delta: '(d) cluster delta, 3 members behind the proxy',
  };
  for (const k of ['memory', 'redis', 'backup', 'delta']) {
    const v = x[k] as Json | undefined;
    if (v === undefined) continue;
    out.push(
      `| ${names[k]} | ${fmt(v.write.p50Ms)} | ${fmt(v.write.p99Ms)} | ${fmt(v.read.p50Ms)} | ${fmt(v.read.p99Ms)} | ${fmt(v.write.cpuSecondsPer1000, 3)} | ${fmt(v.read.cpuSecondsPer1000, 3)} | ${fmt(v.write.proxyCpuSecondsPer1000, 3)} | ${fmt(v.read.proxyCpuSecondsPer1000, 3)} | ${v.write.failed + v.read.failed} |`,
    );
  }
  return [...out, ''];
}

export function reprotectTables(x: Json | undefined, stamp: Stamp): string[] {
  const out = [`### Re-protection after a SIGKILL${stamp(x)}`, '', `Command: ${code(x?.command)}`, ''];
  if (x === undefined) return [...out, '_not measured yet_', ''];
  out.push(
    `${x.setup}.`,
    '',
    '| | sessions | seconds to 2 copies each | seconds to detect | copies made | copies/s | p99 steady, ms | p99 during, ms | max during, ms | failed requests |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const [label, r] of [['idle', x.idle], [`under ${fmt(x.loaded?.rate)} writes/s on node1`, x.loaded]] as [string, Json | undefined][]) {
    if (r === undefined) continue;
    out.push(
      `| ${label} | ${fmt(r.sessions)} | ${r.timedOut === true ? 'timed out' : fmt(r.seconds)} | ${fmt(r.detectedSeconds)} | ${fmt(r.copiesMade)} | ${fmt(r.copiesPerSecond)} | ${fmt(r.p99SteadyMs)} | ${fmt(r.p99DuringMs)} | ${fmt(r.maxDuringMs)} | ${fmt(r.failedRequests, 0)} |`,
    );
  }
  return [...out, ''];
}
