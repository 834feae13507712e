/**
 * The destructions a member remembers (logout, regenerate, expiry of a session it destroyed): a
 * tombstone per session, which fences every older copy until no copy can still exist. A member of a
 * busy site keeps many (every logout leaves one on every member), so they are kept compact: in one
 * typed array, 32 bytes a slot (46 to 91 a tombstone as the table's fill goes from 0.7 to 0.35 between
 * doublings, about 65 on average), instead of a JavaScript object, a map entry and the base's string
 * (85 to 105: `npm run bench -- --only tombstones`). Pure: no I/O, no clock.
 *
 *   slot: | base, 18 bytes | used | - | epoch u32 | until, s u32 | owner u16 | - | (version f64) |
 *          0              18     19   20          24             28          30  32               40
 *
 * The version is kept only by a table made `{ versions: true }` (the traces of expired copies, which
 * fence older versions of one ownership too): 40 bytes a slot there.
 *
 * Bases of 24 characters (the 18 random bytes every member makes) go there, found by open addressing
 * on their first bytes (random already); any other base (an id made elsewhere) in a plain map.
 */

/** A remembered destruction. */
export interface Destruction {
  epoch: number;
  owner: string;
  /** Epoch ms until which it fences (rounded up to the second). */
  until: number;
  /** The version it fences up to (kept only by a table made with `versions`). */
  version?: number;
}

const SLOT = 32;
const VERSION = 32;
const KEY = 18;
const USED = 18;
const EPOCH = 20;
const UNTIL = 24;
const OWNER = 28;
const MAX_FILL = 0.7;

export class Tombstones {
  readonly #stride: number;
  readonly #versions: boolean;
  #slots: Buffer;
  #capacity: number;
  #size = 0;
  /** Bases that are not 24 characters of base64url. */
  readonly #other = new Map<string, Destruction>();
  /** Owner routes by index (a member keeps tombstones of a few routes). */
  readonly #routes: string[] = [];
  readonly #routeIndex = new Map<string, number>();
  readonly #scratch = Buffer.alloc(KEY);

  constructor(initialCapacity = 1024, options: { versions?: boolean } = {}) {
    this.#versions = options.versions === true;
    this.#stride = this.#versions ? SLOT + 8 : SLOT;
    this.#capacity = 1 << Math.ceil(Math.log2(Math.max(16, initialCapacity)));
    this.#slots = Buffer.alloc(this.#capacity * this.#stride);
  }

  get size(): number {
    return this.#size + this.#other.size;
  }

  /** Bytes held by the table itself (the bench's figure per tombstone divides this by `size`). */
  get bytes(): number {
    return this.#slots.length;
  }

  get(base: string): Destruction | undefined {
    const key = this.#key(base);
    if (key === undefined) return this.#other.get(base);
    const slot = this.#find(key);
    return slot < 0 ? undefined : this.#read(slot);
  }

