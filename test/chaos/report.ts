/**
 * The chaos run's one table, and the first violations with the member log lines that explain them
 * (lines naming the requests involved or the session's short id, around the time it was seen).
 */
import { readFileSync } from 'node:fs';
import { fmt, PROMISES, type PromiseNo, type Totals, type Violation } from './history.js';
import type { Convergence, Fault } from './nemesis.js';

export interface ChaosResult {
  options: {
    mode: string;
    framework?: string;
    members: number;
    net: string;
    duration: number;
    seed: number;
    clients: number;
    /** The share of clients sending each request to any member. */
    roaming?: number;
    dropTime: number;
    backups?: number;
    zones?: number;
    expectedMembers?: number;
    /** The kinds of fault the run drew from. */
    faults?: string[];
  };
  totals: Totals;
  violations: Violation[];
  faults: (Fault & { at: number })[];
  convergences: Convergence[];
  liveAtEnd: { min: number; max: number; maybe: Record<string, number> };
  stoppedBecause: string | undefined;
  excuses: string[];
  /** Excused "no session" answers per kind of fault. */
  excusedBy?: Record<string, number>;
  logDir: string;
  logFiles: Record<string, string>;
  t0: number;
  elapsedMs: number;
}

type Row = [name: string, value: string];

function row(name: string, value: string): Row {
  return [name, value];
}

