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
  'expiry-race': "a member that missed a session's last writes, its clock behind the others', back and asked for it between the newest copies' expiry and its own",
  // Added after expiry-race (the regression seeds' feature sets are prefixes of this order: keep it).
  'mixed-reset': 'a partition with resets on some links and silence on others: the two sides remove each other seconds apart',
  'lease-race': "a cut whose sides remove each other seconds apart (resets one way), a client steered into the grace periods: the far side's takeover against the cut-off owner's lease, a write at the owner past its backup's removal",
  'expiry-destroy': "in half the expiry races, the session destroyed (logout or regenerate) on the far side while the member is cut off, and the heal after the newest copies' end: its tombstones must outlive the copy that clock keeps",
  'write-cut': 'an owner cut off (its link to a holder reset) the instant the holder applies its write, read through its lease, the far side taking the session over from the copies it has',
  'short-ack': 'an ackTimeout shorter than the lease (0.3-0.7 of it) in 40 % of the schedules: requests fail while a member cut off still serves',
  'slow-grant': "at half the quiet checkpoints, the first take answered during the availability probes has its answer leave the grantor just past its taker's ackTimeout",
  'expiry-resend': 'the member of an expiry race is its owner, and a write reaches it the instant it is cut off: it fails there, and the owner resends its older copy whole after the heal, as the newest copies end',
} as const;

/**
 * Oracles added after the nemeses above: listed after them, so that the regression seeds' feature sets
 * (prefixes of ALL_FEATURES) keep their schedules.
 */
export const LATER_ORACLES = {
  /** Once quiet with every seat running, an ended session (destroyed or expired) answers its content or "no session", never 503. */
  definite: 'an ended session gets a definite answer at every member once quiet with every seat running',
} as const;

export type OracleName = keyof typeof ORACLES | keyof typeof LATER_ORACLES;
export type NemesisName = keyof typeof NEMESES;
export type Feature = OracleName | NemesisName;

export const ALL_FEATURES: readonly Feature[] = [
  ...(Object.keys(ORACLES) as OracleName[]),
  ...(Object.keys(NEMESES) as NemesisName[]),
  ...(Object.keys(LATER_ORACLES) as OracleName[]),
];

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
 * Every nemesis runs in CI now. `logout-reset` met two defects, both fixed by the lease change of the
 * resetting-firewall defect (a member removed for failure stops counting toward the lease at once):
 * backup seeds 252 (a write) and 291 (a creation) acknowledged in the lease's last moments, and a
 * delta log-out-everywhere retried behind resetting firewalls that read its own tombstone as
 * "destroyed" (seeds 127, 245, 20, 47, 67, 139, 153, 159, 165, 174, 291, 295 of `--mode delta --disable
 * reset-partition,cut-off-start,takeover-partition,agreement,availability`: all pass). With every
 * feature on, backup seeds 1..1000 and delta seeds 1..1000 left one defect of src/, outside CI's
 * seeds: backup seed 592 (`npm run simulate -- --mode backup --seed 592`, promise 1; fixed, a
 * regression seed): during a non-transitive cut (n1 and n2 apart, both reach n3) n1 took the session
 * over from n3; n2 kept its older copy as n3's former backup; the session's `absoluteMaxAge` then ran
 * out on n3's clock 0.3 s before n2's, so n3 answered "not held" (an expired copy left no trace) and
 * n2, with n1 out of reach, took its older copy over for the last moments of the session's life. Now
 * an expired copy leaves a trace (epoch, owner, version; two minutes) that a takeover reads as the
 * session's end: "no session" for the older copy, as for an expired session, not 503.
 * Delta seeds 1001..4000 with every feature: 2 failing, 2925 and 3982 (promise 5, agreement): a
 * `logout-reset` cut the owner off and killed it after a write reached one backup and not the other;
 * with the majority running, the two backups held different versions at the checkpoint until a
 * request took the session over. Fixed in src/replication/settlement.ts: the first live member in
 * the ring order of a lost owner's session takes it over by itself (highest version) where its
 * copies differ; both are regression seeds. Delta seed 2246 (promise 3, every feature, 95e5a72; fixed,
 * a regression seed): a takeover miss cached for 5 s answered "no session" after the winning member's
 * copy had reached this one; the sweep of delta 1..3000 found only it.
 * Every oracle runs in both modes. What kept delta mode's `agreement` and `availability` out (copies
 * unverified and sessions answered 503 at the checkpoint after connection resets or a slow link) was
 * a simulator defect, a reset connection held shut by its member's clock offset, and a delta take
 * granted after its taker gave up, which left the session ownerless (regression seeds: backup 1462;
 * delta 382, and 549, 1284, 75, 2144).
 */
