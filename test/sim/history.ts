/**
 * What clients did and saw: each HTTP-like request (an op) and the store calls it made on a member,
 * with simulated times. `end` is when the call settled on the member (a crash settles it at the
 * crash); an op is acknowledged when its client received a success response.
 */
export type SessionValue = Record<string, unknown>;

export type OpKind = 'login' | 'read' | 'write' | 'logout' | 'regenerate' | 'replay' | 'revoke';
export type OpStatus = 'pending' | 'acked' | 'failed' | 'unavailable' | 'abandoned' | 'no-session';

export interface Op {
  id: number;
  client: number;
  kind: OpKind;
  member: string;
  inv: number;
  /** When the client got its answer or gave up. */
  clientEnd?: number;
  status: OpStatus;
  calls: Call[];
  cookieIn?: string;
  /** The client's address, when not the one every simulated client shares (the lookup budget's key). */
  source?: string;
  /** The session the op ended up with (rebound, new, or undefined after logout). */
  cookieOut?: string;
  /** Tells the client its member died under the request (a reset connection). */
  onCrash?: () => void;
}

export interface Call {
  id: number;
  op: Op;
  kind: 'get' | 'set' | 'destroy';
  member: string;
  base: string;
  inv: number;
  end?: number;
  /** Order of the call's start and end among events of the same simulated instant. */
  invSeq: number;
  endSeq?: number;
  ok?: boolean;
  code?: string;
  /** get: the session (user keys only), null for "no session". */
  result?: SessionValue | null;
  /** set: what this request read (undefined for a new session) and wrote. */
  read?: SessionValue;
  wrote?: SessionValue;
  /** set: the ownership epoch of the entry on the member right after the write was accepted. */
  epoch?: number;
  /** set: the `_expire` it wrote (epoch ms, by the client's clock). */
  expire?: number;
}

export class History {
  readonly ops: Op[] = [];
  readonly calls: Call[] = [];
  readonly byBase = new Map<string, Call[]>();
  #ids = 0;
  /** Orders events that happen at one simulated instant (code runs between them, time does not). */
  #seq = 0;

  op(o: Omit<Op, 'id' | 'calls' | 'status'>): Op {
    const op: Op = { ...o, id: ++this.#ids, calls: [], status: 'pending' };
    this.ops.push(op);
    return op;
  }

  call(op: Op, c: Omit<Call, 'id' | 'op' | 'member' | 'invSeq'>): Call {
    const call: Call = { ...c, id: ++this.#ids, op, member: op.member, invSeq: ++this.#seq };
    op.calls.push(call);
    this.calls.push(call);
    let list = this.byBase.get(c.base);
    if (list === undefined) this.byBase.set(c.base, (list = []));
    list.push(call);
    if (isCreation(call)) this.#created(call);
    return call;
  }

  /** The call settled on its member at `now`. */
  ended(c: Call, now: number): void {
    c.end = now;
    c.endSeq = ++this.#seq;
  }

  /** Calls still running on `member` end at its crash. */
  crashed(member: string, now: number): void {
    for (const c of this.calls) if (c.member === member && c.end === undefined) this.ended(c, now);
    for (const op of this.#revoking) if (op.member === member) this.#revoking.delete(op);
  }

  /**
   * Log-outs everywhere still running (a client may have several: it gives up and goes on). `destroySessions` ends every session of the user
   * that it finds, those created while it runs included (README, "Sessions by user"), and it may run
   * on long after its client gave up: each such session is one somebody tried to destroy.
   */
  readonly #revoking = new Set<Op>();

  /** `op` (a revoke) starts: every session its client created so far may go, besides `cookieBase`. */
  revokeStarted(op: Op, cookieBase: string, now: number): void {
    this.#revoking.add(op);
    for (const [base, calls] of this.byBase) {
      if (base !== cookieBase && calls.some((c) => isCreation(c) && c.op.client === op.client)) this.#mayDestroy(op, base, now);
    }
  }

  revokeEnded(op: Op): void {
    this.#revoking.delete(op);
  }

  /** Created while a revoke of its user runs: that revoke may destroy it. */
  #created(c: Call): void {
    for (const revoke of this.#revoking) if (revoke.client === c.op.client && revoke !== c.op) this.#mayDestroy(revoke, c.base, c.inv);
  }

  /** A destroy in doubt (never acknowledged on its own): "no session" and either convergence state are allowed. */
  #mayDestroy(op: Op, base: string, now: number): void {
    const d = this.call(op, { kind: 'destroy', base, inv: now });
    this.ended(d, now);
    d.ok = false;
    d.code = 'REVOKE_MAY_DESTROY';
  }
}

function isCreation(c: Call): boolean {
  return c.kind === 'set' && c.read === undefined;
}

/** Whether call `a` ended before call `b` began (at one instant, by the order of events). */
export function endedBefore(a: Call, b: Call): boolean {
  if (a.end === undefined) return false;
  return a.end < b.inv || (a.end === b.inv && a.endSeq! < b.invSeq);
}

/** The keys whose value a set changed against what its request read ('absent' = removed). */
export const ABSENT = Symbol('absent');
export type Effect = unknown;

export function effects(c: Call): Map<string, Effect> {
  const out = new Map<string, Effect>();
  const read = c.read ?? {};
  const wrote = c.wrote ?? {};
  for (const k of Object.keys(wrote)) if (c.read === undefined || !same(read[k], wrote[k])) out.set(k, wrote[k]);
  for (const k of Object.keys(read)) if (!(k in wrote)) out.set(k, ABSENT);
  return out;
}

export function same(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}
