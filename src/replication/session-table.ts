/**
 * The sessions this member holds: as primary (it serves them) or as a copy for another member, and
 * the tombstones of sessions it let go of. Values are kept encoded, per top-level key (what travels on
 * the wire), packed into one string (`packed-entries.ts`); the member serving a session keeps only the
 * most recently read ones decoded besides (`decoded-cache.ts`).
 */
import { systemClock, type Clock } from './clock.js';
import { Tombstones } from './tombstones.js';
import { compareHeld } from './copies.js';
import type { Packed } from './packed-entries.js';

/** How this member holds a session. */
export type Role = 'primary' | 'backup';

/** One session, as held here. */
export interface SessionEntry {
  readonly base: string;
  /** Route of the member that owns the session now (its writes are accepted). */
  owner: string;
  /** Ownership epoch: bumped at each takeover; writes from a lower epoch are refused (fencing). */
  epoch: number;
  /** Bumped by every write; deltas name the version they apply to. Never reused, even by a failed write. */
  version: number;
  /** Epoch ms after which every copy drops the session by itself. */
  expire: number;
  /** koa-session's maxAge for this session, ms, or 'session' for a browser-session cookie. */
  maxAge: number | 'session';
  /** The encoded value of each top-level key, packed (`packed-entries.ts`); replaced, never changed in place. */
  packed: Packed;
  role: Role;
  /** On the primary: the route holding the backup copy, once one acknowledged it. */
  backup: string | undefined;
  /**
   * Set when this member may have been cut off (paused, partitioned): before it serves the session
   * again it checks that no other member took it over meanwhile.
   */
  unverified?: boolean;
  /**
   * On the primary: a write failed after it may have reached a copy holder, so the holders may differ
   * from this entry; the next write sends the whole session instead of a delta.
   */
  resync?: boolean;
  /** On a copy holder: when the last write or copy arrived, monotonic (the anti-entropy sweep leaves fresh copies alone). */
  touchedAt?: number;
  /** Epoch ms the session was created; replicated, so `absoluteMaxAge` ends it on every copy. */
  createdAt?: number;
  /** Whose session it is (option `principal`), replicated with every write. */
  principal?: string;
}

/**
 * What remains of a session this member let go of. `moved`: another member owns it from `epoch` on
 * (fences older owners). `removed`: it was destroyed (logout, regenerate) by its owner at `epoch`; it
 * fences every copy of that epoch or older, until every copy would have expired.
 */
export interface Tombstone {
  kind: 'moved' | 'removed';
  epoch: number;
  owner: string;
  until: number;
}

/** A moved-session tombstone needs to outlive only the messages in flight about the session. */
const MOVED_TOMBSTONE_MS = 10 * 60 * 1000;

/**
 * What a copy that expired here leaves: the ownership and version it had. Each copy ends by its
 * holder's clock, so the newest copy may end on one member while an older one (a stray the owner could
 * not reach to drop) still lives on a member whose clock is behind: a takeover that found only that
 * older one would serve it and lose the writes after it. The trace tells it the session outlived that
 * copy and has ended (`expiredTrace`, answered in surveys).
 */
export interface ExpiryTrace {
  epoch: number;
  owner: string;
  version: number;
  until: number;
}

/**
 * How long a trace outlives the end of the copy it remembers: until every older copy has ended on
 * every member's clock. An older copy's end was stamped by a clock at most the tolerated skew off the
 * one that stamped this copy's, and is read by another clock as far off: twice the clock skew the
 * cluster tolerates (heartbeats from clocks more than 60 s apart are refused, `MAX_CLOCK_SKEW_MS`). So
 * a member keeps the traces of the copies that expired in the last two minutes, 40-byte slots.
 */
export const EXPIRY_TRACE_MS = 2 * 60_000;

/**
 * Until when a destruction fences the copies of a session whose copies end at `expire` at the latest:
 * as long again as an expiry trace outlives its copy. A copy the destroyer could not reach (cut off)
 * lives by its holder's clock, which may be behind the destroyer's: without the margin the
 * tombstones end first, and that copy is served again after the heal (delta seed 38101).
 */
export function fenceUntil(expire: number): number {
  return expire + EXPIRY_TRACE_MS;
}

