/**
 * What every replication layer of a member builds on: its options, table, clock and locks, its view of
 * the cluster (isolation and lease, who is live, who may still serve) and how it asks the others
 * (apply requests, surveys, the verdict on a silent member). `CopyHolder` adds what a member does for
 * the others (holding copies, answering where sessions are, the periodic repair); `Replicator` the
 * request path; the managers the rest.
 */
import type { Logger } from 'pino';
import type { ClusterChannel, MemberInfo } from '../cluster/types.js';
import type { SessionCodec, SessionData } from '../codec/types.js';
import { messages, type ApplyReply, type LocateReply } from '../codec/messages.js';
import { ClusterRequestError, SessionUnavailableError, StaleOwnerError } from '../errors.js';
import { systemClock, type Clock } from './clock.js';
import { compareHeld, dropIfOutlived, isExpiryTrace } from './copies.js';
import { FullMembers, type Capacity } from './capacity.js';
import { Isolation } from './isolation.js';
import { KeyLock } from './key-lock.js';
import { MSG } from './message-types.js';
import { SchemaSync } from './schema-sync.js';
import { SessionTable, type SessionEntry } from './session-table.js';
import type { Packed } from './packed-entries.js';
import { shortId } from './session-id.js';

/** What a manager needs from the layers below and the options. */
export interface ReplicatorOptions {
  channel: ClusterChannel;
  codec: SessionCodec;
  route: string;
  ack: 'sync' | 'async';
  ackTimeout: number;
  maxSessionBytes: number;
  reprotectRate: number;
  /** Sessions kept decoded on their primary besides their encoded copy (the most recently read). */
  decodedCache?: number;
  stateTransferTimeout: number;
  /** Sessions per page of a state transfer (delta mode). */
  stateTransferBatch: number;
  /** Membership's drop time: how long a silent member goes unnoticed. */
  dropTime: number;
  /** After start, how long discovery takes (a few heartbeats); default 4 × dropTime / 6. */
  discoveryMs?: number;
  /** Without `expectedMembers`, a member silent this long no longer counts toward the majority; default 60 s. */
  forgetAfter?: number;
  /**
   * How long an answer from another member counts toward this member's majority (`lease.ts`): cut off,
   * a member stops serving this long after its last answers, and its sessions are taken over a quarter
   * later. Lease pings go every third of it. Default: three quarters of dropTime (at least 750 ms): a
   * stall of the event loop that long is one the failure detector nearly takes for a death anyway.
   */
  leaseMs?: number;
  /** Backup mode: copies besides the primary's (default 1). */
  backups?: number;
  /** This member's failure domain (a zone, rack or host): copies go to distinct zones first. */
  zone?: string;
  /** The cluster's size: a member serves only while it sees a strict majority of it. */
  expectedMembers?: number;
  logger: Logger;
  /** Time and timers; the system clock unless a simulation gives its own. */
  clock?: Clock;
}

/** What the live members hold of one session. */
export interface Survey {
  replies: { m: MemberInfo; r: LocateReply }[];
  /** Live members that did not answer (a member removed meanwhile is not counted). */
  failed: number;
  /**
   * Members removed for good while they were asked: their answer is missing, and the survey waited for
   * it (a silent member is removed only after its direct check), so the others' answers may be old.
   */
  gone: number;
  /**
   * Routes some answering member (or this one) has a running lease promise to: they may be serving
   * (across a partition that does not cut everyone alike), so their sessions are not taken over yet.
   * The value: milliseconds the longest of those promises still runs.
   */
  promised: ReadonlyMap<string, number>;
}

/** A survey's answers in one line for the logs: `route:P|B|X|E|M|-@epoch/owner v version` (E: expired there, M: moved on). */
export function describeReplies(replies: Survey['replies']): string {
  const kind = (r: LocateReply): string => (r.found ? (r.primary ? 'P' : 'B') : r.removed ? 'X' : isExpiryTrace(r) ? 'E' : r.owner !== '' ? 'M' : '-');
  return replies.map((x) => `${x.m.route}:${kind(x.r)}@${x.r.epoch}/${x.r.owner}v${x.r.version}`).join(' ');
}

/** A session as the store reads it. */
export interface SessionRead {
  /** Decoded for this read: the caller's own objects. */
  values: SessionData;
  /** What was read, encoded (never changes): the diff of a later write compares against it. */
  snapshot: Packed;
  expire: number;
  maxAge: number | 'session';
}

