/**
 * The demo's two HTML pages, rendered from plain strings: no template engine, every interpolated
 * value goes through `escapeHtml`.
 */
import type { User } from './user.js';

/** The member that rendered a page, shown on every page so a failover is visible. */
export interface ServedBy {
  route: string;
  port: number;
  pid: number;
  mode: 'backup' | 'delta';
  /** Live members' routes as this member sees them, self included. */
  members: string[];
}

/** One of the user's sessions, as "Your sessions" lists it. */
export interface SessionRow {
  route: string;
  createdAt: number;
  lastAccessAt: number;
  /** The session of this browser. */
  current: boolean;
}

/** What the welcome page shows. */
export interface WelcomeView {
  user: User;
  cart: string[];
  /** The route suffix of the session id in the cookie after this request (the session's primary). */
  sessionRoute: string | undefined;
  /** The user's sessions on every member; undefined when the cluster cannot list them now. */
  sessions: SessionRow[] | undefined;
}

/** Escapes text for HTML element content and double- or single-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A stable colour per route, so each member's pages look different at a glance. */
function hue(route: string): number {
  let h = 0;
  for (const c of route) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

const STYLE = `
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  header { padding: 14px 24px; color: #fff; display: flex; justify-content: space-between; align-items: center; }
  header .brand { font-weight: 600; }
  header .member { font-family: ui-monospace, monospace; background: rgba(0,0,0,.2); padding: 2px 10px; border-radius: 12px; }
  main { max-width: 640px; margin: 32px auto; background: #fff; border-radius: 8px; padding: 24px 32px;
         box-shadow: 0 1px 3px rgba(0,0,0,.12); }
  h1 { margin-top: 0; font-size: 28px; }
  h2 { font-size: 18px; margin-bottom: 8px; }
  form { display: flex; gap: 8px; margin: 8px 0; }
  input { flex: 1; font: inherit; padding: 6px 10px; border: 1px solid #b8bfcc; border-radius: 4px; }
  button { font: inherit; padding: 6px 16px; border: 0; border-radius: 4px; background: #2f5bd3; color: #fff; cursor: pointer; }
  button.secondary { background: #6b7385; }
  ul.cart li { font-family: ui-monospace, monospace; }
  .muted { color: #6b7385; font-size: 14px; }
  .error { color: #b3261e; }
  code { background: #eef0f4; padding: 1px 5px; border-radius: 3px; }
  table { border-collapse: collapse; width: 100%; font-size: 14px; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e3e6ec; }
  tr.current td { font-weight: 600; }
  footer { max-width: 640px; margin: 0 auto 32px; }
`;

function layout(title: string, served: ServedBy, body: string): string {
  const members = served.members
    .map((r) => (r === served.route ? `<strong>${escapeHtml(r)}</strong>` : escapeHtml(r)))
    .join(', ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header style="background: hsl(${hue(served.route)} 55% 38%)">
  <span class="brand">koa-session-cluster demo</span>
  <span class="member" id="served-by">served by ${escapeHtml(served.route)} · port ${served.port} · pid ${served.pid}</span>
</header>
<main>
${body}
</main>
<footer class="muted">
  <p>Cluster (${escapeHtml(served.mode)} mode), live members: <span id="members">${members}</span>.
  <a href="/cluster/dashboard" id="dashboard-link">Cluster status page</a> ·
  JSON: <code>GET /me</code>, <code>GET /cluster/status</code>.</p>
</footer>
</body>
</html>
`;
}

/** The login form (username only: the demo has no passwords). */
export function loginPage(served: ServedBy, error?: string): string {
  const message = error === undefined ? '' : `<p class="error" role="alert">${escapeHtml(error)}</p>`;
  return layout(
    'Log in · koa-session-cluster demo',
    served,
    `<h1>Log in</h1>
<p>Your session lives in this cluster's members, not in Redis: log in here, then open another member
or kill this one, and you stay logged in.</p>
${message}
<form method="post" action="/login">
  <input name="username" placeholder="username" aria-label="username" required maxlength="40" autofocus>
  <button type="submit" id="login">Log in</button>
</form>`,
  );
}

/** "Your sessions": every session of the user, on whichever member, with "log out the others". */
function sessionsSection(sessions: SessionRow[] | undefined): string {
  if (sessions === undefined) return '<h2>Your sessions</h2>\n<p class="muted">The sessions cannot be listed right now; reload in a moment.</p>';
  const time = (ms: number) => escapeHtml(new Date(ms).toISOString().replace('T', ' ').slice(0, 19));
  const rows = sessions
    .map((s) => `<tr class="session${s.current ? ' current' : ''}"><td>${escapeHtml(s.route)}</td><td>${time(s.createdAt)}</td><td>${time(s.lastAccessAt)}</td><td>${s.current ? 'this browser' : ''}</td></tr>`)
    .join('');
  const others = sessions.some((s) => !s.current)
    ? `<form method="post" action="/sessions/revoke-others">
  <button type="submit" class="secondary" id="logout-others">Log out the others</button>
</form>`
    : '';
  return `<h2>Your sessions</h2>
<table id="sessions"><thead><tr><th>member</th><th>since (UTC)</th><th>last seen (UTC)</th><th></th></tr></thead><tbody>${rows}</tbody></table>
${others}`;
}

/** The page of a logged-in user: who they are, who served them, their cart, and how to fail over. */
export function welcomePage(view: WelcomeView, served: ServedBy): string {
  const items =
    view.cart.length === 0
      ? '<p class="muted" id="cart-empty">Your cart is empty.</p>'
      : `<ul class="cart" id="cart">${view.cart.map((i) => `<li>${escapeHtml(i)}</li>`).join('')}</ul>`;
  const bound = view.sessionRoute === undefined ? 'this member' : escapeHtml(view.sessionRoute);
  return layout(
    `${view.user.username} · koa-session-cluster demo`,
    served,
    `<h1 id="greeting">${escapeHtml(view.user.greeting())}</h1>
<p class="muted">Logged in since ${escapeHtml(view.user.since.toISOString())}. Your session is bound to
<strong id="session-route">${bound}</strong> (the suffix of the session cookie).</p>
<h2>Cart</h2>
${items}
<form method="post" action="/cart">
  <input name="item" placeholder="add an item" aria-label="item" required maxlength="60">
  <button type="submit" id="add">Add</button>
</form>
${sessionsSection(view.sessions)}
<h2>Fail over</h2>
<p>Kill the member that served this page (<code>kill -9 ${served.pid}</code>) and reload: another member
takes the session over, and you are still logged in with your cart.</p>
<form method="post" action="/logout">
  <button type="submit" class="secondary" id="logout">Log out</button>
</form>`,
  );
}
