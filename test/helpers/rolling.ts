/**
 * Rolling restarts under load, as an operator does them: a sticky balancer in front of the members
 * sends each user to its member; before a member is replaced the balancer drains it (its users move
 * to another member, its requests in flight finish), then it is stopped gracefully (SIGTERM), a new
 * process takes its route (other code or other environment), and once it has joined and every
 * session is protected again the balancer sends users to it again.
 *
 * Counted throughout: requests and failed requests (anything but a 200 after the client's own 503
 * retries), sessions lost (a user answered as not logged in), and acknowledged writes lost (a
 * counter read lower than the last value a 200 acknowledged).
 */
import type { TestContext } from 'node:test';
import { CookieJar, request } from './http-client.js';
import { startAppMember, status, waitForMembership, type AppMember, type clusterConfig } from './app-cluster.js';
import { waitFor } from './wait.js';

type Config = Awaited<ReturnType<typeof clusterConfig>>;

interface User {
  id: number;
  jar: CookieJar;
  /** Last counter value a 200 acknowledged. */
  acked: number;
  home: AppMember;
}

/** What a rolling run counted. */
export interface RollingCounts {
  requests: number;
  failed: number;
  sessionsLost: number;
  writesLost: number;
  /** Sessions checked at the end (on every member). */
  sessions: number;
  /** Members replaced. */
  replaced: number;
  /** The first few failures, for the assertion message. */
  samples: string[];
}

/** Users writing to a cluster while its members are replaced one by one. */
export class RollingLoad {
  readonly live: AppMember[];
  readonly #users: User[] = [];
  readonly #inFlight = new Map<AppMember, number>();
  readonly counts: RollingCounts = { requests: 0, failed: 0, sessionsLost: 0, writesLost: 0, sessions: 0, replaced: 0, samples: [] };
  /** Logins answered 503 and retried: each may have left a session that no user has (see `login`). */
  unansweredCreations = 0;
  #stop = false;
  #loops: Promise<void>[] = [];

  constructor(members: AppMember[]) {
    this.live = [...members];
  }