/** Replication counters for `/cluster/metrics`. */
export interface ReplicationMetrics {
  writes: number;
  writesRefused: number;
  replicationFailures: number;
  takeovers: number;
  takeoverMisses: number;
  reprotected: number;
  staleWritesRefused: number;
  ackLatencyMs: { sum: number; count: number };
  expired: number;
  /** Requests answered 503: the session could not be told present or absent right now. */
  unavailable: number;
}

/** The ground every replication layer of a member stands on; `CopyHolder` builds on it. */
export abstract class MemberCore {
  abstract readonly mode: 'backup' | 'delta';
  readonly table: SessionTable;
  protected readonly channel: ClusterChannel;
  protected readonly codec: SessionCodec;
  protected readonly route: string;
  protected readonly log: Logger;
  protected readonly options: ReplicatorOptions;
  protected readonly clock: Clock;
  protected readonly locks: KeyLock;
  protected readonly isolation: Isolation;
  protected readonly schemas: SchemaSync;
  protected readonly counters: ReplicationMetrics = {
    writes: 0,
    writesRefused: 0,
    replicationFailures: 0,
    takeovers: 0,
    takeoverMisses: 0,
    reprotected: 0,
    staleWritesRefused: 0,
    ackLatencyMs: { sum: 0, count: 0 },
    expired: 0,
    unavailable: 0,
  };
  /** This member's capacity (`capacity.ts`), when the cluster set one: bounds new sessions and copies. */
  capacity: Capacity | undefined;
  /** Members that refused a copy for capacity a moment ago: no new copy goes to them meanwhile. */
  readonly fullMembers: FullMembers;
  /** Routes that announced a graceful leave: never chosen for a new copy. */
  protected readonly leaving = new Set<string>();
  protected stopping = false;

  constructor(options: ReplicatorOptions) {
    this.options = options;
    this.channel = this.#leasing(options.channel);
    this.codec = options.codec;
    this.route = options.route;
    this.clock = options.clock ?? systemClock;
    this.locks = new KeyLock({
      clock: this.clock,
      busy: (base, why) => this.unavailable(base, `too busy (${why})`),
    });
    this.table = new SessionTable(this.clock);
    this.fullMembers = new FullMembers(this.clock);
    this.log = options.logger.child({ component: 'replication' });
    this.isolation = new Isolation({
      self: options.route,
      clock: this.clock,
      dropTime: options.dropTime,
      forgetAfter: options.forgetAfter ?? 60_000,
      discoveryMs: options.discoveryMs ?? Math.round((options.dropTime * 2) / 3),
      leaseMs: options.leaseMs ?? Math.max(750, Math.round((options.dropTime * 3) / 4)),
      ...(options.expectedMembers !== undefined ? { expectedMembers: options.expectedMembers } : {}),
    });
    this.schemas = new SchemaSync(options.channel, options.codec, this.log, options.ackTimeout);
  }