// takeover-partition (issue 25): 2,000 seeds per mode, none failing because of it (backup seed 1923,
// a survey that outlived a removed member, is fixed). grant-partition and idle-after-error: 400 seeds
// per mode with every other feature, 0 failing; logout-reset: 1,000 per mode with every feature, 0
// failing but backup seed 592 (above, fixed since), which has no logout-reset fault.
// expiry-race (issue 24, killing the mutant expiry-leaves-no-trace in delta mode) found a defect in
// both modes: a former owner cut off while another member took its session over and wrote it came back
// after the newest copies expired on clocks ahead; its reconciliation (delta-manager.ts `#resync`,
// backup/anti-entropy.ts for its own primary) read no expiry trace, found no newer copy held, marked
// its older copy verified and served it without the writes made meanwhile (13 of delta seeds 1..1000,
// 3 of backup 1..600; regression seeds delta 67, backup 58). Fixed (`dropIfOutlived`): in CI since.
// mixed-reset and lease-race (issue 24: the survivors of 1,300 seeds, `promise-shorter-than-lease` in
// delta mode and `backup-write-past-silent-backup`, which only resets on one side catch: killed at
// seeds 2 and 4 with lease-race). In CI from their first sweep (test/sim/README.md), which found one
// defect: backup seed 3651, a write acknowledged across a lapse of its lease (fixed; a regression seed).
// write-cut (after backup seed 58171, found once in 58,000 seeds by a lease race): kills the mutant
// failed-write-served at backup seed 4 (5 of seeds 1..150), where the 24 features before it needed
// tens of thousands; with the fix, backup 1..150 and delta 1..200 pass with every feature.
// short-ack (an ackTimeout shorter than the lease): found the same defect in delta mode (seeds 16 and
// 22 of a 5-member run; fixed, delta-manager.ts `resyncCopies`; the mutant delta-failed-write-served
// is killed at delta seed 155). It also made the simulator's long pauses outrun an assumption (delta
// seed 217: a member paused past forgetAfter and 8 ackTimeouts, without expectedMembers, came back
// with a copy of a session destroyed meanwhile, whose tombstones had gone); such pauses are now drawn
// with expectedMembers only, as the README states the assumption. Delta 1..400 and backup 1..300 with
// every feature: 0 failing. Longer delta sweeps with both find more (test/sim/README.md): a takeover's
// claim served early (fixed, seeds 565 and 1376), and an open defect, delta seeds 2310 and 2963.
// slow-grant (after backup seed 23863 and delta seed 26798, a take and its grant each slow, found once
// in tens of thousands of seeds by the latency model's tail): aims that tail at a take during the
// probes of a quiet checkpoint, where a 503 is a violation; kills the mutants of the retry that fixed
// them (timed-out-take-not-asked-again, delta-timed-out-take-not-asked-again).
// expiry-resend (after delta seed 57635, an owner back from a cut resending its old copy whole as the
// newest copies ended, found once in 60,000 seeds): aims a failed write at the cut-off owner of an
// expiry race; for the mutant copy-older-than-expired-installed (test/sim/README.md).
export const CI_NEMESES: readonly Feature[] = [
  'multi-kill', 'zone', 'long-partition', 'long-pause', 'one-way', 'non-transitive', 'reset-partition', 'cut-off-start',
  'logout-crash', 'clock', 'slow-link', 'even-split', 'takeover-partition', 'grant-partition', 'logout-reset', 'idle-after-error',
  'expiry-race', 'mixed-reset', 'lease-race', 'expiry-destroy', 'write-cut', 'short-ack', 'slow-grant',
  'expiry-resend',
];
export const CI_FEATURES: Record<'backup' | 'delta', readonly Feature[]> = {
  backup: ['agreement', 'availability', 'lifetime', 'expiry', ...CI_NEMESES, 'definite'],
  delta: ['agreement', 'availability', 'lifetime', 'expiry', ...CI_NEMESES, 'definite'],
};
