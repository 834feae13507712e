/**
 * The chaos run's checker: every request of every client is recorded here, and every answer is
 * checked against the history of its session. No I/O: the clients report, the checker judges.
 *
 * What it asserts, and why each rule holds however requests interleave (see README.md here):
 * - Each session's counter is one key `c = { n, w }`, `w` the id of the request that wrote it, so an
 *   answer names the write it read. Every write is applied at most once, and a 200 means applied.
 * - A write W "precedes" X when W was acknowledged before X was sent, or X read W, or transitively.
 *   When X is acknowledged, everything preceding X is overwritten for good: a request sent later
 *   that reads one of those writes has lost X (promise 1). Abandoned writes (timed out, 5xx) may land
 *   at any later time, so reading one is never a violation unless it precedes an acknowledged write.
 * - A value must be the one its writer wrote, written by a request of this session, and never more
 *   than the increments sent (promise 4).
 * - "No session" for a session whose login was acknowledged and that no logout or regenerate
 *   touched (even one that timed out) breaks promise 3, except where a two-against-three partition
 *   made both copies unreachable (a double failure the promises do not cover): that is excused.
 * - A session id whose removal was acknowledged (logout that loaded it, or regenerate) must answer
 *   "no session" forever (promise 2).
 * - Live sessions are counted as a range: definite ones (acknowledged and untouched) and maybe ones
 *   (a login, logout or regenerate whose answer never came, a session answered as missing).
 */

/** Promise numbers of DESIGN.md "Promises under faults". */
export type PromiseNo = 1 | 2 | 3 | 4 | 5;

export const PROMISES: Record<PromiseNo, string> = {
  1: 'acknowledged write lost',
  2: 'destroyed session served again',
  3: 'logged-in user answered as logged out',
  4: 'value nobody wrote (phantom)',
  5: 'no convergence within dropTime + 2 s',
};

export interface Violation {
  promise: PromiseNo;
  /** Run-relative ms when it was seen. */
  at: number;
  client?: string;
  login?: string;
  base?: string;
  member?: string;
  req?: string;
  /** Request ids worth grepping the member logs for. */
  related: string[];
  /** Run-relative ms from which the member logs explain it (default: 20 s before `at`). */
  since?: number;
  detail: string;
}

/** The counter a session holds. */
export interface Counter {
  n: number;
  w: string;
}

interface WriteRecord {
  sent: number;
  acked?: number;
  /** The write this one read (known once acknowledged). */
  prev?: string;
  /** The value it wrote (known once acknowledged, or learned from a read). */
  n?: number;
  member: string;
}

export type BaseStatus = 'definite' | 'maybe' | 'gone';

/** Why a device's session is in doubt after a revocation that ran while it logged in. */
const MAYBE_REVOKED = 'logged in while a revocation of the user ran';

/** A logical session: from an acknowledged login to its logout, across regenerated ids. */
export class SessionHistory {
  readonly token: string;
  readonly client: string;
  /** `live`: acknowledged and no removal attempted; `ending`: a logout/regenerate answer never came. */
  state: 'live' | 'ending' | 'over' = 'live';
  base: string;
  readonly writes = new Map<string, WriteRecord>();
  readonly #ackedOrder: string[] = [];
  #ackedCursor = 0;
  readonly #dominated = new Set<string>();
  readonly #chainDone = new Set<string>();
  incrsSent = 0;
  lastAcked: { req: string; n: number; at: number } | undefined;

  constructor(token: string, client: string, base: string) {
    this.token = token;
    this.client = client;
    this.base = base;
  }

  /** Records an acknowledged write and marks what it overwrote for good. */
  ack(req: string, rec: WriteRecord): void {
    this.writes.set(req, rec);
    // Acknowledged writes arrive in send order (a client has one answered request at a time).
    while (this.#ackedCursor < this.#ackedOrder.length) {
      const id = this.#ackedOrder[this.#ackedCursor];
      if (this.writes.get(id)!.acked! >= rec.sent) break;
      this.#dominated.add(id);
      this.#ackedCursor++;
    }
    for (let p = rec.prev; p !== undefined && !this.#chainDone.has(p); p = this.writes.get(p)?.prev) {
      this.#chainDone.add(p);
      this.#dominated.add(p);
    }
    this.#ackedOrder.push(req);
    this.lastAcked = { req, n: rec.n!, at: rec.acked! };
  }

