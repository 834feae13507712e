/**
 * Reads the allocation samples bench apps write under `--profile` (lib/heap-sampling.ts) and lists
 * where the bytes were allocated: by function (self), by origin, and the top sites in our src/.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { originOf, shortWhere } from './profile.js';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

export interface HeapSummary {
  file: string;
  totalMiB: number;
  top: { fn: string; where: string; mib: number; pct: number; via: string }[];
  topSrc: { fn: string; where: string; mib: number; pct: number; via: string }[];
  byOrigin: { origin: string; pct: number }[];
}

const name = (f: HeapNode['callFrame']) => (f.functionName === '' ? '(anonymous)' : f.functionName);

export function summarizeHeap(file: string, topN = 15): HeapSummary {
  const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode };
  const fns = new Map<string, { fn: string; where: string; bytes: number; via: Map<string, number> }>();
  const origins = new Map<string, number>();
  let total = 0;
  const walk = (n: HeapNode, path: HeapNode['callFrame'][]) => {
    if (n.selfSize > 0) {
      const f = n.callFrame;
      const key = `${name(f)}@${f.url}:${f.lineNumber}`;
      const e = fns.get(key) ?? { fn: name(f), where: shortWhere(f.url, f.lineNumber), bytes: 0, via: new Map<string, number>() };
      e.bytes += n.selfSize;
      const via = path
        .slice(-3)
        .reverse()
        .map((c) => `${name(c)} (${shortWhere(c.url, c.lineNumber).replace(/:\d+$/, '')})`)
        .join(' < ');
      e.via.set(via, (e.via.get(via) ?? 0) + n.selfSize);
      fns.set(key, e);
      const o = originOf(f.url, name(f));
      origins.set(o, (origins.get(o) ?? 0) + n.selfSize);
      total += n.selfSize;
    }
    for (const c of n.children) walk(c, [...path, n.callFrame]);
  };
  walk(head, []);
  const pct = (b: number) => Math.round((1000 * b) / Math.max(1, total)) / 10;
  const row = (e: { fn: string; where: string; bytes: number; via: Map<string, number> }) => ({
    fn: e.fn,
    where: e.where,
    mib: Math.round((e.bytes / 2 ** 20) * 10) / 10,
    pct: pct(e.bytes),
    via: [...e.via].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '',
  });
  const sorted = [...fns.values()].sort((a, b) => b.bytes - a.bytes);
  return {
    file,
    totalMiB: Math.round(total / 2 ** 20),
    top: sorted.slice(0, topN).map(row),
    topSrc: sorted.filter((e) => e.where.startsWith('src/')).slice(0, topN).map(row),
    byOrigin: [...origins].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([origin, b]) => ({ origin, pct: pct(b) })),
  };
}

/** Every `HEAP.<pid>.heapprofile` in `dir`, labelled with `names` by pid. */
export function summarizeHeapDir(dir: string, names: ReadonlyMap<number, string>): HeapSummary[] {
  return readdirSync(dir)
    .filter((f) => /^HEAP\.\d+\.heapprofile$/.test(f))
    .map((f) => ({ ...summarizeHeap(join(dir, f)), file: `${names.get(Number(f.split('.')[1])) ?? f} (allocations sampled over the whole run)` }))
    .sort((a, b) => a.file.localeCompare(b.file));
}

export function formatHeapSummary(s: HeapSummary): string {
  const lines = [`${s.file}: ${s.totalMiB} MiB sampled`, '  by origin:'];
  for (const o of s.byOrigin) lines.push(`    ${String(o.pct).padStart(5)}%  ${o.origin}`);
  lines.push('  top allocating functions (self):');
  for (const t of s.top) lines.push(`    ${String(t.pct).padStart(5)}%  ${t.mib} MiB  ${t.fn}  ${t.where}  via ${t.via}`);
  lines.push('  top allocating functions in src/:');
  for (const t of s.topSrc) lines.push(`    ${String(t.pct).padStart(5)}%  ${t.mib} MiB  ${t.fn}  ${t.where}  via ${t.via}`);
  return lines.join('\n');
}
