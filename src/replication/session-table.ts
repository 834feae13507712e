/**
 * The sessions this member holds: as primary (it serves them) or as a copy for another member.
 * Values are kept encoded per top-level key (what travels on the wire), and decoded lazily on the
 * member that serves the session: a backup never pays for decoding what it only keeps.
 */

/** How this member holds a session. */
export type Role = 'primary' | 'backup';

/** One session, as held here. */
export interface SessionEntry {
  readonly base: string;
  /** Route of the member that owns the session now (its writes are accepted). */
  owner: string;
  /** Ownership epoch: bumped at each takeover; writes from a lower epoch are refused (fencing). */
  epoch: number;
  /** Bumped by every write; deltas name the version they apply to. */
  version: number;
  /** Epoch ms after which every copy drops the session by itself. */
  expire: number;
  /** koa-session's maxAge for this session, ms, or 'session' for a browser-session cookie. */
  maxAge: number | 'session';
  /** Encoded value of each top-level key. */
  encoded: Map<string, Buffer>;
  /** Decoded values (never mutated in place: a write replaces the object). Absent until needed. */
  values: Record<string, unknown> | undefined;
  role: Role;
  /** On the primary: the route holding the backup copy, once one acknowledged it. */
  backup: string | undefined;
  /**
   * Set when this member may have been cut off (paused, partitioned): before it serves the session
   * again it checks that no other member took it over meanwhile.
   */
  unverified?: boolean;
}

/** What remains of a session this member let go of: enough to refuse a stale owner's writes. */
export interface Tombstone {
  epoch: number;
  owner: string;
  until: number;
}

const TOMBSTONE_MS = 10 * 60 * 1000;

/** The session table of one member. */
export class SessionTable {
  readonly #entries = new Map<string, SessionEntry>();
  readonly #tombstones = new Map<string, Tombstone>();

  get(base: string, now = Date.now()): SessionEntry | undefined {
    const e = this.#entries.get(base);
    if (e !== undefined && e.expire <= now) {
      this.#entries.delete(base);
      return undefined;
    }
    return e;
  }

  set(entry: SessionEntry): void {
    this.#entries.set(entry.base, entry);
    this.#tombstones.delete(entry.base);
  }

  /** Removes a session, leaving a tombstone that fences writes below `epoch` for a while. */
  delete(base: string, epoch: number, owner: string): void {
    const e = this.#entries.get(base);
    this.#entries.delete(base);
    const until = Math.max(e?.expire ?? 0, 0);
    this.#tombstones.set(base, { epoch, owner, until: Math.min(until || Infinity, Date.now() + TOMBSTONE_MS) });
  }

  tombstone(base: string, now = Date.now()): Tombstone | undefined {
    const t = this.#tombstones.get(base);
    if (t !== undefined && t.until <= now) {
      this.#tombstones.delete(base);
      return undefined;
    }
    return t;
  }

  /** Drops expired sessions and tombstones; returns how many sessions expired. */
  sweep(now = Date.now()): number {
    let expired = 0;
    for (const [base, e] of this.#entries) {
      if (e.expire <= now) {
        this.#entries.delete(base);
        expired++;
      }
    }
    for (const [base, t] of this.#tombstones) if (t.until <= now) this.#tombstones.delete(base);
    return expired;
  }

  /** Every live entry (a snapshot array: safe to await between items). */
  entries(): SessionEntry[] {
    const now = Date.now();
    return [...this.#entries.values()].filter((e) => e.expire > now);
  }

  /** Bases in a stable order, for paging a state transfer. */
  bases(): string[] {
    return [...this.#entries.keys()];
  }

  counts(): { primary: number; backup: number } {
    let primary = 0;
    let backup = 0;
    const now = Date.now();
    for (const e of this.#entries.values()) {
      if (e.expire <= now) continue;
      if (e.role === 'primary') primary++;
      else backup++;
    }
    return { primary, backup };
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
    this.#tombstones.clear();
  }
}
