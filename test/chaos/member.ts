/**
 * The chaos run's member: a real Koa app with real koa-session and the cluster, configured by
 * environment like test/helpers/app-member.ts, serving the few routes the chaos clients use.
 *
 * The counter is one top-level key `c = { n, w }`: the value and the id of the request that wrote
 * it. One key replicates atomically, so every answer tells the checker which write it read
 * (reads-from), and a lost or resurrected write can be told apart from a late one.
 *
 * Prints `{"event":"listening",...}` when it serves; one log line per finished request
 * (`"msg":"chaos request"`, with the client's request id) for debugging a violation. On SIGTERM it
 * closes the HTTP server, leaves the cluster gracefully and prints `{"event":"stopped"}`.
 */
import { createServer } from 'node:http';
import Koa from 'koa';
import session from 'koa-session';
import { parseSessionId, shortId } from '../../src/replication/session-id.js';
import { chaosCluster, logger, maxAge, route, serveMember, type Counter } from './member-cluster.js';

const cluster = chaosCluster();

const app = new Koa();
app.keys = ['chaos-cookie-key'];
app.silent = true;

// One line per request, after koa-session committed (or failed): status, the id sent and served.
// `x-chaos-handled: 0` on every answer the route handler never started (the route binder or the
// session load failed first): such a request wrote and removed nothing, which the checker may use.
// Errors are answered here, not by Koa's onerror, which would drop that header.
app.use(async (ctx, next) => {
  const started = Date.now();
  const req = ctx.get('x-chaos-req');
  const sent = parseSessionId(ctx.cookies.get('koa.sess', { signed: false }));
  try {
    await next();
  } catch (err) {
    const e = err as Error & { status?: number; code?: string };
    ctx.status = typeof e.status === 'number' && e.status >= 400 ? e.status : 500;
    ctx.body = { error: e.code ?? e.name, message: e.message };
    logger.warn({ req, code: e.code, msg: e.message }, 'request failed');
  } finally {
    ctx.set('x-chaos-handled', ctx.state.handled === true ? '1' : '0');
    const served = ctx.state.served as string | undefined;
    logger.info(
      { req, path: ctx.path, status: ctx.status, handled: ctx.state.handled === true, ms: Date.now() - started, sent: sent && shortId(sent.base), served },
      'chaos request',
    );
  }
});
app.use(cluster.statusRouter().routes());
app.use(cluster.routeBinder());
app.use(session({ store: cluster.store, genid: cluster.genid, maxAge }, app));
app.use(async (ctx) => {
  ctx.state.handled = true;
  const req = ctx.get('x-chaos-req');
  const s = ctx.session!;
  const loggedIn = typeof s.login === 'string';
  const answer = (extra: Record<string, unknown>) => {
    const id = parseSessionId(s.externalKey);
    if (loggedIn && id !== undefined) ctx.state.served = shortId(id.base);
    ctx.body = { route, loggedIn, login: s.login ?? null, base: loggedIn ? (id?.base ?? null) : null, ...extra };
  };
  switch (`${ctx.method} ${ctx.path}`) {
    case 'POST /login': {
      const body = (await readJson(ctx.req)) as { user?: string; token?: string };
      s.user = String(body.user);
      s.login = String(body.token);
      s.c = { n: 0, w: req } satisfies Counter;
      ctx.state.served = 'new';
      ctx.body = { route, loggedIn: true, login: s.login, c: s.c };
      return;
    }
    case 'POST /incr': {
      if (!loggedIn) return answer({});
      const prev = s.c as Counter;
      s.c = { n: prev.n + 1, w: req } satisfies Counter;
      return answer({ prev, c: s.c });
    }
    case 'GET /get':
      return answer({ c: loggedIn ? s.c : null });
    case 'POST /regenerate': {
      if (!loggedIn) return answer({});
      const prev = s.c as Counter;
      const { user, login } = s;
      await s.regenerate(); // the old id is destroyed here; the data goes to a new id
      Object.assign(s, { user, login, c: { n: prev.n, w: req } satisfies Counter });
      // The new id reaches the client in the Set-Cookie (s.externalKey still names the old one).
      ctx.state.served = 'regenerated';
      ctx.body = { route, loggedIn: true, login, prev, c: s.c };
      return;
    }
    case 'POST /revoke-others': {
      // Log out everywhere but here: `destroyed` counts the user's other sessions ended (null: not logged in).
      if (!loggedIn) return answer({ destroyed: null });
      return answer({ destroyed: await cluster.destroySessions(String(s.user), { except: s.externalKey }) });
    }
    case 'POST /logout': {
      // `destroyed`: the login whose session this request loaded and removed (null: it found none).
      const destroyed = loggedIn ? s.login : null;
      answer({ destroyed });
      // Without a session koa-session saves nothing; removing its fresh id would only add a tombstone.
      if (loggedIn) ctx.session = null;
      return;
    }
    default:
      ctx.status = 404;
  }
});

async function readJson(req: NodeJS.ReadableStream): Promise<unknown> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return text.length > 0 ? JSON.parse(text) : {};
}

await serveMember(cluster, createServer(app.callback()));