  overwritten(w: string): boolean {
    return this.#dominated.has(w);
  }
}

/** Why a "no session" answer for session `base` is not a violation (every copy cut off), or undefined. */
export type Excuse = (answeredBy: string, base: string, sentAt: number, answeredAt: number) => string | undefined;

export interface Answer {
  status: number;
  body: {
    route?: string;
    loggedIn?: boolean;
    login?: string | null;
    base?: string | null;
    c?: Counter | null;
    prev?: Counter;
    destroyed?: string | null;
  };
}

/** What the client does after an answer. */
export type Next = 'ok' | 'relogin';

export interface Totals {
  sent: number;
  ok: number;
  indeterminate: number;
  /** Requests that never finished: the client gave up after its timeout (failures, not "busy"). */
  unanswered: number;
  refused: number;
  unavailable503: number;
  acked: { login: number; incr: number; regenerate: number; logout: number };
  reads: number;
  replays: number;
  replaysNoSession: number;
  excused: number;
  /** Answered "log out everywhere but here" requests, and the sessions they ended. */
  revocations: number;
  revoked: number;
}

/** The whole run's history. */
export class History {
  readonly violations: Violation[] = [];
  readonly totals: Totals = {
    sent: 0,
    ok: 0,
    indeterminate: 0,
    unanswered: 0,
    refused: 0,
    unavailable503: 0,
    acked: { login: 0, incr: 0, regenerate: 0, logout: 0 },
    reads: 0,
    replays: 0,
    replaysNoSession: 0,
    excused: 0,
    revocations: 0,
    revoked: 0,
  };
  readonly excuses: string[] = [];
  /**
   * Until when a revocation each client gave up on (no answer) may still run on its member:
   * `destroySessions` also ends the user's sessions created while it runs, such as the one this very
   * client got by a regenerate meanwhile.
   */
  readonly #revocationsRunning = new Map<string, number>();
  /** Each session id's status; `client` and `at` (when it was made) where a client's own session. */
  readonly #bases = new Map<string, { status: BaseStatus; token: string; why?: string; client?: string; at?: number }>();
  /** Logins and regenerates whose new id the client never learned (their answer never came). */
  readonly #anonymous = { login: 0, regenerate: 0 };
  readonly #now: () => number;
  readonly #excuse: Excuse;

  constructor(now: () => number, excuse: Excuse = () => undefined) {
    this.#now = now;
    this.#excuse = excuse;
  }

