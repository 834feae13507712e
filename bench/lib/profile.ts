/**
 * Reads V8 `.cpuprofile` files (written by `node --cpu-prof`) and lists where the time went: the top
 * functions by self time, and self time grouped by origin (our src/, each npm package, Node's
 * internals, GC).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  /** Monotonic clock, microseconds (CLOCK_MONOTONIC on Linux, as `process.hrtime`). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A labelled interval of the monotonic clock, microseconds (`process.hrtime.bigint() / 1000n`). */
export interface ProfileWindow {
  label: string;
  startUs: number;
  endUs: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Top functions by self time (idle excluded from the percentages). */
  top: { fn: string; where: string; selfMs: number; pct: number; via: string }[];
  /** Self time by origin: `src/...` folders, `npm:<package>`, `node:internals`, `(gc)`, `(program)`. */
  byOrigin: { origin: string; selfMs: number; pct: number }[];
  /** The top functions of our own src/ (they are a small share, so rarely in `top`). */
  topSrc: { fn: string; where: string; selfMs: number; pct: number; via: string }[];
}

export function originOf(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm !== null) return `npm:${nm[1]}`;
  const src = /\/src\/([^/]+)\//.exec(url) ?? /\/src\/([^/]+)$/.exec(url);
  if (src !== null) return `src/${src[1].replace(/\.ts$/, '')}`;
  if (url.includes('/bench/')) return 'bench';
  if (url.startsWith('node:')) return 'node:internals';
  return url;
}

export function shortWhere(url: string, line: number): string {
  const i = url.search(/\/(src|bench|node_modules)\//);
  const path = i >= 0 ? url.slice(i + 1) : url.replace(/^file:\/\//, '');
  return `${path}:${line + 1}`;
}

/** Summarises one profile, or only its samples inside `window`. */
export function summarize(file: string, topN = 25, window?: ProfileWindow): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (window !== undefined && (t < window.startUs || t > window.endUs)) continue;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  /** The callers of a node, nearest first, as `fn (file)`. */
  const stackOf = (id: number, depth: number): string => {
    const out: string[] = [];
    for (let p = parent.get(id); p !== undefined && out.length < depth; p = parent.get(p)) {
      const cf = byId.get(p)!.callFrame;
      if (cf.functionName === '(root)') break;
      out.push(`${cf.functionName === '' ? '(anonymous)' : cf.functionName} (${shortWhere(cf.url, cf.lineNumber).replace(/:\d+$/, '')})`);
    }
    return out.join(' < ');
  };
  const fns = new Map<string, { fn: string; where: string; us: number; stacks: Map<string, number> }>();
  const origins = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') continue;
    busyUs += us;
    const fn = functionName === '' ? '(anonymous)' : functionName;
    const key = `${fn}@${url}:${lineNumber}`;
    const e = fns.get(key) ?? { fn, where: shortWhere(url, lineNumber), us: 0, stacks: new Map<string, number>() };
    e.us += us;
    const stack = stackOf(id, 5);
    e.stacks.set(stack, (e.stacks.get(stack) ?? 0) + us);
    fns.set(key, e);
    const origin = originOf(url, fn);
    origins.set(origin, (origins.get(origin) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((1000 * us) / Math.max(1, busyUs)) / 10;
  const row = (e: { fn: string; where: string; us: number; stacks: Map<string, number> }) => ({
    fn: e.fn,
    where: e.where,
    selfMs: Math.round(e.us / 1000),
    pct: pct(e.us),
    // The heaviest call path into it: tells a syscall or a crypto call by who made it.
    via: [...e.stacks].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '',
  });
  const sorted = [...fns.values()].sort((a, b) => b.us - a.us);
  return {
    file,
    totalMs: Math.round(busyUs / 1000),
    topSrc: sorted.filter((e) => e.where.startsWith('src/')).slice(0, 15).map(row),
    top: sorted.slice(0, topN).map(row),
    byOrigin: [...origins]
      .sort((a, b) => b[1] - a[1])
      .map(([origin, us]) => ({ origin, selfMs: Math.round(us / 1000), pct: pct(us) })),
  };
}

/**
 * Summaries of the main-thread profiles in `dir` (Node's default names `CPU.<date>.<time>.<pid>.<thread>.<seq>`;
 * thread 0 is the main thread), labelled with `names` by pid.
 */
export function summarizeDir(
  dir: string,
  names: ReadonlyMap<number, string> = new Map(),
  windows: readonly ProfileWindow[] = [],
  topN = 25,
): ProfileSummary[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .flatMap((f) => {
      const m = /^CPU\.\d+\.\d+\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(f);
      if (m !== null && m[2] !== '0') return [];
      const name = m !== null ? (names.get(Number(m[1])) ?? f) : f;
      // One summary per phase window the process lived through; the whole run if none matched.
      const parts = windows.map((w) => ({ ...summarize(join(dir, f), topN, w), file: `${name} during ${w.label}` })).filter((s) => s.totalMs > 0);
      return parts.length > 0 ? parts : [{ ...summarize(join(dir, f), topN), file: `${name} (whole run)` }];
    })
    .sort((a, b) => a.file.localeCompare(b.file));
}

/** Plain-text rendering for the console and bench/.work/profile-summary.txt. */
export function formatSummary(s: ProfileSummary): string {
  const lines = [`${s.file}: ${s.totalMs} ms busy`, '  by origin:'];
  for (const o of s.byOrigin.slice(0, 15)) lines.push(`    ${String(o.pct).padStart(5)}%  ${o.origin}`);
  lines.push('  top self time:');
  for (const t of s.top) {
    lines.push(`    ${String(t.pct).padStart(5)}%  ${t.fn}  ${t.where}`);
    if (t.pct >= 2 && t.via !== '') lines.push(`            via ${t.via}`);
  }
  lines.push('  top self time in src/:');
  for (const t of s.topSrc) lines.push(`    ${String(t.pct).padStart(5)}%  ${t.fn}  ${t.where}  via ${t.via.split(' < ').slice(0, 2).join(' < ')}`);
  return lines.join('\n');
}