/** The table printed at the end of a run. */
export function table(r: ChaosResult): string {
  const o = r.options;
  const t = r.totals;
  const byKind = new Map<string, number>();
  for (const f of r.faults) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
  const measured = r.convergences.filter((c) => c.fault !== 'final');
  const worst = measured.reduce<Convergence | undefined>((w, c) => (w === undefined || (c.ms ?? Infinity) > (w.ms ?? Infinity) ? c : w), undefined);
  const copies = measured.filter((c) => c.copiesMs !== undefined);
  const slowestCopies = copies.reduce<Convergence | undefined>((w, c) => (w === undefined || c.copiesMs! > w.copiesMs! ? c : w), undefined);
  const copyFailures = r.violations.filter((v) => v.promise === 5 && v.detail.includes('copies of')).length;
  const excusedBy = Object.entries(r.excusedBy ?? {}).map(([k, n]) => `${k} ${n}`);
  const perPromise = ([1, 2, 3, 4, 5] as PromiseNo[]).map((p) => {
    const vs = r.violations.filter((v) => v.promise === p);
    const sessions = new Set(vs.map((v) => v.login).filter((l) => l !== undefined)).size;
    return row(`violations of promise ${p}: ${PROMISES[p]}`, vs.length === 0 ? '0' : `${vs.length}${sessions > 0 ? ` (${sessions} sessions)` : ''}`);
  });
  const maybe = Object.entries(r.liveAtEnd.maybe).map(([why, n]) => `${n} ${why}`);
  const live = `${r.liveAtEnd.min === r.liveAtEnd.max ? r.liveAtEnd.min : `${r.liveAtEnd.min}..${r.liveAtEnd.max}`}${maybe.length > 0 ? ` (maybe: ${maybe.join(', ')})` : ''}`;
  const rows: Row[] = [
    row('framework', o.framework ?? 'koa'),
    row(
      'options',
      `backups ${o.backups ?? 1}, zones ${o.zones ?? 'none'}, expectedMembers ${o.expectedMembers ?? 'none'}, roaming clients ${Math.round((o.roaming ?? 0) * o.clients)} of ${o.clients}; faults drawn from ${o.faults?.join(', ') ?? '?'}`,
    ),
    row('faults', `${r.faults.length}: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`),
    row('requests sent', `${t.sent} (answered 200: ${t.ok})`),
    row('acknowledged writes', `${t.acked.incr + t.acked.login + t.acked.regenerate + t.acked.logout} (incr ${t.acked.incr}, login ${t.acked.login}, regenerate ${t.acked.regenerate}, logout ${t.acked.logout})`),
    row('indeterminate requests', `${t.indeterminate} (timeouts, connection errors, 5xx after the handler started)`),
    row('requests never answered', `${t.unanswered} (failures: no answer within the client's timeout; counted in the line above too)`),
    row('requests without effect', `${t.refused} (connection refused, or failed before the handler started); 503 answers in all: ${t.unavailable503}`),
    row('reads / replays', `${t.reads} reads; ${t.replays} replays of destroyed ids (${t.replaysNoSession} "no session")`),
    row('log out everywhere but here', `${t.revocations} answered, ${t.revoked} other sessions ended (their ids are replayed above)`),
    row(
      'excused',
      `${t.excused} "no session" answers: for a session whose every copy a partition cut off${excusedBy.length > 0 ? ` (${excusedBy.join(', ')})` : ''}, or while a revocation the client gave up on may still run`,
    ),
    row('live sessions at the end', live),
    row(
      'worst convergence',
      worst === undefined
        ? 'none measured'
        : `${worst.ms === undefined ? 'never' : `${worst.ms} ms`} after ${worst.fault} (limit ${o.dropTime + 2000} ms${worst.waitedMs ? ` + ${worst.waitedMs} ms its members waited for a CPU` : ''}, ${measured.length} measured; longest CPU wait ${Math.max(0, ...measured.map((c) => c.waitedMs ?? 0))} ms)`,
    ),
    row(
      'copies per session',
      slowestCopies === undefined
        ? `never compared${copyFailures > 0 ? `; ${copyFailures} checks found copies that never agreed` : ''}`
        : `agreed at ${copies.length} of ${measured.length} quiet points, slowest ${slowestCopies.copiesMs} ms after the clients were still (${slowestCopies.fault}); ${copyFailures} never agreed`,
    ),
    row('violations, all promises', `${r.violations.length}`),
    ...perPromise,
    ...(r.stoppedBecause === undefined ? [] : [row('nemesis stopped early', r.stoppedBecause)]),
    row('member logs', r.logDir),
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const title = `chaos run: mode ${o.mode}, ${o.members} members, net ${o.net}, ${o.duration} s of faults, seed ${o.seed}, ${o.clients} clients, dropTime ${o.dropTime} ms`;
  return [title, ...rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`)].join('\n');
}

interface LogLine {
  member: string;
  time: number;
  text: string;
}

function readLogs(files: Record<string, string>): LogLine[] {
  const out: LogLine[] = [];
  for (const [member, file] of Object.entries(files)) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /"time":(\d+)/.exec(line);
      if (m !== null) out.push({ member, time: Number(m[1]), text: line });
    }
  }
  return out.sort((a, b) => a.time - b.time);
}

/** The first `n` violations, each with the member log lines that mention it, and the first excuses. */
export function violationDetails(r: ChaosResult, n = 8): string {
  if (r.violations.length === 0) return '';
  const logs = readLogs(r.logFiles);
  const parts: string[] = [];
  if (r.excuses.length > 0) parts.push(`excused (first ${Math.min(5, r.excuses.length)}):`, ...r.excuses.slice(0, 5).map((e) => `- ${e}`));
  parts.push(`first ${Math.min(n, r.violations.length)} of ${r.violations.length} violations:`);
  for (const v of r.violations.slice(0, n)) {
    parts.push(
      `- promise ${v.promise} (${PROMISES[v.promise]}) at ${fmt(v.at)}` +
        `${v.client === undefined ? '' : `, client ${v.client}`}${v.login === undefined ? '' : `, login ${v.login}`}` +
        `${v.base === undefined ? '' : `, session ${v.base.slice(0, 6)}`}${v.member === undefined ? '' : `, answered by ${v.member}`}` +
        `${v.req === undefined ? '' : `, request ${v.req}`}\n  ${v.detail}`,
    );
    const short = v.base?.slice(0, 6);
    // The requests involved, the session's short id in the library's logs, and the nemesis's marks.
    const needles = [...v.related.map((q) => `"req":"${q}"`), ...(short === undefined ? [] : [`"${short}"`]), '"event":"chaos: '];
    const at = r.t0 + v.at;
    const from = r.t0 + Math.min(v.at - 20_000, v.since ?? Infinity);
    const lines = logs.filter((l) => l.time >= from && l.time <= at + 2000 && needles.some((x) => l.text.includes(x)));
    // The oldest lines show the cause, the newest the symptom: keep both ends of a long list.
    const shown = lines.length <= 40 ? lines : [...lines.slice(0, 20), ...lines.slice(-20)];
    for (const l of shown) parts.push(`    [${l.member} ${fmt(l.time - r.t0)}] ${l.text.length > 300 ? `${l.text.slice(0, 300)}…` : l.text}`);
  }
  return parts.join('\n');
}
