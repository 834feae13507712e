/**
 * Seeds that found a bug, kept as regression tests: CI (sim.test.ts) runs them besides 1..SEEDS, and
 * `npm run simulate` before every sweep of the default shape. Each line says what broke;
 * replay one with `npm run simulate -- --mode <mode> --seed N`.
 */
import { ALL_FEATURES, LEGACY, type Feature } from './features.js';

/** The added oracles and nemeses as of issue 24 (features.ts), for seeds found with all of them on. */
const ISSUE_24: readonly Feature[] = ALL_FEATURES.slice(0, 15);
/** Every oracle and nemesis of issue 24 (the 17 there are) but the three whose defects were still open. */
const RECHECK: readonly Feature[] = ALL_FEATURES.slice(0, 17).filter((f) => !['reset-partition', 'cut-off-start', 'takeover-partition'].includes(f));
/** The features seeds of `backups: 2` were found with (issue 25): all but the nemeses of open defects then. */
const ISSUE_25: readonly Feature[] = [
  ...['agreement', 'availability', 'lifetime', 'expiry', 'multi-kill', 'zone', 'long-partition', 'long-pause', 'one-way', 'non-transitive'] as const,
  ...['logout-crash', 'clock', 'slow-link', 'even-split'] as const,
];
/** Every oracle and nemesis up to `takeover-partition`: `npm run simulate`'s default set when found. */
const ISSUE_24_ALL: readonly Feature[] = ALL_FEATURES.slice(0, 17);
/** Every oracle and nemesis up to `idle-after-error`: `npm run simulate`'s default set when found (2026-12-06). */
const ALL_20: readonly Feature[] = ALL_FEATURES.slice(0, 20);
/** Every oracle and nemesis up to `expiry-race`: `npm run simulate`'s default set when found (2026-12-06, evening). */
const ALL_21: readonly Feature[] = ALL_FEATURES.slice(0, 21);
/** Every oracle and nemesis up to `lease-race`: `npm run simulate`'s default set when found (2026-12-06, night). */
const ALL_23: readonly Feature[] = ALL_FEATURES.slice(0, 23);
/** Every oracle and nemesis up to `expiry-destroy`: `npm run simulate`'s default set when found (2026-12-07). */
const ALL_24: readonly Feature[] = ALL_FEATURES.slice(0, 24);
/** Every oracle and nemesis up to `short-ack`: `npm run simulate`'s default set when found (2026-12-07). */
const ALL_26: readonly Feature[] = ALL_FEATURES.slice(0, 26);
/** Every oracle and nemesis up to `expiry-resend`: `npm run simulate`'s default set when found (2026-12-07, midday). */
const ALL_28: readonly Feature[] = ALL_FEATURES.slice(0, 28);
/** With the `definite` oracle (an ended session answers "no session" or its content, never 503). */
const ALL_29: readonly Feature[] = ALL_FEATURES.slice(0, 29);
/** That set without some (`--disable a,b`). */
const issue24Without = (...off: Feature[]): Feature[] => ISSUE_24_ALL.filter((f) => !off.includes(f));

/** A seed that found a bug, and the schedule's shape it was found with. */
export interface Regression {
  seed: number;
  bug: string;
  principals?: boolean;
  features?: readonly Feature[];
}

/**
 * How a regression seed is replayed, by `npm run simulate` and the mutation check alike: as it was
 * found, with its own features (or the legacy ones among `enabled`) and its principals setting.
 */
export function regressionSchedule(x: Regression, enabled: readonly Feature[]): { seed: number; features: readonly Feature[]; principals: boolean } {
  return { seed: x.seed, features: x.features ?? LEGACY.filter((f) => enabled.includes(f)), principals: x.principals ?? false };
}