  /** Live sessions right now: at least `min`, at most `max`; `maybe` says why they are uncertain. */
  liveRange(): { min: number; max: number; maybe: Record<string, number> } {
    let definite = 0;
    const maybe: Record<string, number> = {};
    const add = (why: string, n: number) => n > 0 && (maybe[why] = (maybe[why] ?? 0) + n);
    add('login unanswered', this.#anonymous.login);
    add('new id of an unanswered regenerate', this.#anonymous.regenerate);
    for (const b of this.#bases.values()) {
      if (b.status === 'definite') definite++;
      else if (b.status === 'maybe') add(b.why ?? '?', 1);
    }
    return { min: definite, max: definite + Object.values(maybe).reduce((a, b) => a + b, 0), maybe };
  }

  sent(): void {
    this.totals.sent++;
  }

  /** A request known to have had no effect: connection refused, or failed before the route handler. */
  refused(status: number | undefined): void {
    this.totals.refused++;
    if (status === 503) this.totals.unavailable503++;
  }

  indeterminate(status: number | undefined): void {
    this.totals.indeterminate++;
    if (status === 503) this.totals.unavailable503++;
  }

  /** A request that never finished: abandoned at the client's timeout (also counted indeterminate). */
  unanswered(): void {
    this.totals.unanswered++;
  }

  /**
   * Sessions known live: acknowledged, and no logout, regenerate or revocation sent since, nor made
   * while a revocation its client gave up on may have run (that ends the user's sessions made meanwhile).
   */
  definiteBases(): string[] {
    const endedBy = (b: { client?: string; at?: number }) => {
      const running = b.client === undefined ? undefined : this.#revocationsRunning.get(b.client);
      return running !== undefined && b.at !== undefined && b.at <= running;
    };
    return [...this.#bases].filter(([, b]) => b.status === 'definite' && !endedBy(b)).map(([base]) => base);
  }

  /** Once quiet, a live session that a member could not serve (no answer, or an error): promise 5. */
  unavailable(client: string, login: string, base: string, member: string, req: string, why: string): void {
    this.#violate({ promise: 5, client, login, base, member, req, related: [req], detail: `once quiet, a live session was not served by ${member}: ${why}` });
  }

  #violate(v: Omit<Violation, 'at'>): void {
    this.violations.push({ ...v, at: this.#now() });
  }

  // ---- login ----

  loginSent(): void {
    this.#anonymous.login++;
  }

  loginUnsent(): void {
    this.#anonymous.login--;
  }

  /** A 200 to a login: a new session with id `base`, counter `{ n: 0, w: req }`. */
  loginAcked(client: string, token: string, req: string, base: string, sentAt: number, a: Answer): SessionHistory {
    this.#anonymous.login--;
    this.totals.ok++;
    this.totals.acked.login++;
    const s = new SessionHistory(token, client, base);
    const c = a.body.c;
    if (a.body.login !== token || c?.n !== 0 || c.w !== req) {
      this.#violate({
        promise: 4,
        client,
        login: token,
        base,
        member: a.body.route,
        req,
        related: [req],
        detail: `login answered ${JSON.stringify(a.body)}; expected login ${token} with c = { n: 0, w: ${req} }`,
      });
    }
    s.ack(req, { sent: sentAt, acked: this.#now(), n: 0, member: a.body.route ?? '?' });
    this.#bases.set(base, { status: 'definite', token, client, at: this.#now() });
    return s;
  }

  // ---- reads and increments ----

  incrSent(s: SessionHistory): number {
    return s.incrsSent++;
  }

  /**
   * A 200 to an increment or read of session `s`, sent at `sentAt` with `s.base` in the cookie.
   * `incrsBefore`: increments of this session sent before this request.
   */
  answered(s: SessionHistory, kind: 'incr' | 'get', req: string, sentAt: number, incrsBefore: number, a: Answer): Next {
    this.totals.ok++;
    const member = a.body.route ?? '?';
    if (a.body.loggedIn !== true) return this.#noSession(s, req, sentAt, member);
    if (a.body.login !== s.token) {
      this.#violate({
        promise: 4,
        client: s.client,
        login: s.token,
        base: s.base,
        member,
        req,
        related: [req],
        detail: `${kind} served the session of login ${String(a.body.login)} to the holder of login ${s.token}`,
      });
      return 'ok';
    }
    if (typeof a.body.base === 'string' && a.body.base !== s.base) {
      this.#violate({ promise: 4, client: s.client, login: s.token, base: s.base, member, req, related: [req], detail: `${kind} with session ${s.base.slice(0, 6)} in the cookie was served session ${a.body.base.slice(0, 6)}` });
    }
    const read = kind === 'incr' ? a.body.prev : (a.body.c ?? undefined);
    if (read === undefined) {
      this.#violate({ promise: 4, client: s.client, login: s.token, base: s.base, member, req, related: [req], detail: `${kind} answered no counter: ${JSON.stringify(a.body)}` });
      return 'ok';
    }
    this.#checkRead(s, kind, req, read, incrsBefore, member);
    if (kind === 'incr') {
      this.totals.acked.incr++;
      const c = a.body.c;
      if (c?.w !== req || c.n !== read.n + 1) {
        this.#violate({ promise: 4, client: s.client, login: s.token, base: s.base, member, req, related: [req], detail: `incr answered ${JSON.stringify(c)} after reading ${JSON.stringify(read)}` });
      }
      s.ack(req, { sent: sentAt, acked: this.#now(), prev: read.w, n: read.n + 1, member });
    } else {
      this.totals.reads++;
    }
    return 'ok';
  }

  /** An increment whose answer never came: it may land at any later time, or never. */
  incrAbandoned(s: SessionHistory, req: string, sentAt: number, member: string): void {
    s.writes.set(req, { sent: sentAt, member });
  }

  #checkRead(s: SessionHistory, kind: string, req: string, read: Counter, incrsBefore: number, member: string): void {
    const base = { client: s.client, login: s.token, base: s.base, member, req };
    const writer = s.writes.get(read.w);
    if (writer === undefined) {
      this.#violate({ promise: 4, ...base, related: [req, read.w], detail: `${kind} read n=${read.n} written by ${read.w}, which is no request of this session` });
      return;
    }
    if (writer.n === undefined) writer.n = read.n; // an abandoned write landed: now we know its value
    else if (writer.n !== read.n) {
      this.#violate({ promise: 4, ...base, related: [req, read.w], detail: `${kind} read n=${read.n} from ${read.w}, which wrote n=${writer.n}` });
    }
    if (read.n > incrsBefore) {
      this.#violate({ promise: 4, ...base, related: [req, read.w], detail: `${kind} read n=${read.n}, but only ${incrsBefore} increments were ever sent` });
    }
    if (s.overwritten(read.w)) {
      const last = s.lastAcked!;
      this.#violate({
        promise: 1,
        ...base,
        related: [req, read.w, last.req],
        since: last.at - 5000,
        detail:
          `${kind} read n=${read.n} (written by ${read.w}${writer.acked !== undefined ? `, acknowledged at ${fmt(writer.acked)}` : ', never acknowledged'}) ` +
          `but that value had been overwritten by acknowledged writes before this request was sent; the last acknowledged write was ${last.req} ` +
          `(n=${last.n}, answered at ${fmt(last.at)} by ${s.writes.get(last.req)?.member ?? '?'})`,
      });
    }
  }

  #noSession(s: SessionHistory, req: string, sentAt: number, member: string): Next {
    if (s.state === 'live') {
      const running = this.#revocationsRunning.get(s.client);
      const why =
        this.#excuse(member, s.base, sentAt, this.#now()) ??
        (running !== undefined && sentAt <= running ? 'a revocation this client gave up on may still have been running (it ends the sessions of the user created meanwhile)' : undefined);
      this.#markMaybe(s.base, why === undefined ? 'answered as missing (a violation)' : 'answered as missing (excused)');
      if (why !== undefined) {
        this.totals.excused++;
        this.excuses.push(`${s.client} ${req} at ${member}: ${why}`);
      } else {
        this.#violate({
          promise: 3,
          client: s.client,
          login: s.token,
          base: s.base,
          member,
          req,
          related: [req, ...(s.lastAcked === undefined ? [] : [s.lastAcked.req])],
          detail: `answered "no session" for a session whose login was acknowledged and that no logout or regenerate touched; last acknowledged write ${s.lastAcked?.req} n=${s.lastAcked?.n}`,
        });
      }
    }
    s.state = 'over';
    return 'relogin';
  }

  #markMaybe(base: string, why: string): void {
    const b = this.#bases.get(base);
    if (b === undefined || b.status === 'gone') return;
    b.status = 'maybe';
    b.why = why;
  }

  // ---- regenerate and logout ----

  /** A regenerate or logout is on its way: the id may be gone (and a new one made) from now on. */
  removalSent(s: SessionHistory, kind: 'regenerate' | 'logout'): void {
    this.#markMaybe(s.base, `${kind} unanswered`);
    if (kind === 'regenerate') this.#anonymous.regenerate++;
  }

  /** The removal never reached a member (connection refused): nothing changed. */
  removalUnsent(s: SessionHistory, kind: 'regenerate' | 'logout'): void {
    if (s.state === 'live') this.#bases.get(s.base)!.status = 'definite';
    if (kind === 'regenerate') this.#anonymous.regenerate--;
  }

  /** The answer never came: the session may end at any time from now on. */
  removalAbandoned(s: SessionHistory): void {
    s.state = 'ending';
  }

  /** A 200 to a regenerate: the old id is destroyed, the session continues under `newBase`. */
  regenerated(s: SessionHistory, req: string, sentAt: number, incrsBefore: number, newBase: string | undefined, a: Answer): Next {
    this.totals.ok++;
    const member = a.body.route ?? '?';
    this.#anonymous.regenerate--;
    if (a.body.loggedIn !== true) return this.#noSession(s, req, sentAt, member);
    this.totals.acked.regenerate++;
    const read = a.body.prev!;
    this.#checkRead(s, 'regenerate', req, read, incrsBefore, member);
    this.#bases.get(s.base)!.status = 'gone';
    if (newBase === undefined || newBase === s.base) {
      this.#violate({ promise: 4, client: s.client, login: s.token, base: s.base, member, req, related: [req], detail: `regenerate answered 200 without a new session id in the cookie` });
      s.state = 'over';
      return 'relogin';
    }
    s.base = newBase;
    this.#bases.set(newBase, { status: s.state === 'live' ? 'definite' : 'maybe', token: s.token, why: 'regenerated after an unanswered logout or regenerate', client: s.client, at: this.#now() });
    s.ack(req, { sent: sentAt, acked: this.#now(), prev: read.w, n: read.n, member });
    return 'ok';
  }

  /** A 200 to a logout. Returns whether the id is now known destroyed (to be replayed later). */
  loggedOut(s: SessionHistory, req: string, sentAt: number, a: Answer): boolean {
    this.totals.ok++;
    const member = a.body.route ?? '?';
    if (a.body.destroyed === s.token) {
      this.totals.acked.logout++;
      this.#bases.get(s.base)!.status = 'gone';
      s.state = 'over';
      return true;
    }
    if (a.body.destroyed === null || a.body.destroyed === undefined) {
      if (s.state !== 'live') this.#markMaybe(s.base, 'a retried logout found no session');
      this.#noSession(s, req, sentAt, member);
      return false;
    }
    this.#violate({ promise: 4, client: s.client, login: s.token, base: s.base, member, req, related: [req], detail: `logout destroyed the session of login ${a.body.destroyed}` });
    s.state = 'over';
    return false;
  }

  // ---- a second device, revoked from the first (log out everywhere but here) ----

  /** A 200 to a second device's login: one more live session, outside the client's own history. */
  deviceLoggedIn(base: string, token: string): void {
    this.#anonymous.login--;
    this.totals.ok++;
    this.#bases.set(base, { status: 'definite', token });
  }

  /**
   * A revocation was sent: every other session of the user (`bases`, the devices not known gone) may
   * be gone until it is answered. Returns what to restore if it turns out to have had no effect.
   */
  revokeSent(bases: string[]): Map<string, BaseStatus> {
    const before = new Map<string, BaseStatus>();
    for (const b of bases) {
      const known = this.#bases.get(b);
      if (known !== undefined) before.set(b, known.status);
      this.#markMaybe(b, 'revocation unanswered');
    }
    return before;
  }

  /** A revocation went unanswered (the client gave up, the connection broke): it may run until `until`. */
  revocationAbandoned(client: string, until: number): void {
    this.#revocationsRunning.set(client, Math.max(until, this.#revocationsRunning.get(client) ?? 0));
  }

  /** A revocation known to have had no effect (refused, or its session not found). */
  revokeUnsent(before: Map<string, BaseStatus>): void {
    for (const [b, status] of before) {
      const known = this.#bases.get(b);
      // Left in doubt by another revocation meanwhile: that one's doubt stands.
      if (known !== undefined && known.status !== 'gone' && known.why !== MAYBE_REVOKED) known.status = status;
    }
  }

  /**
   * A revocation was answered while the same user logged in on other devices (a concurrent flow of the
   * client): it ends every session of the user it finds, so those may be gone, or not.
   */
  mayBeRevoked(bases: string[]): void {
    for (const b of bases) this.#markMaybe(b, MAYBE_REVOKED);
  }

  /**
   * A 200 to a revocation: `destroyed` of the user's other sessions ended (null: the revoking session
   * was not found, so nothing was revoked). Every other session of the user is gone then; their ids
   * are replayed later like logged-out ones.
   */
  revoked(bases: string[], before: Map<string, BaseStatus>, destroyed: number | null): boolean {
    this.totals.ok++;
    if (destroyed === null) {
      this.revokeUnsent(before);
      return false;
    }
    this.totals.revocations++;
    this.totals.revoked += destroyed;
    for (const b of bases) this.#bases.get(b)!.status = 'gone';
    return true;
  }

  // ---- replays of destroyed ids ----

  /** A 200 to a read carrying an id destroyed at `goneAt` by request `removedBy`. */
  replayed(client: string, base: string, token: string, req: string, removedBy: string, goneAt: number, a: Answer): void {
    this.totals.ok++;
    this.totals.replays++;
    if (a.body.loggedIn !== true) {
      this.totals.replaysNoSession++;
      return;
    }
    this.#violate({
      promise: 2,
      client,
      login: token,
      base,
      member: a.body.route,
      req,
      related: [req, removedBy],
      since: goneAt - 5000,
      detail: `a session id destroyed at ${fmt(goneAt)} by ${removedBy} was served again: ${JSON.stringify(a.body)}`,
    });
  }

  /** A convergence failure (promise 5), found by the nemesis. */
  convergence(detail: string): void {
    this.#violate({ promise: 5, related: [], detail });
  }
}

/** Run-relative ms as seconds, for messages. */
export function fmt(ms: number): string {
  return `${(ms / 1000).toFixed(3)} s`;
}
