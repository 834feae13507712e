/**
 * Clients that behave as koa-session drives the store behind a balancer: a request goes to the member
 * its cookie's route names (sticky), or to any member when that one is down or at random; the route
 * binder runs first, then koa-session's get, then (if the session changed) set with the whole
 * session plus `_expire` and `_maxAge`, or destroy on logout, or destroy + set under a new id on
 * regenerate. Clients give up on a request after a timeout while it keeps running on the member.
 */
import type { Context } from 'koa';
import { parseSessionId } from '../../src/replication/session-id.js';
import type { History, Op, OpKind, SessionValue } from './history.js';
import type { SimLoop } from './loop.js';
import { FakeContext, type SimMember } from './member.js';
import type { Prng } from './prng.js';

export const MAX_AGE = 24 * 60 * 60 * 1000;
const COOKIE = 'koa.sess';

export interface ClientWorld {
  loop: SimLoop;
  rng: Prng;
  /** Clients log out everywhere now and then (the members run the principal index). */
  revokes: boolean;
  history: History;
  /** Members a balancer would send to now (started; it cannot see a pause). */
  targets(): SimMember[];
  memberByRoute(route: string): SimMember | undefined;
  quiet(): boolean;
  /** koa-session's maxAge for every session (`MAX_AGE` unless the expiry profile runs). */
  maxAge: number;
  /** Ids found expired ("no session") are kept and replayed later, like logged-out ones. */
  replayExpired: boolean;
  /**
   * A client whose write failed leaves its session alone for a few seconds in half the cases (a user
   * who got an error page and went away): whatever a failed write left behind on the holders is then
   * repaired by the members themselves, not by the client's next write.
   */
  idleAfterError?: boolean;
  trace(s: string): void;
  cover(what: string): void;
  onOpEnd(op: Op): void;
}

function userKeys(s: Record<string, unknown>): SessionValue {
  const out: SessionValue = {};
  for (const k of Object.keys(s)) if (k[0] !== '_') out[k] = s[k];
  return out;
}

export class Client {
  cookie: string | undefined;
  /** Ids this client logged out of or regenerated away from: replayed later, must find nothing. */
  readonly oldIds: string[] = [];
  inFlight = 0;
  /** No new request before this time (idle after an error). */
  idleUntil = 0;
  /**
   * Keeps its session: no logout, regenerate or revoke while set (the expiry-race nemesis needs a
   * session that lives to its end). The draws stay the same, only their outcome changes.
   */
  keep = false;
  /** A member this client's requests avoid while set (the expiry-race nemesis: writes go to the other side). */
  avoid: SimMember | undefined;

  constructor(
    readonly id: number,
    readonly w: ClientWorld,
  ) {}

  /** Starts the next request(s), then schedules itself again. */
  tick(): void {
    const { rng, loop } = this.w;
    loop.after(rng.range(30, 500), loop.world, () => this.tick());
    if (this.inFlight > 0 || loop.now < this.idleUntil || this.w.quiet() || this.w.targets().length === 0) return;
    if (this.cookie === undefined) {
      if (this.oldIds.length > 0 && rng.chance(0.2)) this.#send('replay', rng.pick(this.oldIds));
      else this.#send('login', undefined);
      return;
    }
    const kind = rng.weighted<OpKind | 'pair' | 'replay'>([
      ['write', 45],
      ['read', 20],
      ['pair', 15],
      ['logout', this.keep ? 0 : 4],
      ['regenerate', this.keep ? 0 : 5],
      // Log out everywhere (cluster.destroySessions of the client's principal): its session ends too.
      ['revoke', this.w.revokes && !this.keep ? 3 : 0],
      ['replay', this.oldIds.length > 0 ? 5 : 0],
    ]);
    if (kind === 'pair') {
      // Concurrent requests for one session at two different members (two tabs, a retried request).
      const targets = this.w.targets();
      const a = this.#choose(this.cookie);
      const others = targets.filter((m) => m !== a);
      const b = others.length > 0 ? rng.pick(others) : a;
      this.#send(rng.chance(0.7) ? 'write' : 'read', this.cookie, a);
      this.#send(rng.chance(0.6) ? 'write' : 'read', this.cookie, b);
      this.w.cover('concurrent requests to one session at two members');
    } else if (kind === 'replay') this.#send('replay', rng.pick(this.oldIds));
    else this.#send(kind, this.cookie);
  }

