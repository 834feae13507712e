/**
 * One chaos client: a browser that owns its sessions. It logs in, increments its counter, now and
 * then reads it, regenerates, logs out and logs in again, and replays the cookies of sessions it
 * destroyed at random members. It talks to one member at a time and moves to the next one on a
 * timeout (the request is abandoned, as a balancer does), a connection error or a 5xx. Every answer
 * goes to the History, which judges it.
 */
import { CookieJar } from '../helpers/http-client.js';
import { parseSessionId } from '../../src/replication/session-id.js';
import type { Answer, History, SessionHistory } from './history.js';

/**
 * How long a revocation the client gave up on may still run on its member: \`destroySessions\` looks
 * the user up to 3 times and retries each removal answered 503 up to 5 times (generous bound).
 */
const REVOCATION_MAY_RUN_MS = 15_000;
import type { Random } from './random.js';

export const COOKIE = 'koa.sess';

/** What the clients share with the run. */
export interface ClientWorld {
  /** Base URL of each member by route; members keep their URL across restarts. */
  readonly urls: ReadonlyMap<string, string>;
  readonly history: History;
  /** Run-relative ms. */
  now(): number;
  /** False while the run counts sessions: no login, logout or regenerate starts then. */
  lifecycleOpen(): boolean;
  readonly requestTimeoutMs: number;
  readonly stopping: () => boolean;
  /** Resolves when the client may send its next request (the nemesis holds clients still to compare copies). */
  go(): Promise<void>;
  /** Steps under way (requests out), for the nemesis's hold. */
  busy: number;
}

type Outcome =
  | { kind: 'answer'; answer: Answer; jar: CookieJar }
  /** Known to have had no effect: connection refused, or answered before the route handler ran. */
  | { kind: 'refused'; status?: number }
  | { kind: 'indeterminate'; status?: number; why: string };

interface Destroyed {
  jar: CookieJar;
  /** The logout or regenerate that destroyed it. */
  req: string;
  base: string;
  token: string;
  goneAt: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends one request with `jar`'s cookies; never throws. `jar` takes the response's cookies. */
async function send(
  world: ClientWorld,
  jar: CookieJar,
  member: string,
  method: string,
  path: string,
  req: string,
  body?: unknown,
  timeoutMs = world.requestTimeoutMs,
): Promise<Outcome> {
  world.history.sent();
  const headers: Record<string, string> = { cookie: jar.header(), accept: 'application/json', 'x-chaos-req': req };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${world.urls.get(member)}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'manual',
    });
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code;
    // Refused: no byte reached the member, so the request had no effect at all.
    if (code === 'ECONNREFUSED') {
      world.history.refused(undefined);
      return { kind: 'refused' };
    }
    world.history.indeterminate(undefined);
    // Never answered within the timeout: a failure (the table counts it), the request abandoned.
    if ((err as Error).name === 'TimeoutError') world.history.unanswered();
    return { kind: 'indeterminate', why: code ?? (err as Error).name };
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    world.history.indeterminate(undefined);
    if ((err as Error).name === 'TimeoutError') world.history.unanswered();
    return { kind: 'indeterminate', why: `body: ${(err as Error).name}` };
  }
  if (res.status !== 200) {
    if (res.status === 503) await sleep(Math.min(1000, 1000 * Number(res.headers.get('retry-after') ?? 1)));
    // The member says its route handler never ran (member.ts): nothing was written or removed.
    if (res.headers.get('x-chaos-handled') === '0') {
      world.history.refused(res.status);
      return { kind: 'refused', status: res.status };
    }
    world.history.indeterminate(res.status);
    return { kind: 'indeterminate', status: res.status, why: `HTTP ${res.status}` };
  }
  jar.store(res);
  try {
    return { kind: 'answer', answer: { status: 200, body: JSON.parse(text) }, jar };
  } catch {
    world.history.indeterminate(200);
    return { kind: 'indeterminate', status: 200, why: 'not JSON' };
  }
}

/**
 * The base of the session cookie in `jar`, if any: the value is the id (koa-session), or the id signed
 * into it, URL-encoded (express-session `s:<id>.<signature>`, @fastify/session `<id>.<signature>`).
 */
function baseOf(jar: CookieJar): string | undefined {
  const value = jar.get(COOKIE);
  if (value === undefined) return undefined;
  const id = decodeURIComponent(value).replace(/^s:/, '');
  return parseSessionId(id)?.base ?? parseSessionId(id.slice(0, id.lastIndexOf('.')))?.base;
}

export class ChaosClient {
  readonly name: string;
  readonly #world: ClientWorld;
  readonly #rng: Random;
  readonly #order: string[];
  #at = 0;
  #seq = 0;
  #jar = new CookieJar();
  #session: SessionHistory | undefined;
  readonly destroyed: Destroyed[] = [];
  /** This user's other devices' sessions, not yet known revoked. */
  readonly #devices: Destroyed[] = [];

  /** Sends each request to any member, drawn anew (a balancer that retries elsewhere, an old cookie's). */
  readonly #roaming: boolean;