  set(base: string, d: Destruction): void {
    const key = this.#key(base);
    if (key === undefined) {
      const { version, ...rest } = d;
      this.#other.set(base, this.#versions ? { ...rest, version: version ?? 0 } : rest);
      return;
    }
    let slot = this.#find(key);
    if (slot < 0) {
      if ((this.#size + 1) / this.#capacity > MAX_FILL) this.#grow();
      slot = this.#free(key);
      key.copy(this.#slots, slot * this.#stride);
      this.#slots[slot * this.#stride + USED] = 1;
      this.#size++;
    }
    this.#write(slot, d);
  }

  delete(base: string): boolean {
    const key = this.#key(base);
    if (key === undefined) return this.#other.delete(base);
    const slot = this.#find(key);
    if (slot < 0) return false;
    this.#remove(slot);
    return true;
  }

  /** Every tombstone (a snapshot: safe to change the table while going through it). */
  entries(): [string, Destruction][] {
    const out: [string, Destruction][] = [...this.#other].map(([b, d]) => [b, { ...d }]);
    for (let slot = 0; slot < this.#capacity; slot++) {
      if (this.#slots[slot * this.#stride + USED] === 1) out.push([this.#slots.toString('base64url', slot * this.#stride, slot * this.#stride + KEY), this.#read(slot)]);
    }
    return out;
  }

  /** Drops those whose `until` is past; returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const [b, d] of this.#other) {
      if (d.until > now) continue;
      this.#other.delete(b);
      n++;
    }
    for (let slot = 0; slot < this.#capacity; ) {
      if (this.#slots[slot * this.#stride + USED] === 1 && this.#slots.readUInt32LE(slot * this.#stride + UNTIL) * 1000 <= now) {
        this.#remove(slot); // the next slot may have shifted into this one: look at it again
        n++;
      } else slot++;
    }
    return n;
  }

  clear(): void {
    this.#slots.fill(0);
    this.#size = 0;
    this.#other.clear();
  }

  /** The 18 bytes of a 24-character base64url base, in a scratch buffer; undefined for any other. */
  #key(base: string): Buffer | undefined {
    if (base.length !== 24) return undefined;
    return this.#scratch.write(base, 'base64url') === KEY ? this.#scratch : undefined;
  }

  #home(key: Buffer, capacity = this.#capacity): number {
    return key.readUInt32LE(0) & (capacity - 1);
  }

  #find(key: Buffer): number {
    for (let slot = this.#home(key); ; slot = (slot + 1) & (this.#capacity - 1)) {
      const at = slot * this.#stride;
      if (this.#slots[at + USED] !== 1) return -1;
      if (this.#slots.compare(key, 0, KEY, at, at + KEY) === 0) return slot;
    }
  }

  #free(key: Buffer): number {
    let slot = this.#home(key);
    while (this.#slots[slot * this.#stride + USED] === 1) slot = (slot + 1) & (this.#capacity - 1);
    return slot;
  }

  #read(slot: number): Destruction {
    const at = slot * this.#stride;
    const d: Destruction = {
      epoch: this.#slots.readUInt32LE(at + EPOCH),
      until: this.#slots.readUInt32LE(at + UNTIL) * 1000,
      owner: this.#routes[this.#slots.readUInt16LE(at + OWNER)],
    };
    if (this.#versions) d.version = this.#slots.readDoubleLE(at + VERSION);
    return d;
  }

  #write(slot: number, d: Destruction): void {
    const at = slot * this.#stride;
    this.#slots.writeUInt32LE(Math.min(d.epoch, 0xffffffff), at + EPOCH);
    this.#slots.writeUInt32LE(Math.min(Math.ceil(d.until / 1000), 0xffffffff), at + UNTIL);
    this.#slots.writeUInt16LE(this.#route(d.owner), at + OWNER);
    if (this.#versions) this.#slots.writeDoubleLE(d.version ?? 0, at + VERSION);
  }

  #route(route: string): number {
    let i = this.#routeIndex.get(route);
    if (i === undefined) {
      i = this.#routes.length;
      // Routes are few (members, past and present); a bug that made thousands would wrap, not grow.
      if (i > 0xffff) throw new RangeError('more than 65536 routes own tombstones');
      this.#routes.push(route);
      this.#routeIndex.set(route, i);
    }
    return i;
  }

  /** Empties a slot, and moves later ones of its run back so that lookups still find them. */
  #remove(slot: number): void {
    const mask = this.#capacity - 1;
    this.#slots.fill(0, slot * this.#stride, slot * this.#stride + this.#stride);
    this.#size--;
    for (let hole = slot, next = (slot + 1) & mask; this.#slots[next * this.#stride + USED] === 1; next = (next + 1) & mask) {
      const home = this.#home(this.#slots.subarray(next * this.#stride, next * this.#stride + KEY));
      // The entry at `next` may fill the hole when its home is not cyclically within (hole, next].
      const between = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (between) continue;
      this.#slots.copy(this.#slots, hole * this.#stride, next * this.#stride, next * this.#stride + this.#stride);
      this.#slots.fill(0, next * this.#stride, next * this.#stride + this.#stride);
      hole = next;
    }
  }

  #grow(): void {
    const old = this.#slots;
    const oldCapacity = this.#capacity;
    this.#capacity *= 2;
    this.#slots = Buffer.alloc(this.#capacity * this.#stride);
    for (let slot = 0; slot < oldCapacity; slot++) {
      const at = slot * this.#stride;
      if (old[at + USED] !== 1) continue;
      const to = this.#free(old.subarray(at, at + KEY));
      old.copy(this.#slots, to * this.#stride, at, at + this.#stride);
    }
  }
}
