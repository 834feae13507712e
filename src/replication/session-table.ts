/**
 * The sessions this member holds: as primary (it serves them) or as a copy for another member, and
 * the tombstones of sessions it let go of. Values are kept encoded, per top-level key (what travels on
 * the wire), packed into one string (`packed-entries.ts`); the member serving a session keeps only the
 * most recently read ones decoded besides (`decoded-cache.ts`).
 */
import { systemClock, type Clock } from './clock.js';
import { Tombstones } from './tombstones.js';
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

/** The session table of one member. */
export class SessionTable {
  readonly #entries = new Map<string, SessionEntry>();
  /** Sessions that moved to another owner (kept minutes): few, as objects. */
  readonly #moved = new Map<string, Tombstone>();
  /** Sessions destroyed (kept until no copy can exist): many, kept compact. */
  readonly #removed = new Tombstones();
  readonly #clock: Clock;
  /** Told of each entry dropped because it expired (session events, the principal index). */
  onExpire: ((e: SessionEntry) => void) | undefined;

  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }

  get(base: string, now = this.#clock.now()): SessionEntry | undefined {
    const e = this.#entries.get(base);
    if (e !== undefined && e.expire <= now) {
      this.#entries.delete(base);
      this.onExpire?.(e);
      return undefined;
    }
    return e;
  }

  /** Installs an entry; a tombstone it supersedes (fencing let it through) goes. */
  set(entry: SessionEntry): void {
    this.#entries.set(entry.base, entry);
    this.#moved.delete(entry.base);
    this.#removed.delete(entry.base);
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
   * expiry any copy can have), so no stray copy ever brings it back.
   */
  destroy(base: string, epoch: number, owner: string, until: number): void {
    const e = this.#entries.get(base);
    this.#entries.delete(base);
    const moved = this.#moved.get(base);
    this.#moved.delete(base);
    const t = this.#removed.get(base);
    const keep = Math.max(until, e?.expire ?? 0, t?.until ?? 0, moved?.until ?? 0);
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
  tombstoneCount(): { removed: number; moved: number; bytes: number } {
    return { removed: this.#removed.size, moved: this.#moved.size, bytes: this.#removed.bytes };
  }

  /** The destructions `owner` made that still fence (base and tombstone). */
  *destroyedBy(owner: string): IterableIterator<[string, Tombstone]> {
    const now = this.#clock.now();
    for (const [base, d] of this.#removed.entries()) if (d.owner === owner && d.until > now) yield [base, { kind: 'removed', ...d }];
  }

  /** Drops expired sessions and tombstones; returns how many sessions expired. */
  sweep(now = this.#clock.now()): number {
    let expired = 0;
    for (const [base, e] of this.#entries) {
      if (e.expire <= now) {
        this.#entries.delete(base);
        expired++;
        this.onExpire?.(e);
      }
    }
    for (const [base, t] of this.#moved) if (t.until <= now) this.#moved.delete(base);
    this.#removed.sweep(now);
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
  }
}