  constructor(name: string, world: ClientWorld, rng: Random, start: number, roaming = false) {
    this.name = name;
    this.#roaming = roaming;
    this.#world = world;
    this.#rng = rng;
    const routes = [...world.urls.keys()];
    // Each client has its own order of members to fail over through, starting at its home member.
    this.#order = [routes[start % routes.length], ...rng.shuffle(routes.filter((_, i) => i !== start % routes.length))];
  }

  get member(): string {
    return this.#roaming ? this.#rng.pick(this.#order) : this.#order[this.#at % this.#order.length];
  }

  /** The client's live session and its cookies, for the final reads. */
  get session(): { history: SessionHistory; jar: CookieJar } | undefined {
    return this.#session?.state === 'live' || this.#session?.state === 'ending' ? { history: this.#session, jar: this.#jar } : undefined;
  }

  #moveOn(): void {
    this.#at++;
  }

  #req(): string {
    return `${this.name}-${++this.#seq}`;
  }

  async run(): Promise<void> {
    while (!this.#world.stopping()) {
      await this.#world.go();
      this.#world.busy++;
      try {
        await this.step();
      } finally {
        this.#world.busy--;
      }
      await sleep(this.#rng.int(20, 120));
    }
  }

  /**
   * Once quiet: reads the live session at `member` (the cookie names its owner; a balancer may send
   * it anywhere). Anything but an answer (no answer within `timeoutMs`, a 503, another error) is a
   * violation; the answer is judged as every read is.
   */
  async probe(member: string, timeoutMs: number, cpuWaitMs: () => number = () => 0): Promise<void> {
    const s = this.#session;
    if (s === undefined || s.state !== 'live') return;
    const h = this.#world.history;
    const first = this.#world.now();
    for (;;) {
      const req = this.#req();
      const sentAt = this.#world.now();
      const out = await send(this.#world, this.#jar, member, 'GET', '/get', req, undefined, timeoutMs);
      if (out.kind === 'answer') {
        this.#after(h.answered(s, 'get', req, sentAt, s.incrsSent, out.answer));
        return;
      }
      // A 503 (the session could not be told right now: a takeover's survey timed out) is asked again,
      // as a balancer does, within the bound plus what the members waited for a CPU meanwhile.
      const busy = out.status === 503;
      if (busy && this.#world.now() - first < timeoutMs + cpuWaitMs()) continue;
      h.unavailable(this.name, s.token, s.base, member, req, out.kind === 'refused' ? `refused (connection refused, or failed before the handler${out.status === undefined ? '' : `: HTTP ${out.status}`})` : out.why);
      return;
    }
  }

  async step(): Promise<void> {
    const s = this.#session;
    if (s === undefined || s.state === 'over') {
      if (this.#world.lifecycleOpen()) await this.#login();
      return;
    }
    const r = this.#rng.next();
    // An unanswered logout or regenerate is settled first, by a logout: the session ends either way.
    if (s.state === 'ending') {
      if (this.#world.lifecycleOpen()) await this.#logout(s);
    } else if (r < 0.05 && this.destroyed.length > 0) await this.replay(this.#rng.pick(this.destroyed), this.#rng.pick([...this.#world.urls.keys()]));
    else if (r < 0.1) await this.read(s, this.member);
    else if (r < 0.13 && this.#world.lifecycleOpen()) await this.#regenerate(s);
    else if (r < 0.16 && this.#world.lifecycleOpen()) await this.#logout(s);
    else if (r < 0.18 && this.#world.lifecycleOpen()) await this.#revokeOthers();
    else await this.#incr(s);
  }

  async #login(): Promise<void> {
    const req = this.#req();
    const token = `L${req}`;
    const h = this.#world.history;
    this.#jar = new CookieJar();
    h.loginSent();
    const sentAt = this.#world.now();
    const out = await send(this.#world, this.#jar, this.member, 'POST', '/login', req, { user: this.name, token });
    if (out.kind === 'refused') h.loginUnsent();
    if (out.kind !== 'answer') return this.#moveOn();
    const base = baseOf(this.#jar);
    if (base === undefined) {
      // A 200 without a cookie: the login is as good as lost (counted as a maybe-live session).
      return;
    }
    this.#session = h.loginAcked(this.name, token, req, base, sentAt, out.answer);
  }

  async #incr(s: SessionHistory): Promise<void> {
    const req = this.#req();
    const h = this.#world.history;
    const incrsBefore = h.incrSent(s);
    const sentAt = this.#world.now();
    const member = this.member;
    const out = await send(this.#world, this.#jar, member, 'POST', '/incr', req);
    if (out.kind === 'refused') return this.#moveOn();
    if (out.kind === 'indeterminate') {
      h.incrAbandoned(s, req, sentAt, member);
      return this.#moveOn();
    }
    this.#after(h.answered(s, 'incr', req, sentAt, incrsBefore, out.answer));
  }

  /** Reads the counter at `member` (the final reads use this too). Returns false when unanswered. */
  async read(s: SessionHistory, member: string): Promise<boolean> {
    const req = this.#req();
    const h = this.#world.history;
    const incrsBefore = s.incrsSent;
    const sentAt = this.#world.now();
    const out = await send(this.#world, this.#jar, member, 'GET', '/get', req);
    if (out.kind !== 'answer') {
      this.#moveOn();
      return false;
    }
    this.#after(h.answered(s, 'get', req, sentAt, incrsBefore, out.answer));
    return true;
  }

  async #regenerate(s: SessionHistory): Promise<void> {
    const req = this.#req();
    const h = this.#world.history;
    const before = this.#jar.copy();
    const oldBase = s.base;
    h.removalSent(s, 'regenerate');
    const sentAt = this.#world.now();
    const incrsBefore = s.incrsSent;
    const out = await send(this.#world, this.#jar, this.member, 'POST', '/regenerate', req);
    if (out.kind === 'refused') {
      h.removalUnsent(s, 'regenerate');
      return this.#moveOn();
    }
    if (out.kind === 'indeterminate') {
      h.removalAbandoned(s);
      return this.#moveOn();
    }
    const next = h.regenerated(s, req, sentAt, incrsBefore, baseOf(this.#jar), out.answer);
    if (out.answer.body.loggedIn === true) this.#remember({ jar: before, req, base: oldBase, token: s.token, goneAt: this.#world.now() });
    this.#after(next);
  }

  async #logout(s: SessionHistory): Promise<void> {
    const req = this.#req();
    const h = this.#world.history;
    const before = this.#jar.copy();
    h.removalSent(s, 'logout');
    const sentAt = this.#world.now();
    const out = await send(this.#world, this.#jar, this.member, 'POST', '/logout', req);
    if (out.kind === 'refused') {
      h.removalUnsent(s, 'logout');
      return this.#moveOn();
    }
    if (out.kind === 'indeterminate') {
      // The client tries again (step() prefers a logout while `ending`), keeping the old cookie.
      this.#jar = before;
      h.removalAbandoned(s);
      return this.#moveOn();
    }
    if (h.loggedOut(s, req, sentAt, out.answer)) this.#remember({ jar: before, req, base: s.base, token: s.token, goneAt: this.#world.now() });
    this.#session = undefined;
  }

  /**
   * Logs the same user in on a second device (another member), then, from the first session, logs
   * out everywhere but here: every other device's id is then replayed like a logged-out one, and the
   * first session must live on (its next request finds it). Devices whose revocation went unanswered
   * stay on the list: the next revocation ends them too.
   */
  async #revokeOthers(): Promise<void> {
    const h = this.#world.history;
    const req = this.#req();
    const token = `D${req}`;
    const device = new CookieJar();
    const routes = [...this.#world.urls.keys()];
    h.loginSent();
    const login = await send(this.#world, device, this.#rng.pick(routes), 'POST', '/login', req, { user: this.name, token });
    if (login.kind === 'refused') h.loginUnsent();
    const base = baseOf(device);
    if (login.kind !== 'answer' || base === undefined) return;
    h.deviceLoggedIn(base, token);
    this.#devices.push({ jar: device, req, base, token, goneAt: 0 });
    const revokeReq = this.#req();
    const bases = this.#devices.map((d) => d.base);
    const before = h.revokeSent(bases);
    const out = await send(this.#world, this.#jar, this.member, 'POST', '/revoke-others', revokeReq);
    if (out.kind === 'refused') h.revokeUnsent(before);
    else if (out.kind !== 'answer') h.revocationAbandoned(this.name, this.#world.now() + REVOCATION_MAY_RUN_MS);
    if (out.kind !== 'answer') return this.#moveOn();
    if (!h.revoked(bases, before, out.answer.body.destroyed as number | null)) return;
    // Devices a concurrent flow of this client logged in while the revocation ran: it may have found
    // and ended them, or not (chaos seed 20261282, a device login answered 54 ms before the revocation).
    const ended = this.#devices.filter((d) => bases.includes(d.base));
    const during = this.#devices.filter((d) => !bases.includes(d.base));
    h.mayBeRevoked(during.map((d) => d.base));
    this.#devices.splice(0, this.#devices.length, ...during);
    for (const d of ended) this.#remember({ ...d, req: revokeReq, goneAt: this.#world.now() });
  }

  #remember(d: Destroyed): void {
    this.destroyed.push(d);
    if (this.destroyed.length > 30) this.destroyed.splice(this.#rng.int(0, 29), 1);
  }

  /** Replays a destroyed session's cookie at `member`: it must be "no session". */
  async replay(d: Destroyed, member: string): Promise<void> {
    const req = this.#req();
    const out = await send(this.#world, d.jar.copy(), member, 'GET', '/get', req);
    if (out.kind === 'answer') this.#world.history.replayed(this.name, d.base, d.token, req, d.req, d.goneAt, out.answer);
  }

  #after(next: 'ok' | 'relogin'): void {
    if (next === 'relogin') this.#session = undefined;
  }
}