export const REGRESSIONS: Record<'backup' | 'delta', Regression[]> = {
  backup: [
    // Promise 1 (issue 24, reset-partition): a primary cut off behind firewalls that reset removed
    // every other member as refused and, in its lease's last moments, acknowledged writes with no
    // backup at all (the early return for "no other member" skipped the check that the old backup went
    // silent only a moment ago); the majority took the session over from the stale backup.
    // (Seed 21 found it too, but later in its schedule meets the open cut-off-start defect.)
    { seed: 48, bug: 'a write acknowledged alone by a member cut off behind resetting firewalls', principals: true, features: ISSUE_24 },
    // Promises 1 and 3 (reset-partition): a member cut off behind firewalls that reset removed every
    // other member within milliseconds, yet their answers of a moment ago still counted toward its
    // lease; in its last moments it created sessions alone (32; 272 with `backups: 2`), which the
    // majority then answered "no session" for, and acknowledged writes alone (253: re-protection,
    // finding no other member, had cleared the record of the backup that went silent, so the write's
    // check of it never ran). Fixed: a member removed for failure stops counting toward the lease.
    { seed: 32, bug: 'a session created alone in the lease left by members just removed behind resetting firewalls', principals: true, features: ISSUE_24_ALL },
    { seed: 272, bug: 'the same, with backups: 2 and expectedMembers', principals: true, features: ISSUE_24_ALL },
    { seed: 253, bug: 'a write acknowledged alone after re-protection forgot the backup that went silent', principals: true, features: ISSUE_24_ALL },
    // Promise 3 (one-way cut): a takeover's survey waited on the owner (cut one way) until it was
    // removed; the other member's answer, given before the owner granted it the session, said "not
    // held", and the taker, itself the former backup told of that grant, answered "no session".
    { seed: 1923, bug: 'a taker ignored its own word that the session had moved', principals: true, features: issue24Without('cut-off-start', 'takeover-partition') },
    // Promise 1: a holder granted the session to n2 and, before n2's install arrived, its own check
    // saw n2 answer "not held" and adopted it back at a higher epoch: two owners, a write lost.
    { seed: 80, bug: 'a grant still on its way read as an owner that lost the session' },
    // Promises 3 and 5: the backup let go of its copy on the word of the grantor alone ("owned by n2
    // now"); the grantor crashed before its grant reached n2, and the session was nowhere.
    { seed: 396, bug: 'a copy dropped for a newer owner that never installed the session' },
    // Promise 5: a take request that waited in a paused member's socket was granted after the taker
    // had given up: nobody served the session (the checks that would adopt it came too late).
    { seed: 4557, bug: 'a take request read right after a pause was granted to a taker long gone' },
    { seed: 5955, bug: 'the same, after two graceful restarts' },
    // Promise 3: a survey's answers straddled a move (the new owner answered before it installed the
    // session, the old one after it let go), and "no session" was answered for a live session.
    { seed: 3146, bug: 'a session found nowhere by a survey that straddled its move' },
    // Promise 1: the timer of an earlier grant of the same session cleared the mark of a newer one,
    // and the grantor adopted back the session it had just granted (two owners).
    { seed: 11918, bug: "an earlier grant's timer cleared a newer grant's mark" },
    // Promise 3: a takeover's survey went out while the session's owner (back from a pause or a
    // partition) was not admitted; it was admitted again before the answers came, so no silent member
    // was left to make the taker careful, and "no session" was answered for a live session.
    { seed: 12070, bug: 'a member re-admitted during a survey was never asked', principals: true },
    { seed: 31705, bug: 'the same, after two pauses', principals: true },
    { seed: 56063, bug: 'the same, after a partition', principals: true },
    { seed: 79007, bug: 'the same, after connection resets and a pause', principals: true },
    { seed: 79749, bug: 'the same, after a pause and a partition', principals: true },
    // Promise 3 (a false alarm of the checker): a client's second log-out everywhere replaced its
    // first, still running on a paused member, in the history's bookkeeping.
    { seed: 23928, bug: "the checker lost track of a client's first running revoke", principals: true },
    // Promise 5 (a defect of the simulator): a connection reset reopened after 50 ms of the member's
    // wall clock, not of simulated time, so a clock set ahead kept it shut for seconds: leases lapsed
    // and copies were still unverified at the checkpoint after connection resets.
    { seed: 1462, bug: "a reset connection held shut by its member's clock offset", principals: true, features: RECHECK },
    // Promise 5 (a false alarm of the agreement oracle): with `backups: 2`, two of four members killed
    // at once, one of them the owner mid-write; its unacknowledged write reached one backup only, and
    // without a majority nobody may adopt, so the two backups held versions 3 and 2 at the checkpoint.
    // The majority back, the version-3 copy was adopted, as it must be.
    { seed: 892, bug: 'backups of one owner a version apart while no majority ran', principals: true, features: ISSUE_25 },
    { seed: 1309, bug: 'the same, without expectedMembers', principals: true, features: ISSUE_25 },
    // The checker again: a takeover granted 11 ms before two of four members died left the old owner's
    // other backup at the old epoch; without a majority nothing re-protects, by design.
    { seed: 105, bug: 'copies of two epochs while no majority ran', principals: true, features: ALL_FEATURES.slice(0, 21) }, // the 21 features of 2026-12-06
    // Promise 3: a takeover's survey waited for a member cut off one way until it was removed (1.25 s),
    // and the answer of the member taking the session over meanwhile, given before its grant arrived,
    // read as "not held": "no session" for a live session. Now a survey that lost a member asks again.
    { seed: 1923, bug: 'a survey that outlived a removed member read an old "not held"', principals: true, features: [...ISSUE_25, 'takeover-partition'] },
    // Promise 3 (issue 23, cut-off-start): a member restarted while it could reach nobody counted a
    // cluster of one seat (without expectedMembers), held its lease at once, and created and served
    // sessions alone; a client's request for one at another member (which asked every member it could
    // reach, with the restarted one's seat silent) got "no session" 0.25-0.4 s after the creation.
    { seed: 274, bug: 'a member restarted cut off served alone; another answered "no session" for its session', principals: true, features: ISSUE_24_ALL },
    { seed: 257, bug: 'the same, with backups 2', principals: true, features: ISSUE_24_ALL },
    // Promise 1 (non-transitive, clock, expiry): n1 and n2 cut from each other, both reaching n3; n1
    // took a session over from n3 (which kept its copy as n1's backup), while n2 still held an older
    // one as n3's former backup. The session's absoluteMaxAge ran out on n3's clock 0.3 s before n2's:
    // n3 answered "not held", and n2, with only n1 out of reach, took its older copy over for the
    // session's last moments, a read missing three acknowledged writes. An expired copy now leaves a
    // trace (ownership and version, two minutes) that the takeover's survey reads: "no session".
    { seed: 592, bug: 'an older copy taken over once the newest had expired on a clock ahead', principals: true, features: ALL_20 },
    // Promise 1 (clock, expiry, logout-crash): n1, cut from its backup n3, re-protected a session onto
    // n4 with its last write and was killed. The copy expired on n4's clock (153 ms ahead) while n3's
    // older copy (726 ms behind) lived on; n3's anti-entropy adopted that older copy, which lacked the
    // write, although n4 had answered with the newer copy's expiry trace. Adoption now reads the
    // traces as a takeover does: the session has ended, the stray copy goes.
    { seed: 7927, bug: 'anti-entropy adopted an older copy once the newest had expired on a clock ahead', principals: true, features: ALL_20 },
    // Promise 1 (expiry-race): the session's owner, its clock stepped behind, was cut off while another
    // member took the session over and wrote it; back after the newest copies expired on the faster
    // clocks, its anti-entropy found no newer copy held, ignored the expiry traces the others answered
    // with, marked its own older primary copy verified and served it without the writes made meanwhile.
    // Fixed with the reconciliation reading the traces (`dropIfOutlived`), as adoption and takeover do.
    { seed: 58, bug: 'a former owner back from a cut verified its older copy once the newest had expired', principals: true, features: ALL_21 },
    // Promise 3 (slow-link, expiry): a write whose link to the backup was slower than ackTimeout failed
    // (503) while the session expired; n3's takeover found it expired everywhere and answered "no
    // session", caching the miss for 5 s. The failed write's copy then reached n3 late with a new
    // expiry (a failed write may have applied), the session was taken over from it and written again,
    // and moved on from n3 to another owner; n3's cached miss still answered "no session" for it. A
    // miss is no longer answered from the cache once a 'moved' tombstone shows the session lives on.
    { seed: 9805, bug: 'a cached miss answered "no session" for a session that had moved on from here since', principals: true, features: ALL_21 },
    // Promise 1 (lease-race, found by the night's sweep): n3, cut off behind a firewall that rejected
    // what came in, began a write in its lease's last moments; the delta to its backup n1 hung. Its lease
    // ran out; n1 released n3 and adopted the session (epoch 4). n3 then removed n1, healed, met a
    // majority again, and the write's next attempt chose n4 as the new backup, which held only an old
    // 'moved' mark of epoch 2 and acknowledged: the write was answered 200 and lost to epoch 4. A write
    // (or a removal) whose lease lapsed on its way is no longer acknowledged, lease held again or not.
    { seed: 3651, bug: 'a write acknowledged after its lease lapsed and came back while the session was adopted elsewhere', principals: true, features: ALL_23 },
    // Promise 5 (mixed-reset, backups: 2): n3, cut off behind resets on its own side, asked the owner n2
    // for a session; n2 granted it and kept the data as n3's copy, but n3 had given up (it removed
    // everyone) and never installed it. After the heal nobody served the session: n2 waited out its
    // grant's time (2 ackTimeouts) before adopting it back, past the convergence bound. Now n3's
    // anti-entropy, seeing a copy that names it owner of an epoch it does not hold, asks for it again.
    { seed: 6564, bug: 'a grant lost on its way to a taker left the session without a primary for two ackTimeouts', principals: true, features: ALL_23 },
    // Promise 1 (the sweep to 100,000 on 9f3f65d): two takers of a session whose owner had let it
    // expire by its fast clock met at its one other holder. The first was granted epoch 3 and
    // acknowledged a write; the second's take was "forced" (the owner it had asked did not hold the
    // session), and the holder granted epoch 4 past the first, a live owner that served it, with the
    // data before that write. A forced take is now granted only when the owner the copy names says it
    // does not hold the session, never past a grant of a moment ago (`backup/grant.ts`).
    { seed: 44123, bug: 'a forced take granted past a live owner granted a moment before, losing its acknowledged write', principals: true, features: ALL_24 },
    // Promise 5 (the same sweep): a grantor granted a session to a taker whose take had already failed
    // (its connection reset), then took it back for a request of its own, asking the taker under its
    // lock, while the taker asked it again for the lost grant under its own: each take waited for the
    // other's lock a whole ackTimeout, and the session had no owner for 3.5 s. A take now waits for the
    // lock only half its timeout, as long as its answer is of use (`backup/grant.ts`).
    { seed: 50120, bug: 'two takers each holding their own lock and asking the other waited out a whole ackTimeout', principals: true, features: ALL_24 },
    // Promise 5 (the sweep on c457468, and on 8129d29 too): the same two-way wait, both takes sent at
    // once, so both were refused at half their timeout and the session stayed without an owner until
    // the grant's time ran out. A grantor no longer asks the taker of a grant still on its way (and
    // not installed there) under its lock: its request is answered 503, and the taker's claim gets in.
    { seed: 58099, bug: 'a grantor and its taker each asked the other for the session under their own locks', principals: true, features: ALL_24 },
    // Promise 4 (the sweep on cb0b97e; on 8129d29 too): a primary's write reached its backup just
    // before a cut, and the primary, unable to hear back or send the session again, answered it failed
    // yet served the old content in its lease's last moments; the majority then adopted the backup's
    // copy, failed write included. After a failed write the primary now serves the session only once
    // its holders have it as the primary holds it (sent whole at a version of its own), and 503 until then.
    { seed: 58171, bug: 'a failed write kept by the backup surfaced after its primary had served the older content', principals: true, features: ALL_24 },
    // Promise 5 (the sweep on c0a8413): a grant's answer was lost in a 350 ms partition; the grantor
    // answered 503 for the session for two ackTimeouts from the grant before it took the session back,
    // past the convergence limit. A taker now installs a grant only within its take's timeout, and the
    // grantor takes the session back as soon as that has surely passed.
    { seed: 21591, bug: 'a lost grant held by its grantor past the convergence limit', principals: true, features: ALL_24 },
    // Promise 1 (the sweep on that fix, with all 26 features; on the code before it the schedule's
    // timing differed and passed): in a cut between two members only, one took the session over from
    // its owner and wrote; the other, cut from it, held an older copy, heard the old owner say it let
    // the session go to a newer owner, and adopted its copy anyway (the owner "lost" it). A copy a
    // member says moved on to a newer owner is no longer adopted.
    { seed: 1194, bug: 'an old copy adopted past a newer owner it could not reach', principals: true, features: ALL_26 },
    // Promise 3 (a quiet probe after a restart): a take and its grant each crossed a slow link (5 to
    // 120 ms), and the taker timed out (ackTimeout 231) while the grant was on its way: 503 for two
    // live sessions with no fault left. A timed-out take is asked once more, and granted again.
    { seed: 23863, bug: 'a take timed out by two slow messages answered 503 for a live session', principals: true, features: ALL_26 },
    // Promise 3 (the sweep on 841ec0f, two of five killed at once, backups 2): a member took a session
    // over and sent its copies on; an old backup's audit saw the taker hold it, let its copy go before
    // the taker's copy reached it, and the taker and its grantor then died together: "no session". A
    // backup copy now goes only once the newer owner names backups, all live, without this member.
    { seed: 5044, bug: 'an old backup let its copy go before the taker\'s copy reached it, and both holders died', principals: true, features: ALL_28 },
  ],
  delta: [
    // Promise 4 (short-ack, found with an ackTimeout shorter than the lease): an owner's write failed
    // and it could not send the session again to a member that went silent, yet it served the older
    // content while its lease ran; the far side then took the session over from copies holding the
    // failed write. The owner now checks with the others first (a takeover of its own) after such a
    // failure (the mutant delta-failed-write-served fails this seed).
    { seed: 155, bug: 'the older content served after a failed write, which the far side then took over', principals: true, features: ALL_26 },
    // Promise 4 (the sweep on f74f662, with write-cut and short-ack; also 538, 717, 1492): an owner cut
    // off took its own session over again after a failed write (a member silent, one removed), and the
    // new epoch's copy was served by requests that found it installed, without the lock, while its
    // send to every member was still on its way: the older content, while the far side kept the
    // failed write. A claim is now served only once every member has it.
    { seed: 565, bug: 'a claim of its own served before the members had it, with a failed write on the far side', principals: true, features: ALL_26 },
    // Promise 1 (the first form of that fix): the claim cleared the mark a lost lease had set meanwhile,
    // and the member, cut off with its clock behind, later served its older copy unchecked.
    { seed: 1376, bug: 'a claim cleared the check a lost lease had asked for meanwhile', principals: true, features: ALL_26 },
    // Promise 5 (the sweep on 03f83db's fixes; also 2963): a take that waited in a one-way cut reached
    // its grantor after the taker gave up and was granted; the grantor's check read the taker's
    // "nothing held" as installed, and the session had no owner. The grantor now takes it back when
    // the taker holds nothing of the grant's epoch or later.
    { seed: 2310, bug: 'a grant whose taker never held it taken as installed', principals: true, features: ALL_26 },
    // Promise 1 (the first form of that fix, which read "nothing held" from the session's copy alone):
    // the taker had installed the grant long before, and the session had moved on and expired there;
    // the grantor, cut off with its clock behind, took its old copy back. The taker's traces (a newer
    // owner, an expired copy) now say it had it.
    { seed: 1679, bug: 'a grant taken back long after its taker installed it, bringing an old copy back', principals: true, features: ALL_26 },
    // Promise 3 (a quiet probe after a partition): a take and the owner's grant each crossed a slow
    // link, and the taker timed out while the grant was on its way; another take's claim timed out
    // behind a slow message on its connection. Both 503 with no fault left: a timed-out take surveys
    // and claims once more, and a whole copy whose answer was slow is sent once more.
    { seed: 26798, bug: 'a take or a claim timed out by slow messages answered 503 for a live session', principals: true, features: ALL_26 },
    // Promise 3 (after a long pause): a copy already expired by the clock of the member taking it over
    // (its holder's clock behind) was claimed, dropped as expired the moment it was read, and claimed
    // again by every request at an epoch two up: a logout everywhere never finished. Now "no session".
    { seed: 30858, bug: 'a copy expired by the taker\'s clock claimed and dropped again and again', principals: true, features: ALL_26 },
    // Promise 1 (expiry-race): an owner cut off with its clock behind, its write failed, came back and
    // resent its old copy whole; the member holding the newest copy crashed, the other's had expired
    // and it installed the old copy, so every answer was OK and the owner served its stale copy. A copy
    // older than one that expired is refused as a stale owner's is.
    { seed: 57635, bug: 'an old copy resent after a cut was installed past a newer copy that had expired', principals: true, features: ALL_26 },
    // Promise 3 (slow-grant, on 8329fb4): the owner's check of a grant whose answer was slow fired
    // just before the taker's second take arrived (itself slow), took the session back and held its
    // lock through a slow answer; the second take was then too late. The first grant's check now
    // waits 1.75 ackTimeouts, past the taker's second ask.
    { seed: 4839, bug: "a grant's check took the session back just before its taker asked again", principals: true, features: ALL_28 },
    // Promise 5 (on 8329fb4): a "log out everywhere" found the session expired by its member's clock
    // (the 30858 fix answered "no session" and ended nothing), and a member with its clock behind kept
    // its copy past the checkpoint. Such a session is now ended on every member, as a logout would.
    { seed: 17353, bug: 'a session expired by the taker\'s clock was left live on members with clocks behind', principals: true, features: ALL_28 },
    // Promise 5 (one-way cut n3>n1): n3's resend of a session sat in n3's kernel while n2 took the
    // session over and destroyed it; every member forgot the destruction before the cut healed, and
    // n1 then read and installed the held copy. A request read after its sender's deadline is now
    // refused unrun (protocol version 3, src/cluster/late-requests.ts).
    { seed: 26085, bug: 'a copy held by a one-way cut installed after the destruction was forgotten', principals: true, features: ALL_28 },
    { seed: 31371, bug: 'the same, with the clocks off', principals: true, features: ALL_28 },
    // Promise 1 (one-way cut n1>n2): n2's take reached n1, which granted n2 the next epoch; the answer
    // was lost. After the heal n1 took the session back from n2, which gave it again the grant it had
    // once given n1 (one epoch lower); n1 claimed at that epoch and acknowledged a write, and a state
    // transfer then spread n1's earlier copy at the higher epoch over it. A grant older than the
    // taker's own copy is now taken as from a silent owner, past every epoch seen.
    // Promise 3 (the `definite` oracle, its first sweep): an ended session answered 503 once quiet.
    // 64: a takeover's claim took the session's last moments, and the read that followed found it
    // expired here: "moved while this request ran" (now "no session"). 36: a survey found an expiry
    // trace equal to the copy held (its holder's clock ahead) and did not count it as the end (now
    // "newer or equal"). 278: the session expired at its owner while a write was on its
    // way; the write failed, and the holder that applied it kept it to the write's later expiry, 503 till
    // then (now taken back, as a failed creation is).
    { seed: 64, bug: 'a session that expired during its takeover answered 503, not "no session"', principals: true, features: ALL_29 },
    { seed: 36, bug: 'an expiry trace equal to the copy held was not taken as the end: 503', principals: true, features: ALL_29 },
    // 347 and 493: a holder asked for its copy (347) or the owner asked to hand it over (493) found it
    // expired since the survey and answered with nothing: 503. Now asked again, once.
    { seed: 347, bug: 'a copy that expired between the survey and the fetch gave 503', principals: true, features: ALL_29 },
    { seed: 493, bug: "the owner's copy expired between the survey and the take: 503", principals: true, features: ALL_29 },
    // A false alarm of `definite`: after a partition past every grace, with an ackTimeout of 230 ms,
    // surveys behind the state transfer on a slow link timed out; "cannot be asked now" (503) was the
    // answer by design. A member whose surveys time out during the probes is excused there.
    { seed: 7376, bug: 'the definite oracle counted a 503 while surveys timed out', principals: true, features: ALL_29 },
    { seed: 13079, bug: 'the same, on a slow link', principals: true, features: ALL_29 },
    { seed: 278, bug: "a write on its way when the session expired at its owner left the failed write's copy serving 503", principals: true, features: ALL_29 },
    { seed: 41530, bug: 'a takeover claimed at a re-sent grant older than the copy it held', principals: true, features: ALL_28 },
    // Promise 1 (a false alarm of the checker): two calls at one simulated instant were compared by
    // time alone, so a write that ended just before another began counted as concurrent with it.
    { seed: 112, bug: 'the checker ordered calls of one instant wrongly' },
    // Promise 5: after a partition healed, the member that had been cut off pulled the sessions
    // created meanwhile only from a member older than itself; being the oldest, it pulled nothing.
    { seed: 499, bug: 'the oldest member, back from a partition, missed the sessions created meanwhile' },
    { seed: 786, bug: 'the same, with another member cut off' },
    // Promise 5: back from a pause, a member reconciled at once, before the others had admitted it
    // again; a session created in between reached it by no delta and no pass.
    { seed: 1149, bug: 'a session created while the others had not yet re-admitted a resumed member' },
    // Promise 1: a member restarted after a crash took a session over (granted by a member that had
    // admitted it); a third member that had not admitted it yet saw its owner as dead and adopted the
    // session past it, losing the write the restarted member had acknowledged.
    { seed: 14613, bug: 'a session adopted past a restarted owner that this member had not admitted yet' },
    { seed: 16895, bug: 'the same, after a second crash and restart' },
    // Promise 5: a restarted member created (41766) or destroyed (48229) a session before it had
    // admitted an older member; the write went only to the members it knew, and nothing sent it later.
    { seed: 41766, bug: 'a session created by a restarted member before it saw an older member' },
    { seed: 48229, bug: 'a destruction by a restarted member before it saw an older member' },
    // Promise 1: back from a pause, a member checked its sessions while the others had not yet
    // re-admitted it; one of them took a session over just after the check, and the resumed member
    // served its stale copy once its recovery ended.
    { seed: 31870, bug: 'a check made before the others re-admitted a resumed member passed a stale copy' },
    // Promise 1: a member accepted a takeover copy from a restarted member it had not admitted yet,
    // then took the session over past that owner (dead to it): two owners.
    { seed: 2295, bug: 'a copy accepted from a member not admitted yet', principals: true },
    // Promise 3 (a false alarm of the checker): a log-out everywhere that its client had given up on
    // ran on through a pause and ended a session the same user created meanwhile, as documented
    // ("sessions created while it runs go too"); the history now counts it as a destroy in doubt.
    { seed: 4102, bug: 'the checker ignored sessions a still-running revoke may end', principals: true },
    // Promise 5 (a defect of the simulator): the same reset connection held shut by a clock offset.
    { seed: 382, bug: "a reset connection held shut by its member's clock offset", principals: true, features: RECHECK },
    // Promises 3 and 5 (issue 23 item 3): a take request on a link slower than ackTimeout was granted
    // after its taker gave up; the granter's copy named the taker, the taker's the granter, and every
    // takeover was sent round between them (503) until a request reached the taker.
    { seed: 549, bug: 'a grant whose answer its taker never got left the session ownerless', principals: true, features: RECHECK },
    { seed: 1284, bug: 'the same, on another slow link', principals: true, features: RECHECK },
    // Promise 5: the same, from a take request read right after a pause of the owner.
    { seed: 75, bug: 'a take request read right after a pause was granted to a taker long gone', principals: true, features: RECHECK },
    // The same, granted just as a non-transitive cut began; the granter removed the taker, took that
    // for gone and stopped checking, and the taker came back (same process) still not holding it.
    { seed: 2144, bug: 'a grant checked no more once its taker was removed, though it came back', principals: true, features: RECHECK },
    // Promises 3 and 4 (reset-partition): a member cut off behind firewalls that reset removed the
    // others within milliseconds, yet their answers of a moment ago still counted toward its lease: it
    // read a session (720: the others kept the failed write it had just rolled back here, promise 4)
    // and took one over alone at an epoch nobody saw (1683: 503 for it long after the heal).
    { seed: 720, bug: 'a member cut off behind resetting firewalls served in the lease its removed peers left', principals: true, features: ISSUE_24_ALL },
    { seed: 1683, bug: 'the same: a session taken over alone there, unavailable long after the heal', principals: true, features: ISSUE_24_ALL },
    // Promise 2, the same cause: the cut-off member acknowledged a logout alone, and the majority
    // served the session on (found with the CI set and reset-partition: `--disable
    // agreement,availability,cut-off-start,takeover-partition`).
    { seed: 534, bug: 'a logout acknowledged alone behind resetting firewalls', principals: true, features: issue24Without('agreement', 'availability', 'cut-off-start', 'takeover-partition') },
    { seed: 822, bug: 'the same, another schedule', principals: true, features: issue24Without('agreement', 'availability', 'cut-off-start', 'takeover-partition') },
    // Promise 5 (logout-reset): an owner cut off behind resetting firewalls, then killed, whose last
    // (failed) write reached one of the two other members and not the other; with the majority
    // running, the two copies stayed at two versions until a request took the session over.
    { seed: 2925, bug: "a lost owner's copies left at two versions until a request came", principals: true, features: ALL_20 },
    { seed: 3982, bug: 'the same, after a long pause and a restart cut off', principals: true, features: ALL_20 },
    // Promise 3: a takeover that missed (racing another member's) cached "nowhere" for 5 s, and the
    // member answered "no session" from that cache after the winner's copy had reached it.
    { seed: 2246, bug: 'a recent miss answered "no session" while a copy of the session was held', principals: true, features: ALL_20 },
    // Promise 1 (expiry-race, found by the nemesis written to kill the mutant expiry-leaves-no-trace
    // here): a former owner, its clock behind, cut off while another member took the session over and
    // wrote it, came back after the newest copies expired on the faster clocks; its reconciliation
    // (`#resync`) read no expiry trace, marked its older copy verified and served it without the writes
    // made meanwhile. Fixed as in backup seed 58 (`dropIfOutlived`).
    { seed: 67, bug: 'a member back from a cut verified its older copy once the newest had expired', principals: true, features: ALL_21 },
    // Promise 5 (cut-off-start; found by the sweep of a first version of the fix below, a regression of
    // it): a reconciling state transfer that left out every session naming this member its owner, so
    // that a write of ours in flight is not installed as a copy over our own primary (a creation answered
    // 503 left an orphan copy on every member), also left out a former incarnation's sessions after a
    // restart cut off: nobody served them. Now only ours with a request in flight here are left out.
    { seed: 585, bug: "a restarted member's reconciliation left out its former incarnation's sessions", principals: true, features: ALL_21 },
    // Promises 1 and 2 (expiry-race): a member cut off with an old copy, its clock 2.3 s behind; the
    // others took the session over, wrote it and destroyed it; their tombstones ended at the session's
    // latest expiry by their clocks, the removal owed to the cut-off member was given up with them, and
    // after the heal it served its copy (alive 2.3 s longer by its clock). A destruction now fences for
    // the clock margin an expiry trace keeps too (`fenceUntil`).
    { seed: 38101, bug: 'a copy kept by a clock behind outlived the tombstones of its destruction', principals: true, features: ALL_23 },
  ],
};
