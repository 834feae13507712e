/**
 * The seed's lesson in code: a value that cannot be replicated is refused where it is stored, with
 * the path that leads to it. `Walk` carries that path (and the objects on it, to catch cycles) through
 * the encoding walk; `refusalOf` says why a value is refused, in words a user can act on.
 */
import { SessionUnserializableError } from '../errors.js';

/** One step of a path: an object key or an array index. */
export type Segment = string | number;

/**
 * How deep a session value may nest. JSON itself (and so koa-session) copes with far more, but no
 * session needs it, and a bound keeps every walk (ours and avsc's) clear of the stack limit.
 */
export const MAX_DEPTH = 500;

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `session.user.roles[2]`, `session["odd key"].x`: how paths appear in messages. */
export function formatPath(segments: readonly Segment[], root = 'session'): string {
  let out = root;
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (IDENTIFIER.test(s)) out += `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/** The path and the containers being walked; makes the errors that name where a value is. */
export class Walk {
  /** Path from the session to the value being looked at. */
  readonly segments: Segment[] = [];
  /** Containers on the path, with the path length at which each was entered (to name a cycle's target). */
  readonly #open = new Map<object, number>();
  readonly #stack: object[] = [];

  /** Steps into a container; refuses a cycle or a value nested deeper than `MAX_DEPTH`. */
  enter(container: object): void {
    const at = this.#open.get(container);
    if (at !== undefined) throw this.refuse(`cycle (refers back to ${formatPath(this.segments.slice(0, at))})`);
    if (this.#stack.length >= MAX_DEPTH) {
      throw this.refuse(`nested more than ${MAX_DEPTH} levels deep; store a flatter structure`);
    }
    this.#open.set(container, this.segments.length);
    this.#stack.push(container);
  }

  /** Steps out of the container entered last. */
  leave(): void {
    const c = this.#stack.pop();
    if (c !== undefined) this.#open.delete(c);
  }

  /** Where the walk is, to come back after a failed attempt (a union branch that did not fit). */
  mark(): { segments: number; stack: number } {
    return { segments: this.segments.length, stack: this.#stack.length };
  }

  reset(mark: { segments: number; stack: number }): void {
    this.segments.length = mark.segments;
    while (this.#stack.length > mark.stack) this.leave();
  }

  /** The error for the current path: `session.a.b: <reason>`. */
  refuse(reason: string): SessionUnserializableError {
    const path = formatPath(this.segments);
    return new SessionUnserializableError(path, `${path}: ${reason}`);
  }
}

/** Name of an object's class, as far as it can be told. */
export function classNameOf(value: object): string | undefined {
  const proto = Object.getPrototypeOf(value) as { constructor?: unknown } | null;
  const ctor = proto?.constructor;
  // Only a class whose own prototype this is: `Object.create({})` inherits `Object` but is no instance of a class.
  if (typeof ctor !== 'function' || ctor.name === '' || (ctor as { prototype?: unknown }).prototype !== proto) return undefined;
  return ctor.name;
}

const HIDDEN_BY_JSON = '(JSON.stringify hides its content, so koa-session would not notice changes)';

/**
 * Why `value` cannot be stored, for values that are refused whatever the schema says: functions,
 * symbols, bigints, non-finite numbers, and objects other than plain objects, arrays, `Date`,
 * `Buffer`, `Uint8Array` and registered class instances (the caller rules those out first).
 */
export function refusalOf(value: unknown): string {
  switch (typeof value) {
    case 'function':
      return `function ${value.name || '(anonymous)'} is not serializable; store plain data`;
    case 'symbol':
      return `symbol ${String(value)} is not serializable; store a string`;
    case 'bigint':
      return 'bigint is not serializable (JSON.stringify throws on it); store a number or a string';
    case 'undefined':
      return 'undefined is not serializable here; store null';
    case 'number':
      return `${String(value)} is not serializable; store a finite number or null`;
    case 'object':
      break;
    default:
      return `${typeof value} is not serializable; store plain data`;
  }
  if (value === null) return 'null is not allowed here';
  if (value instanceof Map || value instanceof WeakMap) {
    return `${value instanceof Map ? 'Map' : 'WeakMap'} is not serializable ${HIDDEN_BY_JSON}; store an array or plain object`;
  }
  if (value instanceof Set || value instanceof WeakSet) {
    return `${value instanceof Set ? 'Set' : 'WeakSet'} is not serializable ${HIDDEN_BY_JSON}; store an array`;
  }
  if (value instanceof Date) return 'invalid Date is not serializable; store a valid Date or null';
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) {
    return `${classNameOf(value) ?? 'binary view'} is not serializable; store a Buffer, a Uint8Array or an array of numbers`;
  }
  if (value instanceof Promise) return 'Promise is not serializable; await it and store the result';
  if (value instanceof String || value instanceof Number || value instanceof Boolean) {
    return `${classNameOf(value) ?? 'boxed'} object is not serializable; store the primitive value`;
  }
  const name = classNameOf(value);
  if (name === undefined) {
    return 'object with a custom prototype is not serializable; store a plain object, or register its class with types: [...]';
  }
  return `instance of class ${name} is not serializable; register it with types: [{ name, type: ${name}, fields: [...] }] or store plain data`;
}

/** Short description of a value, for "expected X, got Y" messages. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing (undefined)';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'number':
      return `the number ${value}`;
    case 'boolean':
      return 'a boolean';
    case 'object':
      break;
    default:
      return `a ${typeof value}`;
  }
  if (Array.isArray(value)) return 'an array';
  if (Buffer.isBuffer(value)) return 'a Buffer';
  if (value instanceof Uint8Array) return 'a Uint8Array';
  if (value instanceof Date) return 'a Date';
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) return 'an object';
  return `an instance of ${classNameOf(value) ?? 'an anonymous class'}`;
}

/**
 * `String.prototype.isWellFormed` (Node 20; not yet in TypeScript's ES2023 lib). UTF-8, and so Avro,
 * cannot carry a lone surrogate: such strings are stored another way or refused, never mangled.
 */
export const isWellFormed: (s: string) => boolean = (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