  #choose(cookie: string | undefined): SimMember {
    const all = this.w.targets();
    const targets = all.some((m) => m !== this.avoid) ? all.filter((m) => m !== this.avoid) : all;
    const id = parseSessionId(cookie);
    const sticky = id === undefined ? undefined : this.w.memberByRoute(id.route);
    if (sticky !== undefined && targets.includes(sticky) && !this.w.rng.chance(0.2)) return sticky;
    return this.w.rng.pick(targets);
  }

  /** Ends this client's session at `member` now (the expiry-destroy nemesis), whatever `keep` says. */
  end(kind: 'logout' | 'regenerate', member: SimMember): Op | undefined {
    return this.cookie === undefined ? undefined : this.#send(kind, this.cookie, member);
  }

  /** Writes this client's session at `member` now (the expiry-resend nemesis), whatever it avoids. */
  write(member: SimMember): Op | undefined {
    return this.cookie === undefined ? undefined : this.#send('write', this.cookie, member);
  }

  /**
   * A read of `cookie` at `member` (the availability oracle's probe): a request like any other, in the
   * history, that waits `patience` ms before its client gives up.
   */
  probe(member: SimMember, cookie: string, patience: number, source?: string): Op {
    return this.#send('read', cookie, member, patience, source);
  }

  #send(kind: OpKind, cookie: string | undefined, member = this.#choose(cookie), patience?: number, source?: string): Op {
    const { loop, rng, history } = this.w;
    const op = history.op({ client: this.id, kind, member: member.proc.name, inv: loop.now, cookieIn: cookie, source });
    this.inFlight++;
    this.w.trace(`c${this.id} ${kind} #${op.id} -> ${op.member} ${cookie?.slice(0, 6) ?? '-'}`);
    let answered = false;
    const answer = (status: Op['status'], cookieOut?: string) => {
      if (answered) return;
      answered = true;
      this.inFlight--;
      op.status = status;
      op.clientEnd = loop.now;
      if (status === 'acked' || status === 'no-session') this.#learn(op, cookieOut);
      else if (this.w.idleAfterError === true && op.calls.some((c) => c.kind === 'set' && c.ok === false) && rng.chance(0.5)) {
        this.idleUntil = loop.now + rng.range(2000, 8000);
      }
      this.w.trace(`c${this.id} #${op.id} ${status}${cookieOut !== undefined ? ` ${cookieOut.slice(0, 6)}` : ''}`);
      this.w.onOpEnd(op);
    };
    const timeout = patience ?? rng.range(1500, 6000);
    loop.after(timeout, loop.world, () => {
      if (!answered) this.w.cover('client abandoned a request that kept running');
      answer('abandoned');
    });
    op.onCrash = () => answer('failed');
    // The request reaches the member after a network hop; a paused member reads it late.
    loop.after(rng.range(0.1, 2), member.proc, () => {
      void run(this.w, member, op, kind, cookie).then(
        (r) => loop.after(rng.range(0.1, 2), loop.world, () => answer(r.status, r.cookie)),
        () => loop.after(rng.range(0.1, 2), loop.world, () => answer('failed')),
      );
    });
    return op;
  }

  #learn(op: Op, cookieOut: string | undefined): void {
    if (op.kind === 'replay') return;
    const before = this.cookie;
    if (op.kind === 'logout' || op.kind === 'revoke' || op.status === 'no-session') {
      if (before !== undefined && (op.kind === 'logout' || op.kind === 'revoke' || (this.w.replayExpired && op.cookieIn === before))) this.oldIds.push(before);
      if (op.cookieIn === this.cookie) this.cookie = undefined;
      return;
    }
    if (op.kind === 'regenerate' && before !== undefined && cookieOut !== undefined) this.oldIds.push(before);
    // A rebound id for the same session, or a new session.
    if (cookieOut !== undefined && (op.cookieIn === this.cookie || op.kind === 'login')) this.cookie = cookieOut;
  }
}

interface Outcome {
  status: Op['status'];
  cookie?: string;
}

