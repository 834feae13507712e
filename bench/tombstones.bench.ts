/**
 * What a destroyed session costs while its tombstone is kept (issue 23, item 8): the tombstone table's
 * memory per tombstone, measured in a child process with a full GC around it (bench/tombstone-cost.ts),
 * at five sizes (the table doubles, so the cost per tombstone moves with its fill), next to a Map of
 * objects (what they cost before). Tombstones are forgotten once every member acknowledged the
 * destruction (8 × ackTimeout later); these bytes are what each costs until then, or for a member that
 * is down, until it returns or the session's expiry.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { commandFor, log } from './lib/context.js';
import { round } from './lib/stats.js';

const SCRIPT = fileURLToPath(new URL('./tombstone-cost.ts', import.meta.url));
const SIZES = [100_000, 150_000, 200_000, 250_000, 300_000];

export default function tombstones(): Promise<Record<string, unknown>> {
  const runs = SIZES.map((n) => {
    const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', SCRIPT, String(n)], { encoding: 'utf8', timeout: 120_000 });
    return JSON.parse(out.trim().split('\n').pop()!) as { tombstones: number; tableBytesPerTombstone: number; mapBytesPerTombstone: number };
  });
  const mean = (xs: number[]) => round(xs.reduce((a, b) => a + b, 0) / xs.length, 1);
  const result = {
    command: commandFor('tombstones'),
    runs,
    tableBytesPerTombstone: mean(runs.map((r) => r.tableBytesPerTombstone)),
    tableBytesRange: [Math.min(...runs.map((r) => r.tableBytesPerTombstone)), Math.max(...runs.map((r) => r.tableBytesPerTombstone))],
    mapBytesPerTombstone: mean(runs.map((r) => r.mapBytesPerTombstone)),
  };
  log(`  tombstones: ${result.tableBytesPerTombstone} bytes each in the table (${result.tableBytesRange.join(' to ')}), ${result.mapBytesPerTombstone} in a Map of objects`);
  return Promise.resolve(result);
}
