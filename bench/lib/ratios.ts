/**
 * The ratios of results.json and their goals (issue 14). Each ratio is computed from figures of one
 * section, so a section measured again updates only its own ratios' inputs.
 */
import { round } from './stats.js';
import type { Results, Section } from './context.js';
import type { Json } from './format.js';

export interface Goal {
  ratio: string;
  /** As the README shows it. */
  goal: string;
  met: (v: number) => boolean;
  /** The section whose figures it comes from (and whose command measures it again). */
  section: Section;
  what: string;
}

const atMost = (x: number) => (v: number) => v <= x;
const atLeast = (x: number) => (v: number) => v >= x;

/** Every ratio with a goal, in the order of the table. */
export const GOALS: Goal[] = [
  { ratio: 'rss_cluster_vs_redis', goal: '≤ 2.5', met: atMost(2.5), section: 'memory', what: 'RSS per 10k sessions, whole backup cluster (both copies) vs redis-server' },
  { ratio: 'rss_primary_vs_memory', goal: '≤ 1.0', met: atMost(1.0), section: 'memory', what: 'RSS per 10k sessions on the primary vs the memory-store app' },
  { ratio: 'cpu_per_write_vs_redis', goal: '≤ 1.0', met: atMost(1.0), section: 'throughput', what: 'CPU per write, all processes, vs koa-redis (app + redis-server)' },
  { ratio: 'cpu_per_read_vs_memory', goal: '≤ 1.05', met: atMost(1.05), section: 'throughput', what: 'CPU per read, all processes, vs the memory store' },
  { ratio: 'bytes_per_write_backup', goal: '≤ 100', met: atMost(100), section: 'bytes', what: 'bytes between members per write, backup mode, 4 members' },
  { ratio: 'transfer_mb_per_s', goal: '≥ 50', met: atLeast(50), section: 'transfer', what: 'state transfer to a joining delta member, MB/s' },
  { ratio: 'failover_p99_ratio', goal: '≤ 3', met: atMost(3), section: 'failover', what: 'failover: p99 of the first second after SIGKILL / p99 before' },
  { ratio: 'failover_failed_requests', goal: '= 0', met: (v) => v === 0, section: 'failover', what: 'failed requests across the failover' },
  { ratio: 'reprotect_100k_seconds', goal: '≤ 5', met: atMost(5), section: 'reprotect', what: 're-protection under load: SIGKILL one of 4 members holding 100k sessions, seconds until every session has 2 copies' },
  { ratio: 'reprotect_p99_ratio', goal: '≤ 3', met: atMost(3), section: 'reprotect', what: 're-protection under load: p99 during / p99 steady' },
  { ratio: 'rtt_read_p50_vs_redis', goal: '≤ 0.5', met: atMost(0.5), section: 'rtt', what: 'realistic network (0.25 ms each way): read p50 vs koa-redis' },
  { ratio: 'rtt_write_p50_vs_redis', goal: '≤ 0.6', met: atMost(0.6), section: 'rtt', what: 'realistic network (0.25 ms each way): write p50 vs koa-redis' },
  { ratio: 'avro_vs_json_bytes', goal: '≤ 0.6', met: atMost(0.6), section: 'codec', what: 'Avro vs JSON size of the same session' },
];

/** Ratios kept for information, without a goal (on two shared cores the app process is every store's bottleneck). */
export const INFO: { ratio: string; section: Section }[] = [
  { ratio: 'write_rps_vs_redis', section: 'throughput' },
  { ratio: 'read_rps_vs_redis', section: 'throughput' },
  { ratio: 'cpu_per_read_vs_redis', section: 'throughput' },
  { ratio: 'delta_write_rps_vs_redis', section: 'throughput' },
  { ratio: 'delta_read_rps_vs_redis', section: 'throughput' },
  { ratio: 'delta_cpu_per_write_vs_redis', section: 'throughput' },
  { ratio: 'reprotect_100k_idle_seconds', section: 'reprotect' },
  { ratio: 'sessions_per_gib', section: 'memory' },
  { ratio: 'tombstone_bytes', section: 'tombstones' },
  { ratio: 'rss_per_copy_bytes', section: 'memory' },
];

