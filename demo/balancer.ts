/**
 * A small sticky load balancer for the demo, the part a real deployment gets from nginx or HAProxy
 * (see demo/nginx.conf): a request whose session cookie ends in `.nodeX` goes to member nodeX; one
 * without goes round robin. A member that refuses or drops the connection is marked down for a few
 * seconds and the request is retried on another live member, which takes the session over (its route
 * binder rewrites the cookie's suffix), so the next requests stick to the new member.
 */
import { request as httpRequest, createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';

/** A member the balancer forwards to. */
export interface BalancerMember {
  route: string;
  host: string;
  port: number;
}

/** Options of `startBalancer`. */
export interface BalancerOptions {
  members: BalancerMember[];
  /** Port to listen on; 0 picks a free one. Default 8080. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Name of the session cookie whose value ends in `.<route>` (or `.<route>.<signature>`). Default `sid`. */
  cookie?: string;
  /** How long a member that failed a connection is skipped, in ms. Default 3000. */
  downFor?: number;
  /** Request bodies are buffered (so they can be retried) up to this size. Default 1 MiB. */
  maxBodyBytes?: number;
  /** No answer from a member within this many ms counts as a failure. Default 15000. */
  timeout?: number;
  /** Where failover notices go. Default: nowhere. */
  log?: (line: string) => void;
}

/** A running balancer. */
export interface Balancer {
  readonly port: number;
  readonly url: string;
  readonly server: Server;
  /** Stops accepting connections and closes the open ones. */
  close(): Promise<void>;
}

// Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection, never forwarded.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** The route suffix of the session cookie in a Cookie header, if any. */
export function routeFromCookie(header: string | undefined, cookie: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== cookie) continue;
    // `<base>.<route>` (koa-session), or `[s:]<base>.<route>.<signature>` (express-session, @fastify/session).
    const match = /\.([A-Za-z0-9_-]{1,32})(?:\.[^.]*)?$/.exec(part.slice(eq + 1).trim());
    return match?.[1];
  }
  return undefined;
}

function forwardHeaders(req: IncomingMessage, bodyLength: number): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (!HOP_BY_HOP.has(name) && name !== 'content-length') headers[name] = value;
  }
  // The body is buffered, so its length is known and chunked encoding is not needed.
  if (bodyLength > 0 || req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') {
    headers['content-length'] = String(bodyLength);
  }
  const remote = req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = prior === undefined ? remote : `${String(prior)}, ${remote}`;
  headers['x-forwarded-host'] ??= req.headers.host;
  headers['x-forwarded-proto'] ??= 'http';
  return headers;
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Starts the balancer; resolves once it listens. */
export async function startBalancer(options: BalancerOptions): Promise<Balancer> {
  const members = options.members;
  if (members.length === 0) throw new Error('startBalancer: expected at least one member');
  const cookie = options.cookie ?? 'sid';
  const downFor = options.downFor ?? 3000;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const timeout = options.timeout ?? 15_000;
  const log = options.log ?? (() => undefined);
  const downUntil = new Map<string, number>();
  let next = 0;

  const isUp = (m: BalancerMember) => (downUntil.get(m.route) ?? 0) <= Date.now();

  /** Members to try, in order: the sticky one, then the others round robin; down ones last. */
  function candidates(route: string | undefined): BalancerMember[] {
    const start = next++ % members.length;
    const rotated = [...members.slice(start), ...members.slice(0, start)];
    const sticky = rotated.find((m) => m.route === route);
    const ordered = sticky === undefined ? rotated : [sticky, ...rotated.filter((m) => m !== sticky)];
    // If every member looks down, trying them anyway beats answering 502 straight away.
    return [...ordered.filter(isUp), ...ordered.filter((m) => !isUp(m))];
  }

  /**
   * Forwards once; resolves true when the member answered, false when it could not be reached or
   * answered 503 with `Retry-After` while another member is left to try (nginx's `http_503`).
   */
  function forward(member: BalancerMember, req: IncomingMessage, res: ServerResponse, body: Buffer, last: boolean): Promise<boolean> {
    return new Promise((resolve) => {
      const upstream = httpRequest({
        host: member.host,
        port: member.port,
        method: req.method,
        path: req.url,
        headers: forwardHeaders(req, body.length),
        timeout,
      });
      let answered = false;
      upstream.on('timeout', () => upstream.destroy(new Error(`no answer within ${timeout} ms`)));
      upstream.on('response', (answer) => {
        if (answer.statusCode === 503 && answer.headers['retry-after'] !== undefined && !last) {
          // This member cannot serve the session right now (it is moving, or the member is stopping or
          // cut off): the next one may.
          answer.resume();
          log(`${member.route} answered 503; trying the next member`);
          resolve(false);
          return;
        }
        answered = true;
        const headers: IncomingHttpHeaders = {};
        for (const [name, value] of Object.entries(answer.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
        answer.on('end', () => resolve(true));
        res.on('close', () => {
          if (!answer.complete) upstream.destroy();
          resolve(true);
        });
      });
      upstream.on('error', (err: Error & { code?: string }) => {
        // Once the answer started it cannot be replayed: cut the client's connection too.
        if (answered) return res.destroy();
        downUntil.set(member.route, Date.now() + downFor);
        log(`${member.route} (${member.host}:${member.port}) failed: ${err.code ?? err.message}; marked down for ${downFor} ms`);
        resolve(false);
      });
      upstream.end(body);
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, maxBodyBytes);
    if (body === undefined) {
      res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' }).end(`request body over ${maxBodyBytes} bytes\n`);
      return;
    }
    const route = routeFromCookie(req.headers.cookie, cookie);
    // Retrying a POST is what nginx's `proxy_next_upstream non_idempotent` does: acceptable here,
    // because a connection refused or reset before any answer means the member is dead.
    const list = candidates(route);
    for (const [i, member] of list.entries()) {
      if (res.destroyed) return;
      if (await forward(member, req, res, body, i === list.length - 1)) return;
    }
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('no cluster member is reachable\n');
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.listen(options.port ?? 8080, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    server,
    async close() {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}
