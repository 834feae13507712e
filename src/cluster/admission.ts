/**
 * Who may hold a connection to the receiver before authenticating (pure: no sockets, clock
 * injected). Anyone who reaches the port can open connections; until a connection's first frame
 * (the hello) verifies, it is a stranger's and costs us a slot. Slots are bounded twice:
 *
 * - per source (an IPv4 address, or an IPv6 /64, since one IPv6 host owns a whole /64), and
 * - in total for sources that are not known members: a source is known while one of its
 *   connections is authenticated, and for `TRUST_MS` after the last one closed or after an
 *   authenticated heartbeat came from it (so a member's first connection is a member's too).
 *
 * So strangers can fill only the strangers' budget: a known member's reconnect or direct check
 * never waits behind them. Authenticated connections count against no budget.
 */

/** Limits on connections that have not authenticated yet. */
export interface PreauthLimits {
  /** ms from accept until the peer's hello must have been verified; then the connection is closed. */
  timeout: number;
  /** Largest frame (payload + tag) accepted before the first frame verified. */
  maxFrameBytes: number;
  /** Unauthenticated connections held at once from one source address. */
  maxPerSource: number;
  /** Unauthenticated connections held at once from every source that is not a known member. */
  maxUnauthenticated: number;
}

/** Defaults: a hello is a few hundred bytes and arrives within a round trip of the connect. */
export const DEFAULT_PREAUTH_LIMITS: Readonly<PreauthLimits> = Object.freeze({
  timeout: 1000,
  maxFrameBytes: 4096,
  maxPerSource: 16,
  maxUnauthenticated: 128,
});

/** How long a source stays known after its last authenticated connection closed. */
export const TRUST_MS = 10 * 60_000;
/** Known sources remembered at most; beyond, new ones wait until old ones expire. */
const MAX_KNOWN_SOURCES = 1024;

/** Why a connection was refused at accept (the `framesRejected` reason). */
export type AdmissionRefusal = 'per_source_limit' | 'unauth_limit';

/** One admitted connection's slot; hand it back through `authenticated` and `closed`. */
export interface AdmissionTicket {
  readonly source: string;
  /** Counted in the strangers' budget (the source was not a known member at accept). */
  readonly stranger: boolean;
  state: 'preauth' | 'authenticated' | 'closed';
}

/**
 * The key connections are counted by: the IPv4 address (IPv4-mapped IPv6 unwrapped), or the
 * first 64 bits of an IPv6 address.
 */
export function sourceKey(address: string | undefined): string {
  if (address === undefined || address === '') return '?';
  address = address.split('%')[0]; // a link-local zone id names our interface, not the peer
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1];
  if (!address.includes(':')) return address;
  const [head, tail] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => (g.replace(/^0+(?=.)/, '') || '0').toLowerCase())
    .join(':')}::/64`;
}

/** Counts unauthenticated connections by source and remembers which sources are members. */
export class Admission {
  readonly #limits: PreauthLimits;
  readonly #now: () => number;
  /** Unauthenticated connections open, by source. */
  readonly #preauth = new Map<string, number>();
  #strangers = 0;
  /** Known member sources: authenticated connections open, and when the last one closed. */
  readonly #known = new Map<string, { open: number; until: number }>();

  constructor(limits: PreauthLimits, now: () => number = () => performance.now()) {
    this.#limits = limits;
    this.#now = now;
  }

  /** Unauthenticated connections open now (all sources), and those of strangers. */
  get counts(): { preauth: number; strangers: number } {
    let preauth = 0;
    for (const n of this.#preauth.values()) preauth += n;
    return { preauth, strangers: this.#strangers };
  }

  /** True while `source` is a known member's address. */
  isKnown(source: string): boolean {
    const k = this.#known.get(source);
    if (k === undefined) return false;
    if (k.open > 0 || k.until > this.#now()) return true;
    this.#known.delete(source);
    return false;
  }

  /** A connection from `address` was accepted: a slot for it, or why not. */
  admit(address: string | undefined): AdmissionTicket | AdmissionRefusal {
    const source = sourceKey(address);
    const held = this.#preauth.get(source) ?? 0;
    if (held >= this.#limits.maxPerSource) return 'per_source_limit';
    const stranger = !this.isKnown(source);
    if (stranger && this.#strangers >= this.#limits.maxUnauthenticated) return 'unauth_limit';
    this.#preauth.set(source, held + 1);
    if (stranger) this.#strangers += 1;
    return { source, stranger, state: 'preauth' };
  }

  /** The connection's hello verified: its slot is free, its source a known member's. */
  authenticated(ticket: AdmissionTicket): void {
    if (ticket.state !== 'preauth') return;
    this.#release(ticket);
    ticket.state = 'authenticated';
    const k = this.#knownEntry(ticket.source);
    if (k !== undefined) k.open += 1;
  }

  /** Authenticated news that `address` is a member's (its heartbeat came from there): known for `TRUST_MS`. */
  trust(address: string): void {
    const k = this.#knownEntry(sourceKey(address));
    if (k !== undefined) k.until = Math.max(k.until, this.#now() + TRUST_MS);
  }

  #knownEntry(source: string): { open: number; until: number } | undefined {
    let k = this.#known.get(source);
    if (k === undefined) {
      if (this.#known.size >= MAX_KNOWN_SOURCES) this.#expireKnown();
      if (this.#known.size >= MAX_KNOWN_SOURCES) return undefined;
      k = { open: 0, until: 0 };
      this.#known.set(source, k);
    }
    return k;
  }

  /** The connection closed, in any state. Safe to call twice. */
  closed(ticket: AdmissionTicket): void {
    if (ticket.state === 'preauth') this.#release(ticket);
    if (ticket.state === 'authenticated') {
      const k = this.#known.get(ticket.source);
      if (k !== undefined) {
        k.open = Math.max(0, k.open - 1);
        if (k.open === 0) k.until = this.#now() + TRUST_MS;
      }
    }
    ticket.state = 'closed';
  }

  #release(ticket: AdmissionTicket): void {
    const n = (this.#preauth.get(ticket.source) ?? 1) - 1;
    if (n > 0) this.#preauth.set(ticket.source, n);
    else this.#preauth.delete(ticket.source);
    if (ticket.stranger) this.#strangers -= 1;
  }

  #expireKnown(): void {
    const now = this.#now();
    for (const [source, k] of this.#known) if (k.open === 0 && k.until <= now) this.#known.delete(source);
  }
}
