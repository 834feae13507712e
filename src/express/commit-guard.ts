/**
 * Makes express-session answer only after its store acknowledged. express-session commits the session
 * at `res.end`, and writes the response's head and all but its last byte while the store works; when
 * the store fails, it ends the response anyway, so a write the cluster refused would reach the client
 * as a 200 (and a value that cannot be replicated would fail silently). koa-session commits before Koa
 * responds; this guard gives Express the same: while a store call made for a request is in flight,
 * that response's head and body are held; once the store acknowledged, they go out as they were; if it
 * failed, they are dropped and the request is answered with the error instead (503 with Retry-After
 * for a session that cannot be told now). A response whose head was already sent before the commit
 * (a stream) cannot be answered again: its connection is cut instead.
 *
 *   app: res.end ─▶ express-session: store.set ─▶ held: writeHead, write ─▶ store acked? replay : answer error
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { SessionCapacityError, SessionUnavailableError } from '../errors.js';
import { UNAVAILABLE } from '../adapter/route-binding.js';

type Held = ['head' | 'write' | 'end', unknown[]];
type Output = (...args: unknown[]) => unknown;

interface RequestState {
  res: ServerResponse;
  /** Store calls for this request in flight. */
  pending: number;
  /** Response calls made while a store call was in flight, in order. */
  held: Held[];
  /** A store call failed while output was held: the held output must not go out. */
  tainted: Error | undefined;
  /** Answered with an error by the guard: anything else written to the response is dropped. */
  answered: Error | undefined;
  /** Runs just before the head goes out (the route binder adds the rebound cookie). */
  beforeHead: (() => void) | undefined;
  /** The output methods found on the response, bound to it. */
  real: { writeHead: Output; write: Output; end: Output };
}

export class CommitGuard {
  readonly #states = new WeakMap<IncomingMessage, RequestState>();
  /** Requests in flight, to find the one a store call names only by session id (`store.destroy`). */
  readonly #active = new Set<IncomingMessage>();
  readonly #log: Logger;

  constructor(logger: Logger) {
    this.#log = logger.child({ component: 'express-session' });
  }

  /** Wraps the response's output methods; call before express-session runs. `beforeHead` may add headers. */
  install(req: IncomingMessage, res: ServerResponse, beforeHead?: () => void): void {
    if (this.#states.has(req)) return;
    const s: RequestState = {
      res,
      pending: 0,
      held: [],
      tainted: undefined,
      answered: undefined,
      beforeHead,
      real: { writeHead: res.writeHead.bind(res) as Output, write: res.write.bind(res) as Output, end: res.end.bind(res) as Output },
    };
    this.#states.set(req, s);
    this.#active.add(req);
    res.once('close', () => this.#active.delete(req));
    const holding = () => s.pending > 0 || s.held.length > 0;
    const writeHead: Output = (...args) => {
      if (s.answered === undefined && holding()) {
        s.held.push(['head', args]);
        return res;
      }
      if (s.answered === undefined) s.beforeHead?.();
      return s.real.writeHead(...args);
    };
    const write: Output = (...args) => {
      if (s.answered !== undefined) return false;
      if (holding()) {
        s.held.push(['write', args]);
        return true;
      }
      return s.real.write(...args);
    };
    const end: Output = (...args) => {
      // express-session ends the response after a failed commit too: the guard answered already.
      if (s.answered !== undefined) return res;
      if (s.tainted !== undefined) {
        this.#fail(s, s.tainted);
        return res;
      }
      if (holding()) {
        s.held.push(['end', args]);
        return res;
      }
      return s.real.end(...args);
    };
    res.writeHead = writeHead as ServerResponse['writeHead'];
    res.write = write as ServerResponse['write'];
    res.end = end as ServerResponse['end'];
  }

  /** The request in flight that is destroying session `id` (express-session calls `destroy(id)` without it). */
  requestDestroying(id: string): IncomingMessage | undefined {
    for (const req of this.#active) {
      const r = req as IncomingMessage & { sessionID?: unknown; session?: unknown };
      if (r.sessionID === id && r.session == null) return req;
    }
    return undefined;
  }

  /** A store call for `req` starts: from now on its output is held. */
  begin(req: IncomingMessage | undefined): void {
    const s = req === undefined ? undefined : this.#states.get(req);
    if (s !== undefined) s.pending++;
  }

  /**
   * A store call for `req` ended (`err` when it failed). Held output goes out once no call is in
   * flight. A failure taints output held meanwhile (express-session's commit at `res.end`); with
   * nothing held, the error is the application's, which gets it in its callback.
   */
  settle(req: IncomingMessage | undefined, err?: unknown): void {
    const s = req === undefined ? undefined : this.#states.get(req);
    if (s === undefined) return;
    s.pending--;
    if (err !== undefined && s.held.length > 0 && s.tainted === undefined) s.tainted = err instanceof Error ? err : new Error(`session store failed: ${JSON.stringify(err)}`);
    if (s.pending > 0) return;
    if (s.tainted !== undefined) {
      if (s.held.some(([kind]) => kind === 'end')) this.#fail(s, s.tainted);
      return;
    }
    const held = s.held.splice(0);
    for (const [kind, args] of held) {
      if (kind === 'head') s.beforeHead?.();
      s.real[kind === 'head' ? 'writeHead' : kind](...args);
    }
  }

  /** Whether the guard answered `req` with `err` already (express-session then passes it to `next` too). */
  answered(req: IncomingMessage, err: unknown): boolean {
    const s = this.#states.get(req);
    return s !== undefined && s.answered !== undefined && s.answered === err;
  }

  /** Drops the held output and answers the error, the way Koa answers an error escaping koa-session's commit. */
  #fail(s: RequestState, err: Error): void {
    s.answered = err;
    s.held.length = 0;
    const e = err as Error & { code?: string; path?: string; status?: number; headers?: Record<string, string> };
    if (err instanceof SessionCapacityError) {
      // Logged by the capacity, at most once per 10 s per reason: a flood's refusals are not a line each.
    } else if (err instanceof SessionUnavailableError) {
      this.#log.warn({ err: { code: e.code, message: e.message } }, 'session not committed, unavailable right now: 503, retry');
    } else {
      this.#log.error({ err: { code: e.code, message: e.message, path: e.path } }, 'session not committed: the request fails and nothing of it was replicated');
    }
    const res = s.res;
    if (res.headersSent) {
      // The head went out before the commit (a streamed response): a cut connection, never a clean end.
      res.destroy(err);
      return;
    }
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    const status = err instanceof SessionUnavailableError ? UNAVAILABLE.status : typeof e.status === 'number' && e.status >= 400 && e.status < 600 ? e.status : 500;
    res.statusCode = status;
    for (const [name, value] of Object.entries(e.headers ?? {})) res.setHeader(name, value);
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    const body = status === UNAVAILABLE.status ? UNAVAILABLE.body : (STATUS_CODES[status] ?? 'Error');
    res.setHeader('content-length', Buffer.byteLength(body));
    s.real.writeHead(status);
    s.real.end(body);
  }
}
