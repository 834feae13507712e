/** Number and code formatting for the README's generated tables. */

// results.json is read back as untyped JSON; every field access tolerates absence.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

/** A figure as the tables show it: thousands grouped, `digits` decimals below 1,000, `n/a` when absent. */
export const fmt = (x: unknown, digits = 2): string => {
  if (typeof x !== 'number' || !Number.isFinite(x)) return 'n/a';
  return x >= 1000 ? Math.round(x).toLocaleString('en-US') : String(Math.round(x * 10 ** digits) / 10 ** digits);
};

export const code = (s: unknown) => (typeof s === 'string' ? `\`${s}\`` : 'n/a');
