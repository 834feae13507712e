/**
 * What one backup copy costs in memory, part by part (issue 14): 100k copies of the bench session are
 * installed through the real path a backup takes (`applyCopy` into a `SessionTable`), and the heap and
 * the memory outside it are measured after a full GC, once with everything and then with each part
 * taken away in turn. Run: `node --expose-gc --import tsx bench/copy-anatomy.ts`.
 */
import { randomBytes } from 'node:crypto';
import { createSessionCodec } from '../src/codec/index.js';
import { applyCopy } from '../src/replication/copies.js';
import { SessionTable, type SessionEntry } from '../src/replication/session-table.js';
import { benchSessionSchema, sessionFor } from './session.js';

const N = 100_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

function usage(): { heap: number; external: number; rss: number } {
  for (let i = 0; i < 3; i++) gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external, rss: m.rss };
}

const codec = createSessionCodec({ types: [], sessionSchema: benchSessionSchema, maxSessionBytes: 1 << 20 });
const now = Date.now();
/** The copies as they would arrive: every key encoded on its own, as a write's delta sets it. */
const wire = Array.from({ length: N }, (_, i) => {
  const data = sessionFor(i);
  return {
    base: randomBytes(18).toString('base64url'),
    owner: 'node1',
    epoch: 1,
    version: 1,
    expire: now + 86_400_000,
    maxAge: 86_400_000,
    entries: Object.keys(data).map((key) => ({ key, value: codec.encodeEntries({ [key]: data[key] }) })),
    createdAt: now,
    principal: '',
  };
});
const dataBytes = wire.reduce((n, c) => n + c.entries.reduce((m, x) => m + x.key.length + x.value.length, 0), 0) / N;

const before = usage();
const table = new SessionTable();
for (const c of wire) applyCopy(table, c, 'backup');
const after = usage();
const per = (a: number, b: number) => Math.round((a - b) / N);
console.log(`${N} copies of the bench session, ${dataBytes.toFixed(0)} bytes of keys and encoded values each`);
console.log(`per copy: heap ${per(after.heap, before.heap)} B, outside the heap ${per(after.external, before.external)} B, RSS ${per(after.rss, before.rss)} B`);

// The parts, each rebuilt alone over N copies and measured the same way (then let go).
const entries = [...table.held()];
wire.length = 0;
const parts: [string, (e: SessionEntry) => unknown][] = [
  ['entry object (its fields)', (e) => ({ ...e })],
  ['base string (24 characters)', (e) => Buffer.from(e.base, 'latin1').toString('latin1')],
  ['packed entries (latin1 string)', (e) => Buffer.from(e.packed, 'latin1').toString('latin1')],
  ['the same bytes as a pooled Buffer (before)', (e) => Buffer.from(e.packed, 'latin1')],
];
for (const [name, make] of parts) {
  const kept: unknown[] = [];
  const b = usage();
  for (const e of entries) kept.push(make(e));
  const a = usage();
  console.log(`  ${name.padEnd(45)} ${String(per(a.heap + a.external, b.heap + b.external)).padStart(4)} B (${kept.length} kept)`);
  kept.length = 0;
}
{
  const b = usage();
  const m = new Map(entries.map((e) => [e.base, e]));
  const a = usage();
  console.log(`  ${'Map slot (base to entry)'.padEnd(45)} ${String(per(a.heap, b.heap)).padStart(4)} B (${m.size} kept)`);
}
