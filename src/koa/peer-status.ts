/**
 * Every member's session counts and write counters, asked of each live member over the cluster
 * channel, so that one member's `/cluster/status?peers=1` shows the whole cluster: the status page
 * then reads the same picture whichever member a round-robin balancer sends its poll to. Read-only:
 * the message changes nothing on the member that answers it.
 */
import { z } from 'zod';
import type { ClusterChannel } from '../cluster/types.js';
import type { HistoryBucket } from './cluster-watch.js';
import type { CapacityStatus } from '../replication/capacity.js';

/** A member's fill level and what its capacity refused and evicted, as the status page shows them. */
export interface CapacityCounts {
  held: number;
  maxSessions: number;
  plannedLevel: number;
  /** `held / maxSessions`, 0 to 1. */
  fill: number;
  /** New sessions refused, for any reason (full, overloaded, a full copy holder). */
  refused: number;
  /** Copies refused at `maxSessions`. */
  copiesRefused: number;
  evicted: number;
  overloaded: boolean;
}

/** The counts a member reports of its capacity. */
export function capacityCounts(c: CapacityStatus): CapacityCounts {
  return {
    held: c.held,
    maxSessions: c.maxSessions,
    plannedLevel: c.plannedLevel,
    fill: c.fill,
    refused: c.refusedFull + c.refusedOverloaded + c.refusedCopyHolderFull,
    copiesRefused: c.copiesRefused,
    evicted: c.evicted,
    overloaded: c.overloaded,
  };
}

/**
 * The message type. WARNING: part of the protocol, never rename it. A member of an older version has
 * no handler for it and answers `ERR_NO_HANDLER`: the page then shows that member without counts.
 */
export const STATUS_COUNTS = 'status.counts';

/** Peers answer within this, or are shown without counts: the page polls again in a few seconds. */
const PEER_TIMEOUT_MS = 1000;

/** One member's counts, as it reports them. */
export interface MemberCounts {
  id: string;
  route: string;
  sessions: { primary: number; backup: number; unprotected: number; underReplicated: number };
  writes: number;
  takeovers: number;
  reprotected: number;
  ackLatencyMs: { sum: number; count: number };
  /** Fill level, refusals and evictions; absent from a member of an older release. */
  capacity?: CapacityCounts;
  /** The last ten minutes in 5 s intervals; only when asked for (the page's first poll). */
  history?: HistoryBucket[];
}

/** A member's row in `peers`: its counts, or why they are missing. */
export type PeerCounts = MemberCounts | { id: string; route: string; error: string };

const count = z.number().finite().nonnegative();
const countsSchema = z.object({
  id: z.string().max(64),
  route: z.string().max(32),
  // underReplicated: absent from a member of an older release, which keeps two copies: as unprotected.
  sessions: z
    .object({ primary: count, backup: count, unprotected: count, underReplicated: count.optional() })
    .transform((s) => ({ ...s, underReplicated: s.underReplicated ?? s.unprotected })),
  writes: count,
  takeovers: count,
  reprotected: count,
  ackLatencyMs: z.object({ sum: count, count }),
  capacity: z
    .object({ held: count, maxSessions: count, plannedLevel: count, fill: count, refused: count, copiesRefused: count, evicted: count, overloaded: z.boolean() })
    .optional(),
  history: z.array(z.object({ at: count, writes: count, takeovers: count, ackMs: count, acks: count })).max(1000).optional(),
});

/** The request: an empty body (older pages) or `{"history":true}`. */
const askSchema = z.object({ history: z.boolean().optional() });

/** What this member reports; with the history when `history` is true. */
export type LocalCounts = (history: boolean) => MemberCounts;

/** Answers other members' `status.counts` requests with `local()`. */
export function answerCounts(channel: ClusterChannel, local: LocalCounts): void {
  channel.handle(STATUS_COUNTS, (_from, body) => {
    let history = false;
    try {
      history = body.length > 0 && askSchema.parse(JSON.parse(body.toString('utf8'))).history === true;
    } catch {
      // An unreadable question gets the plain counts.
    }
    return Buffer.from(JSON.stringify(local(history)));
  });
}

/** This member's counts and every live member's, in the channel's order; never rejects. */
export async function gatherCounts(channel: ClusterChannel, local: LocalCounts, history = false): Promise<PeerCounts[]> {
  const ask = Buffer.from(JSON.stringify({ history }));
  const others = await Promise.all(
    channel.members().map(async (m): Promise<PeerCounts> => {
      try {
        const reply = await channel.request(m.id, STATUS_COUNTS, ask, { timeoutMs: PEER_TIMEOUT_MS });
        const parsed = countsSchema.safeParse(JSON.parse(reply.toString('utf8')));
        // The route and id come from the channel, which authenticated the member, not from its reply.
        return parsed.success ? { ...parsed.data, id: m.id, route: m.route } : { id: m.id, route: m.route, error: 'malformed reply' };
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        return { id: m.id, route: m.route, error: typeof code === 'string' ? code : 'no answer' };
      }
    }),
  );
  return [local(history), ...others];
}

/**
 * Gathers at most once per `everyMs` (per kind: with or without history), whatever the number of
 * pages polling: requests to a status route cannot make the members chatter among themselves.
 */
export class CountsGatherer {
  readonly #last = new Map<boolean, { at: number; counts: Promise<PeerCounts[]> }>();

  constructor(
    private readonly channel: ClusterChannel,
    private readonly local: LocalCounts,
    private readonly everyMs = 1000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  gather(history: boolean): Promise<PeerCounts[]> {
    const last = this.#last.get(history);
    if (last !== undefined && this.now() - last.at < this.everyMs) return last.counts;
    const counts = gatherCounts(this.channel, this.local, history);
    this.#last.set(history, { at: this.now(), counts });
    return counts;
  }
}