  /**
   * The channel as this layer uses it: every request that gets an answer counts toward this member's
   * lease, and every request that arrives renews this member's promise to its sender (`lease.ts`).
   */
  #leasing(channel: ClusterChannel): ClusterChannel {
    const routeOf = (id: string): string | undefined => channel.members().find((m) => m.id === id)?.route;
    const request: ClusterChannel['request'] = async (memberId, type, body, opts) => {
      const route = routeOf(memberId);
      const sentAt = this.clock.monotonic();
      if (route !== undefined) this.isolation.sent(route);
      try {
        const reply = await channel.request(memberId, type, body, opts);
        if (route !== undefined) this.isolation.acked(route, sentAt);
        return reply;
      } catch (err) {
        // Its handler ran and threw (or it has none): it answered, and promised.
        if (route !== undefined && err instanceof ClusterRequestError && err.code === 'ERR_REMOTE') this.isolation.acked(route, sentAt);
        throw err;
      }
    };
    const handle: ClusterChannel['handle'] = (type, handler) =>
      channel.handle(type, (from, body) => {
        this.isolation.heard(from.route);
        return handler(from, body);
      });
    return new Proxy(channel, {
      get(target, prop) {
        if (prop === 'request') return request;
        if (prop === 'handle') return handle;
        // The channel itself as `this`: its getters and methods read its private fields.
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /**
   * Why asking every live member for a user's sessions could miss one now (undefined: it cannot). A
   * session acknowledged has its copies on members that were live then (all of them in delta mode,
   * `backups` + 1 in backup mode); it escapes a scan only when every one of them is silent now.
   */
  scanDoubt(): string | undefined {
    if (!this.isolation.hasQuorum()) return 'this member does not see a majority of the cluster';
    const missing = this.isolation.unreachable();
    const copies = this.mode === 'delta' ? this.isolation.size() : (this.options.backups ?? 1) + 1;
    if (missing >= copies) return `${missing} members of the cluster cannot be asked now, and a session's ${copies} copies may all be on them`;
    return undefined;
  }

  /** The majority this member serves by (the status page's `majority`). */
  majority(): { size: number; expected: boolean; answering: string[]; holds: boolean } {
    return { size: this.isolation.size(), expected: this.options.expectedMembers !== undefined, answering: this.isolation.answering(), holds: this.isolation.hasQuorum() };
  }

  /** Whether this member serves `base` now. */
  isPrimary(base: string): boolean {
    const e = this.table.get(base);
    return e !== undefined && e.role === 'primary' && e.owner === this.route && e.unverified !== true;
  }

  /** Routes of the live members, self included, minus those leaving. */
  protected liveRoutes(): string[] {
    const routes = [this.route];
    for (const m of this.channel.members()) if (!this.leaving.has(m.route)) routes.push(m.route);
    return routes;
  }

  protected memberByRoute(route: string): MemberInfo | undefined {
    return this.channel.members().find((m) => m.route === route);
  }

  protected unavailable(base: string, why: string, cause?: unknown): SessionUnavailableError {
    this.counters.unavailable++;
    return new SessionUnavailableError(`session ${shortId(base)}…: ${why}; retry`, { cause });
  }

  /**
   * Whether `owner` (a route named by a copy, not a live member here) might still be serving: it went
   * silent a moment ago, or this member has not finished discovering the cluster.
   */
  protected ownerMayServe(owner: string): boolean {
    return owner !== this.route && this.isolation.mayServe(owner);
  }

  /**
   * A takeover found the session's owner gone but perhaps still serving (a promise of ours or of
   * another member runs, or this member just started): waits until that must be over, when it is soon
   * (a killed member's sessions are released about a lease after its last answer), and resolves true
   * so the caller asks again; false when it is not soon (503 then).
   */
  protected async awaitRelease(owner: string, promised: ReadonlyMap<string, number>): Promise<boolean> {
    const wait = Math.max(this.isolation.releaseIn(owner), promised.get(owner) ?? 0);
    if (!Number.isFinite(wait) || wait > 2 * this.isolation.leaseMs) return false;
    await this.sleep(wait + 10);
    return true;
  }

  /** Waits `ms` on the injected clock. */
  protected sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }

  /** Resolved at the next membership change. */
  #membershipChanged: { promise: Promise<void>; resolve: () => void } | undefined;

  /**
   * Waits for the verdict on a member that stopped answering: the next membership change (a killed
   * process is removed within milliseconds of its connection reset), or `maxMs` at most. Waiting the
   * whole `maxMs` made the first request after a crash the slowest of all.
   */
  protected waitForVerdict(maxMs: number): Promise<void> {
    if (this.#membershipChanged === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#membershipChanged = { promise, resolve };
    }
    const changed = this.#membershipChanged.promise;
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(resolve, maxMs);
      void changed.then(() => {
        this.clock.clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Resolves whoever waits for a verdict (`waitForVerdict`): membership changed. */
  protected noteMembershipChange(): void {
    const waiting = this.#membershipChanged;
    this.#membershipChanged = undefined;
    waiting?.resolve();
  }

  /**
   * A copy names its owner, and a member not admitted here is one this member may think dead: it would
   * later take the session past that owner while the owner still serves it. Writes wait for admission.
   */
  protected refuseUnadmitted(from: MemberInfo): void {
    const state = this.channel.stateOf(from.id);
    if (state !== 'alive' && state !== 'suspect') {
      throw new SessionUnavailableError(`member ${from.route} sent a session write before this member admitted it; retry once membership settles`);
    }
  }

  /**
   * A background check found a newer copy than `e` expired (here, or on a member whose clock runs ahead
   * of ours): the session moved on and has ended, and `e` lacks the writes after it. It is dropped,
   * keeping the trace; true when it was.
   */
  protected dropOutlived(base: string, replies: Survey['replies'], e: SessionEntry): boolean {
    const x = dropIfOutlived(this.table, base, replies.map((r) => r.r), e);
    if (x === undefined) return false;
    this.log.info({ session: shortId(base), held: `${e.epoch}/${e.owner}v${e.version}`, expired: `${x.epoch}/${x.owner}v${x.version}` }, 'a newer copy of this session expired elsewhere: the older copy held here is dropped');
    return true;
  }

  /** The newest destruction of `base` known here or in `replies`, if any. */
  protected newestRemoval(base: string, replies: Survey['replies']): { epoch: number; owner: string } | undefined {
    const tomb = this.table.tombstone(base);
    const known = [...replies.filter((x) => x.r.removed).map((x) => x.r), ...(tomb?.kind === 'removed' ? [tomb] : [])];
    return known.sort((a, b) => compareHeld({ ...b, version: 0 }, { ...a, version: 0 }))[0];
  }

  /** Asks every live member what it holds of `bases` (one request per member), and whom it promised. */
  protected async survey(bases: string[]): Promise<Map<string, Survey>> {
    const promised = new Map<string, number>();
    const note = (list: { route: string; ms: number }[]) => {
      for (const p of list) promised.set(p.route, Math.max(promised.get(p.route) ?? 0, p.ms));
    };
    note(this.isolation.promises());
    const out = new Map<string, Survey>(bases.map((b) => [b, { replies: [], failed: 0, gone: 0, promised }]));
    const body = messages.audit.encode({ bases });
    const asked = this.channel.members();
    const ask = async (m: MemberInfo): Promise<LocateReply[]> => {
      try {
        const reply = messages.surveyReply.decode(await this.channel.request(m.id, MSG.survey, body, { timeoutMs: this.options.ackTimeout }));
        note(reply.promised);
        return reply.items;
      } catch (err) {
        // A member of an older release: what it holds, without promises (it makes none).
        if (!(err instanceof ClusterRequestError && err.code === 'ERR_REMOTE' && err.remote?.code === 'ERR_NO_HANDLER')) throw err;
        return messages.auditReply.decode(await this.channel.request(m.id, MSG.audit, body, { timeoutMs: this.options.ackTimeout })).items;
      }
    };
    await Promise.all(
      asked.map(async (m) => {
        try {
          (await ask(m)).forEach((r, i) => out.get(bases[i])?.replies.push({ m, r }));
        } catch (err) {
          // Gone for good is no answer needed; gone silent a moment ago may be serving across a partition.
          if (err instanceof ClusterRequestError && err.code === 'ERR_MEMBER_GONE' && this.isolation.ownerReleased(m.route)) {
            for (const s of out.values()) s.gone++;
            return;
          }
          for (const s of out.values()) s.failed++;
        }
      }),
    );
    // A member admitted (or admitted again) while we asked was not asked: it may hold the session, so
    // the survey does not speak for every live member.
    const unasked = this.channel.members().filter((m) => !asked.includes(m)).length;
    if (unasked > 0) for (const s of out.values()) s.failed += unasked;
    return out;
  }

  /** A copy holder named a newer owner of `e`: let the session go (delta mode keeps its copy). */
  protected lostTo(e: SessionEntry, owner: string, epoch: number): void {
    this.table.moved(e.base, epoch, owner);
  }

  /** Sends a message whose reply is an `ApplyReply`. */
  protected async requestApply(member: MemberInfo, type: string, body: Buffer): Promise<ApplyReply> {
    return messages.applyReply.decode(await this.channel.request(member.id, type, body, { timeoutMs: this.options.ackTimeout }));
  }

  /** A holder's STALE answer as an error carrying the newer owner. */
  protected staleError(base: string, reply: ApplyReply): StaleOwnerError {
    return new StaleOwnerError(`session ${shortId(base)}…: owned by ${reply.owner} at epoch ${reply.epoch}; this member's write was refused`, reply);
  }

  /** Counters for `/cluster/metrics`. */
  metrics(): ReplicationMetrics {
    return { ...this.counters, ackLatencyMs: { ...this.counters.ackLatencyMs } };
  }
}