/** One HTTP request on `m`: route binder, then what koa-session would call. */
async function run(w: ClientWorld, m: SimMember, op: Op, kind: OpKind, cookie: string | undefined): Promise<Outcome> {
  const { loop, history } = w;
  const ctx = new FakeContext(COOKIE, cookie, op.source);
  let outcome: Outcome = { status: 'failed' };
  const track = async <T>(base: string, f: () => Promise<T>): Promise<T> => {
    m.busyStart(base);
    try {
      return await f();
    } finally {
      m.busyEnd(base);
    }
  };
  const get = async (key: string): Promise<SessionValue | null> => {
    const base = parseSessionId(key)!.base;
    const call = history.call(op, { kind: 'get', base, inv: loop.now });
    try {
      const s = (await track(base, () => m.store.get(key, w.maxAge, { rolling: false, ctx }))) as Record<string, unknown> | undefined;
      history.ended(call, loop.now);
      call.ok = true;
      call.result = s === undefined ? null : userKeys(s);
      w.trace(`  ${m.proc.name} get ${base.slice(0, 6)} -> ${s === undefined ? 'none' : `n=${String(s.n)}`}`);
      return call.result;
    } catch (err) {
      history.ended(call, loop.now);
      call.ok = false;
      call.code = (err as { code?: string }).code ?? 'ERR';
      w.trace(`  ${m.proc.name} get ${base.slice(0, 6)} -> ${call.code}`);
      throw err;
    }
  };
  const set = async (key: string, read: SessionValue | undefined, wrote: SessionValue): Promise<void> => {
    const base = parseSessionId(key)!.base;
    const call = history.call(op, { kind: 'set', base, inv: loop.now, read, wrote });
    const sess = { ...wrote, _expire: Math.floor(loop.now) + w.maxAge, _maxAge: w.maxAge };
    call.expire = sess._expire;
    try {
      await track(base, () => m.store.set(key, sess, w.maxAge, { rolling: false, changed: true, ctx }));
      history.ended(call, loop.now);
      call.ok = true;
      const e = m.manager.table.get(base);
      if (e !== undefined && e.owner === m.route) call.epoch = e.epoch;
      w.trace(`  ${m.proc.name} set ${base.slice(0, 6)} n=${String(wrote.n)} ok@${call.epoch ?? '?'}`);
    } catch (err) {
      history.ended(call, loop.now);
      call.ok = false;
      call.code = (err as { code?: string }).code ?? 'ERR';
      w.trace(`  ${m.proc.name} set ${base.slice(0, 6)} n=${String(wrote.n)} -> ${call.code}`);
      throw err;
    }
  };
  // `revoke`: every session of the principal, found through the index, not through this cookie.
  const destroy = async (key: string, principal?: string): Promise<void> => {
    const base = parseSessionId(key)!.base;
    const call = history.call(op, { kind: 'destroy', base, inv: loop.now });
    try {
      if (principal === undefined) await track(base, () => m.store.destroy(key, { ctx }));
      else {
        history.revokeStarted(op, base, loop.now);
        const n = await track(base, () => m.principals!.destroySessions(principal)).finally(() => history.revokeEnded(op));
        w.trace(`  ${m.proc.name} revoked ${n} of ${principal}`);
        w.cover(n > 0 ? 'log out everywhere (destroySessions) that destroyed a session' : 'log out everywhere that found nothing');
      }
      history.ended(call, loop.now);
      call.ok = true;
      w.trace(`  ${m.proc.name} destroy ${base.slice(0, 6)} ok`);
    } catch (err) {
      history.ended(call, loop.now);
      call.ok = false;
      call.code = (err as { code?: string }).code ?? 'ERR';
      w.trace(`  ${m.proc.name} destroy ${base.slice(0, 6)} -> ${call.code}`);
      throw err;
    }
  };
  const genid = () => `${w.rng.token(18)}.${m.route}`;
  const tag = `w${op.id}`;

  let reached = false;
  try {
    await m.binder(ctx as unknown as Context, async () => {
      reached = true;
      const key = ctx.cookies.get(COOKIE);
      if (kind === 'login' || key === undefined) {
        if (kind !== 'login') return void (outcome = { status: 'no-session' });
        const id = genid();
        await set(id, undefined, { u: `user${op.client}`, n: 0, t: tag });
        outcome = { status: 'acked', cookie: id };
        return;
      }
      const s = await get(key);
      if (s === null) {
        outcome = { status: kind === 'replay' ? 'acked' : 'no-session' };
        return;
      }
      const current = ctx.setCookie ?? key;
      if (kind === 'read' || kind === 'replay') {
        outcome = { status: 'acked', cookie: current };
        return;
      }
      if (kind === 'logout' || kind === 'revoke') {
        await destroy(key, kind === 'revoke' ? String(s.u) : undefined);
        outcome = { status: 'acked' };
        return;
      }
      const next: SessionValue = { ...s, n: (typeof s.n === 'number' ? s.n : 0) + 1, t: tag };
      if (w.rng.chance(0.3)) next.x = tag;
      else if (w.rng.chance(0.2)) delete next.x;
      if (kind === 'regenerate') {
        await destroy(key);
        const id = genid();
        await set(id, undefined, next);
        outcome = { status: 'acked', cookie: id };
        return;
      }
      await set(key, s, next);
      outcome = { status: 'acked', cookie: current };
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    return { status: code === 'ERR_SESSION_UNAVAILABLE' ? 'unavailable' : 'failed' };
  }
  if (!reached) return { status: ctx.status === 503 ? 'unavailable' : 'failed' };
  return outcome;
}
