/**
 * Shared by the codec tests: fast-check arbitraries of session values, the classes registered in
 * them, and the fetch-and-retry a member performs on an unknown writer schema.
 */
import fc from 'fast-check';
import type { SessionCodec, SessionData } from '../../src/codec/index.js';
import { UnknownSchemaError } from '../../src/errors.js';
import type { RegisteredType } from '../../src/options.js';

/** A class registered by field list. */
export class Point {
  x: unknown;
  y: unknown;
  label?: string;
  constructor(x: unknown, y: unknown) {
    this.x = x;
    this.y = y;
  }
}

/** A class registered with its own Avro record schema. */
export class Money {
  constructor(
    readonly amount: number,
    readonly currency: string,
  ) {}
  toString(): string {
    return `${this.amount} ${this.currency}`;
  }
}

export const registered: RegisteredType[] = [
  { name: 'Point', type: Point, fields: ['x', 'y', 'label'] },
  {
    name: 'Money',
    type: Money,
    schema: {
      type: 'record',
      fields: [
        { name: 'amount', type: 'long' },
        { name: 'currency', type: 'string' },
      ],
    },
  },
];

/** Keys as applications write them, plus the awkward ones (any string must round-trip). */
export const key = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }) },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', '', 'a.b', '0', '-1', 'hasOwnProperty') },
);

const leaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(9.99, 0.1, -0, 1e21, 5e-324, 0.30000000000000004, Number.MAX_SAFE_INTEGER + 2),
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 6 }), // lone surrogates included
  fc.date({ noInvalidDate: true }),
  fc.uint8Array({ maxLength: 12 }).map((u) => Buffer.from(u)),
  fc.uint8Array({ maxLength: 12 }),
);

/** Any value a session may hold, registered classes included. */
export const sessionValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown; array: unknown[]; object: object; point: Point; money: Money }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object'), tie('point'), tie('money')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(key, tie('value'), { maxKeys: 4 }),
  point: fc
    .tuple(tie('value'), tie('value'), fc.option(fc.string(), { nil: undefined }))
    .map(([x, y, label]) => Object.assign(new Point(x, y), label === undefined ? {} : { label })),
  money: fc.tuple(fc.integer(), fc.constantFrom('EUR', 'USD', 'KRW')).map(([a, c]) => new Money(a, c)),
})).value;

/** A session: top-level keys to values. */
export const session: fc.Arbitrary<SessionData> = fc.dictionary(key, sessionValue, { maxKeys: 5, noNullPrototype: true });

/**
 * Decodes on `reader` what `writer` encoded, the way a member does: on an unknown writer schema,
 * fetch its JSON from the writer, register it, retry once.
 */
export function decodeFrom<T>(reader: SessionCodec, writer: SessionCodec, decode: () => T): { value: T; fetched: number } {
  try {
    return { value: decode(), fetched: 0 };
  } catch (err) {
    if (!(err instanceof UnknownSchemaError)) throw err;
    const json = writer.schemaFor(err.fingerprint);
    if (json === undefined) throw new Error(`writer does not know its own schema ${err.fingerprint}`);
    if (reader.addSchema(json) !== err.fingerprint) throw new Error('addSchema returned another fingerprint');
    return { value: decode(), fetched: 1 };
  }
}
