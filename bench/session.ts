/**
 * The session every bench variant stores: what a shop's login puts in a session (user, CSRF token,
 * a small cart) plus two keys the write route changes on every request (`views`, `lastSeen`).
 * Plain data only, so the same object goes into koa-redis (JSON), the memory store and the cluster.
 */

/** One session's data, as `POST /login?u=N` stores it. */
export interface BenchSession {
  user: { id: number; name: string; email: string; roles: string[] };
  csrf: string;
  cart: { sku: string; qty: number; price: number }[];
  views: number;
  lastSeen: number;
  [key: string]: unknown;
}

/** A deterministic session for user `n` (the CSRF token is fixed-length, as a real one is). */
export function sessionFor(n: number): BenchSession {
  return {
    user: { id: 100_000 + n, name: `user-${n}`, email: `user-${n}@example.com`, roles: ['customer', n % 10 === 0 ? 'staff' : 'member'] },
    csrf: Buffer.from(`csrf-token-${n}`.padEnd(24, '.')).toString('base64url'),
    cart: [
      { sku: `SKU-${String(n % 997).padStart(5, '0')}`, qty: 1, price: 1999 },
      { sku: `SKU-${String((n * 7) % 997).padStart(5, '0')}`, qty: 2, price: 499 },
    ],
    views: 0,
    lastSeen: 1_700_000_000_000 + n,
  };
}

/**
 * An Avro record schema for the whole session (the cluster's `sessionSchema` option). The library
 * makes every field optional itself (a presence marker per field), so the types here are plain.
 */
export const benchSessionSchema = {
  type: 'record',
  name: 'BenchSession',
  fields: [
    {
      name: 'user',
      type: {
        type: 'record',
        name: 'BenchUser',
        fields: [
          { name: 'id', type: 'int' },
          { name: 'name', type: 'string' },
          { name: 'email', type: 'string' },
          { name: 'roles', type: { type: 'array', items: 'string' } },
        ],
      },
    },
    { name: 'csrf', type: 'string' },
    {
      name: 'cart',
      type: {
        type: 'array',
        items: {
          type: 'record',
          name: 'CartItem',
          fields: [
            { name: 'sku', type: 'string' },
            { name: 'qty', type: 'int' },
            { name: 'price', type: 'int' },
          ],
        },
      },
    },
    { name: 'views', type: 'int' },
    { name: 'lastSeen', type: 'long' },
  ],
} as const;
