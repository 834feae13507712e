/**
 * Consistent hashing by rendezvous (highest random weight) hashing.
 *
 * Why rendezvous rather than a ring with virtual nodes: with N ≤ a few dozen members, scoring every
 * member per id is cheap (N multiply-xorshift rounds, no allocation), needs no ring to rebuild when
 * membership changes, balances to within a few percent without tuning a virtual-node count, and moves
 * exactly the ids whose top candidate changed (about 1/N) when one member joins or leaves.
 *
 * Pure: no I/O. Members are identified by route (stable across restarts), so a restarted member
 * gets the same share back.
 */

/** 64-bit FNV-1a over UTF-16 code units, as two 32-bit halves (BigInt-free for speed). */
function hash64(text: string): [number, number] {
  // FNV-1a 32 twice with different offsets, then mixed: fast and well spread for short ASCII keys.
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  return [a >>> 0, b >>> 0];
}

/** A 32-bit avalanche (murmur3 finaliser). */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Score of one (key, member) pair: a 53-bit number from both hashes, fully mixed. */
function score(key: [number, number], member: [number, number]): number {
  const hi = fmix32(key[0] ^ fmix32(member[0] + 0x9e3779b9));
  const lo = fmix32(key[1] ^ fmix32(member[1] ^ hi));
  return (hi & 0x1fffff) * 0x100000000 + lo;
}

const memberHashes = new Map<string, [number, number]>();
function memberHash(route: string): [number, number] {
  let h = memberHashes.get(route);
  if (h === undefined) {
    h = hash64(`member:${route}`);
    // Routes are few and stable; the cache is bounded to keep a misbehaving caller from growing it.
    if (memberHashes.size > 4096) memberHashes.clear();
    memberHashes.set(route, h);
  }
  return h;
}

/**
 * The members in preference order for `key` (a session id's base): the first is the most preferred.
 * Deterministic for the same key and member set, whatever order `members` is given in.
 */
export function owners(key: string, members: readonly string[]): string[] {
  const k = hash64(key);
  const scored = members.map((m) => ({ m, s: score(k, memberHash(m)) }));
  scored.sort((x, y) => y.s - x.s || (x.m < y.m ? -1 : x.m > y.m ? 1 : 0));
  return scored.map((x) => x.m);
}

/**
 * The backup of a session: the first member in `key`'s preference order that is not `primary`,
 * or `undefined` when `primary` is alone. `excluding` skips members that must not hold the copy
 * (e.g. one that is leaving).
 */
export function backupFor(
  key: string,
  primary: string,
  members: readonly string[],
  excluding: ReadonlySet<string> = new Set(),
): string | undefined {
  const k = hash64(key);
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    if (m === primary || excluding.has(m)) continue;
    const s = score(k, memberHash(m));
    if (s > bestScore || (s === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = s;
    }
  }
  return best;
}