/** The session table of one member. */
export class SessionTable {
  readonly #entries = new Map<string, SessionEntry>();
  /** Sessions that moved to another owner (kept minutes): few, as objects. */
  readonly #moved = new Map<string, Tombstone>();
  /** Sessions destroyed (kept until no copy can exist): many, kept compact. */
  readonly #removed = new Tombstones();
  /** Copies that expired here lately (`ExpiryTrace`): compact too, and gone two minutes after. */
  readonly #expired = new Tombstones(1024, { versions: true });
  readonly #clock: Clock;
  /** Told of each entry dropped because it expired (session events, the principal index). */
  onExpire: ((e: SessionEntry) => void) | undefined;

  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }

  get(base: string, now = this.#clock.now()): SessionEntry | undefined {
    const e = this.#entries.get(base);
    if (e !== undefined && e.expire <= now) {
      this.#dropExpired(e);
      return undefined;
    }
    return e;
  }

  #dropExpired(e: SessionEntry): void {
    this.#entries.delete(e.base);
    this.#trace(e.base, e, e.expire + EXPIRY_TRACE_MS);
    this.onExpire?.(e);
  }

  /** Remembers that a copy at `held` ended (the newest such copy known here wins). */
  #trace(base: string, held: { epoch: number; owner: string; version: number }, until: number): void {
    const t = this.#expired.get(base);
    if (t !== undefined && compareHeld({ ...t, version: t.version ?? 0 }, held) > 0) {
      if (t.until < until) this.#expired.set(base, { ...t, until });
      return;
    }
    this.#expired.set(base, { epoch: held.epoch, owner: held.owner, version: held.version, until: Math.max(until, t?.until ?? 0) });
  }

  /** The trace of the newest copy of `base` that expired here lately (or that a takeover learnt of). */
  expiredTrace(base: string, now = this.#clock.now()): ExpiryTrace | undefined {
    const t = this.#expired.get(base);
    if (t === undefined) return undefined;
    if (t.until <= now) {
      this.#expired.delete(base);
      return undefined;
    }
    return { epoch: t.epoch, owner: t.owner, version: t.version ?? 0, until: t.until };
  }

  /**
   * A takeover found that a newer copy of `base` than the one held here expired elsewhere: the copy held
   * here is a stray of the session's past, dropped; its trace is kept, so this member answers as the
   * other one did.
   */
  outlived(base: string, trace: { epoch: number; owner: string; version: number }): void {
    const e = this.#entries.get(base);
    this.#entries.delete(base);
    this.#trace(base, trace, Math.max(e?.expire ?? 0, this.#clock.now()) + EXPIRY_TRACE_MS);
  }

  /** Installs an entry; a tombstone it supersedes (fencing let it through) goes. */
  set(entry: SessionEntry): void {
    this.#entries.set(entry.base, entry);
    this.#moved.delete(entry.base);
    this.#removed.delete(entry.base);
    const t = this.#expired.get(entry.base);
    if (t !== undefined && compareHeld(entry, { ...t, version: t.version ?? 0 }) >= 0) this.#expired.delete(entry.base);
  }

  /** Lets go of a session another member owns from `epoch` on. */
  moved(base: string, epoch: number, owner: string): void {
    const e = this.#entries.get(base);
    this.#entries.delete(base);
    if (this.#removed.get(base) !== undefined) return; // a destroyed session stays destroyed
    const t = this.#moved.get(base);
    const until = Math.min(e?.expire ?? Infinity, this.#clock.now() + MOVED_TOMBSTONE_MS);
    if (t === undefined || t.epoch <= epoch) this.#moved.set(base, { kind: 'moved', epoch, owner, until });
  }

  /**
   * Destroys a session: the tombstone fences every copy of `epoch` or older until `until` (the latest
   * expiry any copy can have, with the margin of `fenceUntil`), so no stray copy ever brings it back.
   */
  destroy(base: string, epoch: number, owner: string, until: number): void {
    const e = this.#entries.get(base);
    this.#entries.delete(base);
    const moved = this.#moved.get(base);
    this.#moved.delete(base);
    const t = this.#removed.get(base);
    const keep = Math.max(until, e === undefined ? 0 : fenceUntil(e.expire), t?.until ?? 0, moved?.until ?? 0);
    if (t !== undefined && t.epoch > epoch) this.#removed.set(base, { ...t, until: keep });
    else this.#removed.set(base, { epoch, owner, until: keep });
  }

  tombstone(base: string, now = this.#clock.now()): Tombstone | undefined {
    const r = this.#removed.get(base);
    if (r !== undefined) {
      if (r.until > now) return { kind: 'removed', ...r };
      this.#removed.delete(base);
    }
    const t = this.#moved.get(base);
    if (t !== undefined && t.until <= now) {
      this.#moved.delete(base);
      return undefined;
    }
    return t;
  }

  /**
   * Forgets the destruction of `base` made at `epoch` by `owner` (and no newer one): every member
   * acknowledged it and no copy it fences can still exist (`removal-queue.ts`). True when it did.
   */
  forget(base: string, epoch: number, owner: string): boolean {
    const r = this.#removed.get(base);
    if (r === undefined || r.epoch !== epoch || r.owner !== owner) return false;
    return this.#removed.delete(base);
  }

  /** Destructions remembered, and the bytes they take (for the bench and the status). */
  tombstoneCount(): { removed: number; moved: number; expired: number; bytes: number } {
    return { removed: this.#removed.size, moved: this.#moved.size, expired: this.#expired.size, bytes: this.#removed.bytes + this.#expired.bytes };
  }

  /** The destructions `owner` made that still fence (base and tombstone). */
  *destroyedBy(owner: string): IterableIterator<[string, Tombstone]> {
    const now = this.#clock.now();
    for (const [base, d] of this.#removed.entries()) if (d.owner === owner && d.until > now) yield [base, { kind: 'removed', ...d }];
  }

  /** Drops expired sessions and tombstones; returns how many sessions expired. */
  sweep(now = this.#clock.now()): number {
    let expired = 0;
    for (const e of this.#entries.values()) {
      if (e.expire <= now) {
        this.#dropExpired(e);
        expired++;
      }
    }
    for (const [base, t] of this.#moved) if (t.until <= now) this.#moved.delete(base);
    this.#removed.sweep(now);
    this.#expired.sweep(now);
    return expired;
  }

  /** Every live entry (a snapshot array: safe to await between items). */
  entries(): SessionEntry[] {
    const now = this.#clock.now();
    return [...this.#entries.values()].filter((e) => e.expire > now);
  }

  /**
   * Every entry held, expired ones included (their `expire` says so), without copying the table: for
   * walks that run every second over 100k entries, where a snapshot array or a generator costs more
   * than the walk. Do not await while iterating.
   */
  held(): IterableIterator<SessionEntry> {
    return this.#entries.values();
  }

  /** Now, on the table's clock. */
  now(): number {
    return this.#clock.now();
  }

  /** Bases in a stable order, for paging a state transfer. */
  bases(): string[] {
    return [...this.#entries.keys()];
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
    this.#moved.clear();
    this.#removed.clear();
    this.#expired.clear();
  }
}