  /**
   * Logs `n` users in, spread over the members, each with its counter at 1. A login answered 503 is
   * retried, as a browser does, with no cookie: a new session. The one answered 503 may still have
   * been created (a failed write may take effect), held by the members with no cookie anywhere naming
   * it; `unansweredCreations` counts them.
   */
  async login(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const u: User = { id: i + 1, jar: new CookieJar(), acked: 0, home: this.live[i % this.live.length] };
      const deadline = Date.now() + 6000;
      let res = await request(u.jar, 'POST', `${u.home.url}/login`, { id: u.id, name: `user${u.id}` }, 10_000, 0);
      while (res.status === 503 && Date.now() < deadline) {
        this.unansweredCreations += 1;
        await new Promise((r) => setTimeout(r, 200));
        res = await request(u.jar, 'POST', `${u.home.url}/login`, { id: u.id, name: `user${u.id}` }, 10_000, 0);
      }
      if (res.status !== 200) throw new Error(`login of user ${u.id} on ${u.home.route}: ${res.status}`);
      this.#users.push(u);
      await this.#write(u);
    }
  }

  /** Starts every user's loop: a write, a pause of `pauseMs`, until `stop` (at most `maxPerUser` writes each). */
  start(pauseMs = 25, maxPerUser = 4000): void {
    this.#loops = this.#users.map(async (u) => {
      for (let i = 0; i < maxPerUser && !this.#stop; i++) {
        await this.#write(u);
        await new Promise((r) => setTimeout(r, pauseMs));
      }
    });
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await Promise.all(this.#loops);
  }

  /** The balancer stops sending to `m` (its users go elsewhere) and waits for its requests in flight. */
  async drain(m: AppMember): Promise<void> {
    this.live.splice(this.live.indexOf(m), 1);
    for (const [i, u] of this.#users.entries()) if (u.home === m) u.home = this.live[i % this.live.length];
    await waitFor(`requests in flight to ${m.route} to finish`, () => (this.#inFlight.get(m) ?? 0) === 0, 30_000, 10);
  }

  /** The balancer sends to `m` again; some users move to it (their sessions are taken over there). */
  add(m: AppMember): void {
    this.live.push(m);
    for (const [i, u] of this.#users.entries()) if (i % this.live.length === this.live.length - 1) u.home = m;
  }

  /**
   * Replaces `old` by a new process on its route (`config` and `script` say which code and
   * environment), under load, and waits until every session is protected again before adding it.
   */
  async replace(t: TestContext, old: AppMember, config: Config, mode: 'backup' | 'delta', script?: string): Promise<AppMember> {
    const size = this.live.length;
    await this.drain(old);
    old.proc.kill('SIGTERM');
    await old.proc.waitForLine(/"event":"stopped"/, 30_000);
    await old.proc.exited();
    const fresh = await startAppMember(t, old.route, config, script);
    const members = [...this.live, fresh];
    await waitForMembership(members, size, 30_000);
    await waitForProtection(members, this.#users.length, mode, 30_000, this.unansweredCreations);
    this.add(fresh);
    this.counts.replaced += 1;
    return fresh;
  }

  /** Every user's session, read on every live member: counts sessions and acknowledged writes lost. */
  async verify(): Promise<RollingCounts> {
    for (const u of this.#users) {
      for (const m of this.live) {
        const res = await request(u.jar.copy(), 'GET', `${m.url}/get`);
        this.counts.requests += 1;
        if (res.status !== 200) this.#fail(`final read of user ${u.id} on ${m.route}: ${res.status} ${JSON.stringify(res.body)}`);
        else this.#check(u, res.body, m, false);
      }
    }
    this.counts.sessions = this.#users.length;
    return this.counts;
  }

  async #write(u: User): Promise<void> {
    const m = u.home;
    this.#inFlight.set(m, (this.#inFlight.get(m) ?? 0) + 1);
    try {
      const res = await request(u.jar, 'POST', `${m.url}/incr?key=n`, undefined, 15_000, 10_000);
      this.counts.requests += 1;
      if (res.status !== 200) this.#fail(`write of user ${u.id} on ${m.route}: ${res.status} ${JSON.stringify(res.body)}`);
      else this.#check(u, res.body, m, true);
    } catch (err) {
      this.counts.requests += 1;
      this.#fail(`write of user ${u.id} on ${m.route}: ${(err as Error).message}`);
    } finally {
      this.#inFlight.set(m, (this.#inFlight.get(m) ?? 1) - 1);
    }
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the member's JSON answer
  #check(u: User, body: any, m: AppMember, write: boolean): void {
    const session = (body as { session?: { user?: { id?: number }; n?: unknown } }).session;
    if (session?.user?.id !== u.id) {
      this.counts.sessionsLost += 1;
      this.#sample(`user ${u.id} on ${m.route}: session lost (${JSON.stringify(session)})`);
      return;
    }
    const n = Number(session.n ?? 0);
    const expected = write ? u.acked + 1 : u.acked;
    if (n < expected) {
      this.counts.writesLost += 1;
      this.#sample(`user ${u.id} on ${m.route}: n=${n} after ${u.acked} was acknowledged`);
    }
    if (write) u.acked = Math.max(u.acked, n);
  }

  #fail(what: string): void {
    this.counts.failed += 1;
    this.#sample(what);
  }

  #sample(what: string): void {
    if (this.counts.samples.length < 10) this.counts.samples.push(what);
  }
}

/**
 * Waits until every one of `sessions` is protected: in backup mode one primary and one backup copy
 * across `members`; in delta mode a copy on every member. `unanswered` creations (answered 503) may
 * each have left one more session, protected like the rest: up to that many more are accepted, the
 * same number on every member in delta mode, as many backups as primaries in backup mode.
 */
export async function waitForProtection(members: AppMember[], sessions: number, mode: 'backup' | 'delta', timeoutMs = 30_000, unanswered = 0): Promise<void> {
  let seen = '';
  const counted = (n: number) => n >= sessions && n <= sessions + unanswered;
  await waitFor(
    `every one of ${sessions} sessions protected (${mode}${unanswered > 0 ? `; ${unanswered} creations answered 503 may have left one more each` : ''})`,
    async () => {
      const all = await Promise.all(members.map(status));
      seen = JSON.stringify(all.map((s) => [s.route, s.sessions.primary, s.sessions.backup]));
      if (mode === 'delta') {
        const held = all.map((s) => s.sessions.primary + s.sessions.backup);
        return held.every((n) => n === held[0] && counted(n));
      }
      const primary = all.reduce((a, s) => a + s.sessions.primary, 0);
      const backup = all.reduce((a, s) => a + s.sessions.backup, 0);
      return primary === backup && counted(primary);
    },
    timeoutMs,
    100,
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${seen}`);
  });
}
