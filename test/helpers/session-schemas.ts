/**
 * Two versions of an app's session schema (option `sessionSchema`), for the rolling-upgrade test:
 * app-member.ts picks one by `SESSION_SCHEMA=v1|v2` (unset: no sessionSchema).
 *
 * v2 is v1 minus `promo` plus `theme` (a string with the default "light"), so Avro resolution says:
 * a v1 session read on v2 has no `promo` and `theme: "light"`; a v2 session read on v1 has no `theme`.
 */

const user = {
  type: 'record',
  name: 'User',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'name', type: 'string' },
  ],
};

/** Version 1 of the app's session. */
export const sessionSchemaV1 = {
  type: 'record',
  name: 'Session',
  namespace: 'com.example.shop',
  fields: [
    { name: 'user', type: user },
    { name: 'cart', type: { type: 'array', items: 'string' } },
    { name: 'promo', type: 'string' },
  ],
} as const;

/** Version 2: `promo` removed, `theme` added with a default. */
export const sessionSchemaV2 = {
  type: 'record',
  name: 'Session',
  namespace: 'com.example.shop',
  fields: [
    { name: 'user', type: user },
    { name: 'cart', type: { type: 'array', items: 'string' } },
    { name: 'theme', type: 'string', default: 'light' },
  ],
} as const;

export const sessionSchemas = { v1: sessionSchemaV1, v2: sessionSchemaV2 } as const;

/** The schema named by `SESSION_SCHEMA` (`v1`, `v2`, or unset/empty for none). */
export function sessionSchemaFor(name: string | undefined): Record<string, unknown> | undefined {
  if (name === undefined || name === '') return undefined;
  if (name === 'v1' || name === 'v2') return sessionSchemas[name];
  throw new Error(`SESSION_SCHEMA: expected v1, v2 or nothing, got ${JSON.stringify(name)}`);
}
