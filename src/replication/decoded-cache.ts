/**
 * The decoded values of the sessions a primary read most recently, bounded by count. Every session is
 * kept encoded (`packed-entries.ts`); decoding one costs ten times the copy a request needs, so the
 * hot ones keep their decoded form too. An entry is valid only for the packed bytes it was decoded
 * from: a session written since holds other bytes and simply misses. Pure (no I/O).
 */
import type { SessionData } from '../codec/types.js';
import type { Packed } from './packed-entries.js';

export class DecodedCache {
  readonly #max: number;
  /** Insertion order is recency: a hit moves to the end, the first is the least recently used. */
  readonly #items = new Map<string, { packed: Packed; values: SessionData }>();

  /** @param max sessions kept decoded; 0 keeps none. */
  constructor(max: number) {
    this.#max = max;
  }

  /** The decoded values of `packed` for `base`, if cached (read-only: never hand them out). */
  get(base: string, packed: Packed): SessionData | undefined {
    const hit = this.#items.get(base);
    if (hit === undefined) return undefined;
    if (hit.packed !== packed) {
      this.#items.delete(base);
      return undefined;
    }
    this.#items.delete(base);
    this.#items.set(base, hit);
    return hit.values;
  }

  /** Keeps `values` as the decoded form of `packed` (the caller gives up every reference to them). */
  set(base: string, packed: Packed, values: SessionData): void {
    if (this.#max === 0) return;
    this.#items.delete(base);
    this.#items.set(base, { packed, values });
    if (this.#items.size > this.#max) this.#items.delete(this.#items.keys().next().value!);
  }

  /** Whether `base` is cached (for any version): a write keeps a cached session's values current. */
  has(base: string): boolean {
    return this.#items.has(base);
  }

  delete(base: string): void {
    this.#items.delete(base);
  }

  get size(): number {
    return this.#items.size;
  }
}
