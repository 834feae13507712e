/**
 * The checks (oracles) and faults (nemeses) a schedule may run besides the original ones, by name, so
 * that `--enable X,Y` / `--disable X,Y` pick them and the regression seeds replay the schedules that
 * found their bug (`LEGACY`: no extra nemesis, only the oracles that draw nothing from the PRNGs).
 */

/** Oracles: each only reads the members' state or the history (availability sends requests). */
export const ORACLES = {
  /** Copies agree per session at every quiet checkpoint: content, and in backup mode epoch, owner, version. */
  agreement: 'copies agree per session at every quiet checkpoint',
  /** Once quiet, every live session is readable at every member within a bound; a call that never ends fails. */
  availability: 'every live session readable at every member once quiet; no store call runs forever',
  /** A write that failed with an answer takes effect only within its own lifetime. */
  lifetime: "a failed write's value is never read after its failure was answered",
  /** Short maxAge and absoluteMaxAge; expired sessions stay gone, also for late replays. */
  expiry: 'expiry profile: short maxAge and absoluteMaxAge, expired sessions never served',
} as const;

/** Nemeses added to the original one-fault-at-a-time set. */
export const NEMESES = {
  'multi-kill': 'k members killed at once (k = backups; delta: all but one of three)',
  zone: 'members name zones; a whole zone is killed at once',
  'long-partition': 'partitions longer than every grace (> forgetAfter), with expectedMembers',
  'long-pause': 'pauses longer than every grace (> forgetAfter)',
  'one-way': 'one-way partitions (one side hears the other, not back)',
  'non-transitive': 'non-transitive partitions (a and b cut, both reach c)',
  'reset-partition': 'a firewall that answers with TCP resets: the peer sees a reset, not a timeout',
  'cut-off-start': 'a member (re)started while it cannot reach the others',
  'logout-crash': 'a primary killed right after a logout that failed or was faulted',
  clock: 'per-member clock offsets, drift and steps',
  'slow-link': 'links slow enough to miss ackTimeout, without eviction',
  'even-split': 'partitions into two halves (2 against 2): no side holds a strict majority',
  'takeover-partition': 'a taker (and, from five members, the owner granting it) cut off the moment its takeover runs',
  'grant-partition': 'the member asked to grant a takeover (and, from five members, sometimes the taker) cut off the instant the request arrives',
  'logout-reset': "a member cut off behind firewalls that reset the instant it sends a logout's removal, killed once the logout is answered",
  'idle-after-error': 'a client whose write failed leaves its session alone for 2-8 s in half the cases: the members repair what the failed write left, by themselves',
} as const;

export type OracleName = keyof typeof ORACLES;
export type NemesisName = keyof typeof NEMESES;
export type Feature = OracleName | NemesisName;

export const ALL_FEATURES: readonly Feature[] = [...(Object.keys(ORACLES) as OracleName[]), ...(Object.keys(NEMESES) as NemesisName[])];

/** What the regression seeds run with: their schedules as found, checked by the pure oracles. */
export const LEGACY: readonly Feature[] = ['agreement', 'lifetime'];

/** What `npm run simulate` runs unless told otherwise: everything. */
export const DEFAULT_FEATURES: readonly Feature[] = ALL_FEATURES;

/** Parses `--enable a,b` / `--disable c` against a starting set; throws naming an unknown feature. */
export function selectFeatures(base: readonly Feature[], enable: string | undefined, disable: string | undefined): Feature[] {
  const out = new Set<Feature>(base);
  const parse = (list: string | undefined): Feature[] =>
    (list ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map((s) => {
        if (s === 'all') return ALL_FEATURES;
        if (!(ALL_FEATURES as readonly string[]).includes(s)) throw new Error(`unknown oracle or nemesis "${s}"; known: all, ${ALL_FEATURES.join(', ')}`);
        return [s as Feature];
      })
      .flat();
  for (const f of parse(enable)) out.add(f);
  for (const f of parse(disable)) out.delete(f);
  return ALL_FEATURES.filter((f) => out.has(f));
}

/**
 * The oracles and nemeses CI runs on seeds 1..SEEDS (features.ts); `npm run simulate` runs them all.
 * Kept out, because they find open defects of src/ (README "Proving it"; each with a seed to replay):
 * - `logout-reset` (both modes): it cuts a member off behind resetting firewalls, so it meets the
 *   `reset-partition` defect above (`--mode backup --disable reset-partition,cut-off-start,takeover-partition`,
 *   seeds 252: a write, 291: a creation, acknowledged in the lease's last moments); and in delta mode a
 *   log-out-everywhere whose removal failed there is retried and resolves, because the retry's takeover
 *   reads the member's own tombstone of the failed attempt, with every other member removed as
 *   refused, as "destroyed": the others still hold the session (`--mode delta --disable
 *   reset-partition,cut-off-start,takeover-partition,agreement,availability`, seeds 127 (found again,
 *   promise 2), 245, 20, 47, 67, 139, 153, 159, 165, 174, 291, 295);
 * - `grant-partition`, `idle-after-error`: new with the mutation survivors (test/sim/README.md), not yet
 *   swept at CI's size.
 * Every oracle runs in both modes. What kept delta mode's `agreement` and `availability` out (copies
 * unverified and sessions answered 503 at the checkpoint after connection resets or a slow link) was
 * a simulator defect, a reset connection held shut by its member's clock offset, and a delta take
 * granted after its taker gave up, which left the session ownerless (regression seeds: backup 1462;
 * delta 382, and 549, 1284, 75, 2144).
 */
// takeover-partition (issue 25): 2,000 seeds per mode, none failing because of it (backup seed 1923,
// a survey that outlived a removed member, is fixed).
export const CI_NEMESES: readonly Feature[] = ['multi-kill', 'zone', 'long-partition', 'long-pause', 'one-way', 'non-transitive', 'reset-partition', 'cut-off-start', 'logout-crash', 'clock', 'slow-link', 'even-split', 'takeover-partition'];
export const CI_FEATURES: Record<'backup' | 'delta', readonly Feature[]> = {
  backup: ['agreement', 'availability', 'lifetime', 'expiry', ...CI_NEMESES],
  delta: ['agreement', 'availability', 'lifetime', 'expiry', ...CI_NEMESES],
};
