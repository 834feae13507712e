/**
 * Pure helpers over session values: deep equality and deep copy that understand exactly the values
 * the codec accepts (plain data, arrays, Date, Buffer, Uint8Array, registered class instances).
 */

/**
 * Sets an own, enumerable property. Plain assignment of the key `__proto__` would change the object's
 * prototype instead (JSON.parse makes such own keys, and the codec round-trips them).
 */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  else target[key] = value;
}

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** Deep equality of two session values; class instances are equal when prototypes and fields are. */
export function valuesEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b);
  }
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Date) return a.getTime() === (b as Date).getTime();
  if (isBytes(a)) return Buffer.compare(a, b as Uint8Array) === 0;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!valuesEqual(a[i], bb[i])) return false;
    return true;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!valuesEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/**
 * Deep copy, keeping prototypes (so registered class instances stay instances). The table's values
 * are never handed to a request: koa-session copies top-level keys only, and an application that
 * mutates `ctx.session.cart.items` in place must not change the stored copy before the write is
 * validated and acknowledged.
 */
export function cloneValue<T>(v: T): T {
  if (typeof v !== 'object' || v === null) return v;
  if (v instanceof Date) return new Date(v.getTime()) as T;
  if (Buffer.isBuffer(v)) return Buffer.from(v) as T;
  if (isBytes(v)) return new Uint8Array(v) as T;
  if (Array.isArray(v)) return v.map((x: unknown) => cloneValue(x)) as T;
  const out = Object.create(Object.getPrototypeOf(v) as object | null) as Record<string, unknown>;
  for (const k of Object.keys(v)) setOwn(out, k, cloneValue((v as Record<string, unknown>)[k]));
  return out as T;
}

/** A deep copy of a session's values (top-level keys kept as own keys, `__proto__` included). */
export function copySession(values: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(values)) setOwn(out, k, cloneValue(values[k]));
  return out;
}

/** The top-level change between what a request read and what it wrote. */
export interface SessionDelta {
  /** Keys whose value is new or different. */
  set: Record<string, unknown>;
  /** Keys the request read and no longer has. */
  removed: string[];
}

/**
 * Compares what a request read with what it hands back to the store: only keys that changed or
 * disappeared are replicated and applied onto the current copy, so two concurrent requests that
 * change different keys both survive.
 */
export function diffSession(read: Readonly<Record<string, unknown>>, written: Readonly<Record<string, unknown>>): SessionDelta {
  const set: Record<string, unknown> = {};
  const removed: string[] = [];
  for (const k of Object.keys(written)) {
    const w = written[k];
    if (w === undefined) continue; // JSON (and so koa-session's change detection) drops undefined
    if (!Object.prototype.hasOwnProperty.call(read, k) || !valuesEqual(read[k], w)) setOwn(set, k, w);
  }
  for (const k of Object.keys(read)) {
    if (!Object.prototype.hasOwnProperty.call(written, k) || written[k] === undefined) removed.push(k);
  }
  return { set, removed };
}