const ratio = (a: unknown, b: unknown, digits = 3) => (typeof a !== 'number' || typeof b !== 'number' || b === 0 ? null : round(a / b, digits));
const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : null);

export function ratios(sections: Results['sections'], sessionSchema: boolean): Record<string, number | null> {
  const s = sections as Json;
  const t = s.throughput as Json | undefined;
  const c = s.codec as Json | undefined;
  const m = s.memory as Json | undefined;
  const f = s.failover as Json | undefined;
  const rtt = s.rtt as Json | undefined;
  const rp = s.reprotect as Json | undefined;
  return {
    rss_cluster_vs_redis: ratio(m?.backup?.clusterPer10kMiB, m?.redis?.redisServerPer10kMiB),
    rss_primary_vs_memory: ratio(m?.backup?.primaryPer10kMiB, m?.memory?.appPer10kMiB),
    cpu_per_write_vs_redis: ratio(t?.backup?.write?.cpuSecondsPer1000, t?.redis?.write?.cpuSecondsPer1000),
    cpu_per_read_vs_memory: ratio(t?.backup?.read?.cpuSecondsPer1000, t?.memory?.read?.cpuSecondsPer1000),
    bytes_per_write_backup: num(s.bytes?.backup?.['4']?.bytesPerWrite),
    transfer_mb_per_s: num(s.transfer?.mbPerSecond),
    failover_p99_ratio: ratio(f?.p99FirstSecondMs, f?.p99BeforeMs, 2),
    failover_failed_requests: num(f?.failedRequests),
    reprotect_100k_seconds: num(rp?.loaded?.seconds),
    reprotect_p99_ratio: ratio(rp?.loaded?.p99DuringMs, rp?.loaded?.p99SteadyMs, 2),
    rtt_read_p50_vs_redis: ratio(rtt?.backup?.read?.p50Ms, rtt?.redis?.read?.p50Ms),
    rtt_write_p50_vs_redis: ratio(rtt?.backup?.write?.p50Ms, rtt?.redis?.write?.p50Ms),
    avro_vs_json_bytes: num(sessionSchema ? c?.avroSchemaVsJson : c?.avroVsJson),
    write_rps_vs_redis: ratio(t?.backup?.write?.rps, t?.redis?.write?.rps),
    read_rps_vs_redis: ratio(t?.backup?.read?.rps, t?.redis?.read?.rps),
    cpu_per_read_vs_redis: ratio(t?.backup?.read?.cpuSecondsPer1000, t?.redis?.read?.cpuSecondsPer1000),
    delta_write_rps_vs_redis: ratio(t?.delta?.write?.rps, t?.redis?.write?.rps),
    delta_read_rps_vs_redis: ratio(t?.delta?.read?.rps, t?.redis?.read?.rps),
    delta_cpu_per_write_vs_redis: ratio(t?.delta?.write?.cpuSecondsPer1000, t?.redis?.write?.cpuSecondsPer1000),
    reprotect_100k_idle_seconds: num(rp?.idle?.seconds),
    // Sessions one GiB of member memory holds, copies included (a run before it was measured: from the MiB per 10k).
    sessions_per_gib: num(m?.backup?.sessionsPerGiB) ?? (num(m?.backup?.clusterPer10kMiB) === null ? null : Math.round((10_000 * 1024) / m!.backup.clusterPer10kMiB)),
    tombstone_bytes: num(s.tombstones?.tableBytesPerTombstone),
    // Heap and external memory per backup copy, measured in the members holding the copies after a full GC.
    rss_per_copy_bytes: num(m?.backup?.perCopyBytes?.heapAndExternal),
  };
}
