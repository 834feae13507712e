/**
 * A fixed-size ring of the newest cluster events, for the status page: the oldest is overwritten,
 * so memory stays bounded however busy the cluster is. Each event gets a sequence number that never
 * repeats in this process, so a page polling members in turn can merge and de-duplicate them.
 */

/** What happened, as the status page groups it. */
export type ClusterEventType =
  | 'joined'
  | 'suspected'
  | 'cleared'
  | 'removed'
  | 'takeover'
  | 'reprotected'
  | 'unprotected'
  | 'frames-refused'
  | 'heartbeats-dropped';

/** One event, as `/cluster/status` lists it. */
export interface ClusterEvent {
  /** Increases by one per event in this process (a restarted member starts again at 1). */
  seq: number;
  /** Epoch ms. */
  at: number;
  type: ClusterEventType;
  /** The member the event is about, if any (a route). */
  member?: string;
  /** A short human-readable line (counts, reasons). */
  detail: string;
}

export class EventRing {
  readonly #slots: (ClusterEvent | undefined)[];
  #next = 0;
  #seq = 0;

  constructor(readonly capacity = 50) {
    this.#slots = new Array<ClusterEvent | undefined>(capacity).fill(undefined);
  }

  /** Records an event, overwriting the oldest when full. */
  push(event: Omit<ClusterEvent, 'seq'>): ClusterEvent {
    const e = { seq: ++this.#seq, ...event };
    this.#slots[this.#next] = e;
    this.#next = (this.#next + 1) % this.capacity;
    return e;
  }

  /** The events held, oldest first (copies: readers cannot change the ring). */
  list(): ClusterEvent[] {
    const out: ClusterEvent[] = [];
    for (let i = 0; i < this.capacity; i++) {
      const e = this.#slots[(this.#next + i) % this.capacity];
      if (e !== undefined) out.push({ ...e });
    }
    return out;
  }
}
