/**
 * The cluster status page (`GET /cluster/dashboard`): one self-contained HTML document with an inline
 * script that polls `status?peers=1` beside it (relative, so any router prefix works) and draws the
 * members, session counts, small charts and the newest events. Nothing is fetched from elsewhere.
 *
 * Safety: the script renders every value from the JSON with `textContent` and DOM nodes, never
 * `innerHTML`; the one server-side value (this member's route) is HTML-escaped into an attribute. The
 * Content-Security-Policy allows only this script and this style, by hash, and requests to this origin.
 */
import { createHash } from 'node:crypto';

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; background: #f3f4f7; color: #1c2230; }
header { background: #1f2a44; color: #fff; padding: 12px 20px; display: flex; flex-wrap: wrap; gap: 6px 24px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
header .from { font-family: ui-monospace, monospace; background: rgba(255,255,255,.15); padding: 2px 10px; border-radius: 12px; }
header .poll { color: #c9d1e6; font-size: 13px; }
main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
section { background: #fff; border-radius: 8px; padding: 12px 16px; box-shadow: 0 1px 3px rgba(0,0,0,.1); }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 15px; margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e6e8ee; }
th { font-weight: 600; color: #5b6478; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono { font-family: ui-monospace, monospace; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; }
.alive { background: #2e7d32; } .suspected { background: #e69500; } .left { background: #6b7385; } .failed { background: #c62828; }
.bad { color: #c62828; font-weight: 700; } .good { color: #2e7d32; font-weight: 700; }
.tiles { display: flex; gap: 12px; flex-wrap: wrap; }
.tile { flex: 1; min-width: 120px; background: #f7f8fb; border-radius: 6px; padding: 8px 12px; }
.tile .v { font-size: 26px; font-weight: 700; font-variant-numeric: tabular-nums; }
.tile .k { color: #5b6478; font-size: 12px; }
.tile.alarm { background: #fdecea; } .tile.alarm .v { color: #c62828; }
.charts { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; }
.chart svg { width: 100%; height: 90px; background: #f7f8fb; border-radius: 4px; }
.chart polyline { fill: none; stroke: #2f5bd3; stroke-width: 1.5; }
.chart .k { color: #5b6478; font-size: 12px; }
.chart .v { font-weight: 600; font-variant-numeric: tabular-nums; }
#error { display: none; background: #fdecea; color: #8e1b14; padding: 8px 20px; }
#error.on { display: block; }
.ev-removed, .ev-frames-refused, .ev-unprotected { color: #c62828; }
.ev-reprotected, .ev-joined, .ev-cleared { color: #2e7d32; }
.ev-suspected, .ev-heartbeats-dropped { color: #b36b00; }
`;

// Plain ES2020 for any browser; reads nothing but the status JSON beside the page.
const SCRIPT = `
'use strict';
const POLL_MS = 2000, WINDOW_MS = 10 * 60 * 1000, MAX_EVENTS = 50;
const $ = (id) => document.getElementById(id);
const PAGE_ROUTE = document.body.dataset.route;
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; };
const num = (v) => (typeof v === 'number' && isFinite(v) ? v : 0);
const time = (ms) => new Date(ms).toLocaleTimeString();
const last = new Map();   // member id -> its counters at the previous poll
const points = [];        // { t, writes, takeovers, ack }
const events = new Map(); // "<id of the member that saw it>:<seq>" -> event

function rates(peers, now) {
  let writes = 0, takeovers = 0, ackSum = 0, ackCount = 0, any = false;
  for (const p of peers) {
    if (p.error !== undefined) continue;
    const before = last.get(p.id);
    last.set(p.id, { at: now, writes: num(p.writes), takeovers: num(p.takeovers), sum: num(p.ackLatencyMs && p.ackLatencyMs.sum), count: num(p.ackLatencyMs && p.ackLatencyMs.count) });
    if (before === undefined) continue;
    const s = (now - before.at) / 1000;
    if (s <= 0) continue;
    any = true;
    // A counter that went down is a restarted member: its new count is all since the restart.
    const d = (a, b) => (a >= b ? a - b : a);
    writes += d(num(p.writes), before.writes) / s;
    takeovers += d(num(p.takeovers), before.takeovers) / s;
    ackSum += d(num(p.ackLatencyMs.sum), before.sum);
    ackCount += d(num(p.ackLatencyMs.count), before.count);
  }
  if (!any) return;
  points.push({ t: now, writes, takeovers, ack: ackCount > 0 ? ackSum / ackCount : null });
  while (points.length > 0 && points[0].t < now - WINDOW_MS) points.shift();
}

// The first answer carries each member's last ten minutes in 5 s intervals: the charts start full.
let seeded = false;
function seed(peers) {
  const sums = new Map();
  for (const p of peers) {
    for (const b of (p.error === undefined && p.history) || []) {
      const s = sums.get(b.at) || { writes: 0, takeovers: 0, ackMs: 0, acks: 0 };
      s.writes += num(b.writes); s.takeovers += num(b.takeovers); s.ackMs += num(b.ackMs); s.acks += num(b.acks);
      sums.set(b.at, s);
    }
  }
  const now = Date.now();
  for (const at of [...sums.keys()].sort((a, b) => a - b)) {
    const s = sums.get(at);
    if (at + 5000 >= now - WINDOW_MS) points.push({ t: at + 5000, writes: s.writes / 5, takeovers: s.takeovers / 5, ack: s.acks > 0 ? s.ackMs / s.acks : null });
  }
  seeded = true;
}

function chart(id, key, unit, digits) {
  const box = $(id), svg = box.querySelector('svg'), line = svg.querySelector('polyline');
  const vals = points.filter((p) => p[key] !== null);
  const max = Math.max(1e-9, ...vals.map((p) => p[key]));
  const now = Date.now();
  // The x axis spans the data held (at least 30 s), so a page opened a moment ago still draws a line.
  const span = Math.min(WINDOW_MS, Math.max(30000, points.length > 0 ? now - points[0].t : 0));
  line.setAttribute('points', vals.map((p) => ((1 - (now - p.t) / span) * 300).toFixed(1) + ',' + (88 - (p[key] / max) * 80).toFixed(1)).join(' '));
  const cur = vals.length > 0 ? vals[vals.length - 1][key] : null;
  box.querySelector('.v').textContent = cur === null ? '–' : cur.toFixed(digits) + ' ' + unit;
  box.querySelector('.max').textContent = vals.length > 0 ? 'max ' + max.toFixed(digits) : '';
}

function memberRows(status) {
  const counts = new Map((status.peers || []).map((p) => [p.id, p]));
  const rows = status.members.map((m) => ({ ...m, state: m.state || 'alive' }));
  for (const d of status.departed || []) rows.push({ ...d, self: false });
  const body = $('members');
  body.replaceChildren();
  let unprotected = 0, under = 0, primary = 0, alive = 0;
  for (const m of rows) {
    const c = counts.get(m.id);
    const tr = el('tr');
    tr.dataset.route = m.route;
    const notes = [m.route === PAGE_ROUTE ? 'page' : '', m.self ? 'answered' : ''].filter((x) => x);
    tr.appendChild(el('td', m.route + (notes.length > 0 ? ' (' + notes.join(', ') + ')' : ''), 'mono'));
    const st = el('td'); st.appendChild(el('span', m.state, 'badge state ' + m.state)); tr.appendChild(st);
    tr.appendChild(el('td', m.host + ':' + m.port, 'mono'));
    tr.appendChild(el('td', m.zone || '', 'zone'));
    if (c === undefined || c.error !== undefined) {
      const why = c === undefined ? (m.state === 'left' || m.state === 'failed' ? '' : '…') : 'no counts: ' + c.error;
      const td = el('td', why); td.colSpan = 7; tr.appendChild(td);
    } else {
      const u = num(c.sessions.underReplicated);
      tr.appendChild(el('td', c.sessions.primary, 'num primary'));
      tr.appendChild(el('td', c.sessions.backup, 'num backup'));
      tr.appendChild(el('td', c.sessions.unprotected, 'num unprotected' + (c.sessions.unprotected > 0 ? ' bad' : '')));
      tr.appendChild(el('td', u, 'num under-replicated' + (u > 0 ? ' bad' : '')));
      // Capacity (absent from a member of an older release): fill against maxSessions, refusals, evictions.
      const cap = c.capacity;
      const fill = cap === undefined ? '' : Math.round(num(cap.fill) * 100) + ' %' + (cap.overloaded ? ' (overloaded)' : '');
      const full = cap !== undefined && (cap.overloaded || num(cap.held) >= num(cap.plannedLevel));
      const fillCell = el('td', fill, 'num fill' + (full ? ' bad' : ''));
      if (cap !== undefined) fillCell.title = cap.held + ' of ' + cap.maxSessions + ' held; new sessions stop at ' + cap.plannedLevel;
      tr.appendChild(fillCell);
      tr.appendChild(el('td', cap === undefined ? '' : cap.refused, 'num refused'));
      tr.appendChild(el('td', cap === undefined ? '' : cap.evicted, 'num evicted'));
      unprotected += num(c.sessions.unprotected);
      under += u;
      primary += num(c.sessions.primary);
    }
    tr.appendChild(el('td', m.since ? m.state + ' at ' + time(m.since) : m.startTime ? 'up since ' + time(m.startTime) : ''));
    if (m.state === 'alive' || m.state === 'suspected') alive++;
    body.appendChild(tr);
  }
  $('alive-total').textContent = alive + ' / ' + rows.length;
  $('sessions-total').textContent = primary;
  const u = $('unprotected-total');
  u.textContent = unprotected;
  u.closest('.tile').classList.toggle('alarm', unprotected > 0);
  $('unprotected-note').textContent = unprotected > 0 ? 'sessions with one copy: re-protection running' : 'every session has a backup';
  const w = $('under-total');
  w.textContent = under;
  w.closest('.tile').classList.toggle('alarm', under > 0);
  $('under-note').textContent = under > 0 ? 'sessions with fewer copies than asked' : 'every session has all its copies';
}

function eventRows(status) {
  const self = status.members.find((m) => m.self);
  for (const e of status.events || []) events.set((self ? self.id : status.route) + ':' + e.seq, { ...e, seenBy: status.route });
  const list = [...events.entries()].sort(([, a], [, b]) => b.at - a.at || b.seq - a.seq);
  for (const [key] of list.slice(MAX_EVENTS * 4)) events.delete(key); // bounded, however long the page stays open
  const body = $('events');
  body.replaceChildren();
  for (const [, e] of list.slice(0, MAX_EVENTS)) {
    const tr = el('tr', undefined, 'ev-' + e.type);
    tr.appendChild(el('td', time(e.at), 'mono'));
    tr.appendChild(el('td', e.seenBy, 'mono'));
    tr.appendChild(el('td', e.type));
    tr.appendChild(el('td', e.member || '', 'mono'));
    tr.appendChild(el('td', e.detail));
    body.appendChild(tr);
  }
}

async function poll() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5000);
  try {
    const res = await fetch(seeded ? 'status?peers=1' : 'status?peers=1&history=1', { cache: 'no-store', credentials: 'same-origin', signal: ctl.signal });
    if (!res.ok) throw new Error('status answered ' + res.status);
    const status = await res.json();
    const now = Date.now();
    $('answered-by').textContent = status.route;
    $('answered-at').textContent = time(now);
    $('mode').textContent = status.mode + ' mode, ack ' + status.ack;
    if (!seeded) seed(status.peers || []);
    rates(status.peers || [], now);
    memberRows(status);
    eventRows(status);
    chart('chart-writes', 'writes', '/s', 1);
    chart('chart-takeovers', 'takeovers', '/s', 2);
    chart('chart-ack', 'ack', 'ms', 2);
    $('error').classList.remove('on');
  } catch (err) {
    $('error').textContent = 'No answer from the cluster (' + (err && err.message ? err.message : err) + '); retrying.';
    $('error').classList.add('on');
  } finally {
    clearTimeout(timer);
    setTimeout(poll, POLL_MS);
  }
}
poll();
`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The page's Content-Security-Policy: this script and style only, requests to this origin only. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Escapes text for HTML element content and quoted attributes. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const chartBox = (id: string, title: string): string =>
  `<div class="chart" id="${id}"><div class="k">${title} <span class="max"></span></div><div class="v">–</div><svg viewBox="0 0 300 90" preserveAspectRatio="none" aria-label="${title}"><polyline points=""></polyline></svg></div>`;

/** The page of the member `route`. */
export function dashboardPage(route: string): string {
  const r = escapeHtml(route);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Cluster · ${r} · koa-session-cluster</title>
<style>${STYLE}</style>
</head>
<body data-route="${r}">
<header>
  <h1>koa-session-cluster</h1>
  <span class="from" id="page-from">page from ${r}</span>
  <span class="poll">last answer from <span id="answered-by" class="mono">…</span> at <span id="answered-at">…</span> · <span id="mode"></span></span>
</header>
<div id="error" role="alert"></div>
<main>
<section class="wide">
  <div class="tiles">
    <div class="tile"><div class="v" id="alive-total">…</div><div class="k">members alive / shown</div></div>
    <div class="tile"><div class="v" id="sessions-total">…</div><div class="k">sessions (primaries)</div></div>
    <div class="tile"><div class="v" id="unprotected-total">…</div><div class="k">unprotected: <span id="unprotected-note"></span></div></div>
    <div class="tile"><div class="v" id="under-total">…</div><div class="k">under-replicated: <span id="under-note"></span></div></div>
  </div>
</section>
<section class="wide">
  <h2>Members</h2>
  <table><thead><tr><th>route</th><th>state</th><th>address</th><th>zone</th><th class="num">primary</th><th class="num">backup</th><th class="num">unprotected</th><th class="num">under-replicated</th><th class="num">fill</th><th class="num">refused</th><th class="num">evicted</th><th>since</th></tr></thead>
  <tbody id="members"></tbody></table>
</section>
<section class="wide">
  <h2>Replication (whole cluster, last 10 minutes)</h2>
  <div class="charts">${chartBox('chart-writes', 'writes/s')}${chartBox('chart-takeovers', 'takeovers/s')}${chartBox('chart-ack', 'acknowledgement latency')}</div>
</section>
<section class="wide">
  <h2>Events (newest first, as each member saw them)</h2>
  <table><thead><tr><th>time</th><th>seen by</th><th>event</th><th>member</th><th>detail</th></tr></thead>
  <tbody id="events"></tbody></table>
</section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
