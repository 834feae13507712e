/**
 * Run by bench/tombstones.bench.ts as `node --expose-gc --import tsx bench/tombstone-cost.ts N`: the
 * memory N tombstones take in the table members keep them in (src/replication/tombstones.ts), and
 * in a Map of objects (what they cost before), as heap plus buffers grown after a full GC. Prints
 * one JSON line.
 */
import { randomBytes } from 'node:crypto';
import { Tombstones } from '../src/replication/tombstones.js';

const n = Number(process.argv[2] ?? 200_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');

function used(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const bases = Array.from({ length: n }, () => randomBytes(18).toString('base64url'));
const until = Date.now() + 86_400_000;

// The bases themselves are the sessions' and exist either way: only what keeping them costs counts,
// so the Map's copy of each base string is flattened into a fresh string, as a decoded message's is.
const t0 = used();
const table = new Tombstones();
for (const b of bases) table.set(b, { epoch: 3, owner: 'node2', until });
const t1 = used();

const map = new Map<string, { epoch: number; owner: string; until: number }>();
for (const b of bases) map.set(Buffer.from(b).toString(), { epoch: 3, owner: 'node2', until });
const t2 = used();

process.stdout.write(
  JSON.stringify({
    tombstones: n,
    tableBytesPerTombstone: Math.round(((t1 - t0) / n) * 10) / 10,
    tableSlotBytes: Math.round((table.bytes / table.size) * 10) / 10,
    mapBytesPerTombstone: Math.round(((t2 - t1) / n) * 10) / 10,
    kept: table.size + map.size,
  }) + '\n',
);
