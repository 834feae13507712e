/**
 * Deliberate bugs in src/replication (`npm run mutate`): each a textual patch of one file, which the
 * simulator's checkers must catch. Every promise of DESIGN.md and both modes are covered; a mutant
 * whose `find` text no longer occurs exactly once fails the run (the code moved: update the mutant).
 */
/** One textual patch of a file under src/replication. */
export interface Patch {
  file: string;
  find: string;
  replace: string;
}

export interface Mutant {
  id: string;
  /** Under src/replication. */
  file: string;
  find: string;
  replace: string;
  /**
   * More patches applied with it: a bug that two lines of src/ each prevent alone (a guard that fails
   * a request early, and the check that fails it later anyway) takes both lines broken.
   */
  also?: readonly Patch[];
  /** The modes whose code it changes. */
  modes: readonly ('backup' | 'delta')[];
  /** The promise it breaks (DESIGN.md "Promises under faults"). */
  promise: string;
  what: string;
}

const both = ['backup', 'delta'] as const;

export const MUTANTS: readonly Mutant[] = [
  {
    id: 'write-early-ack',
    file: 'backup/fan-out.ts',
    find: "if (ctx.options.ack === 'sync') return work;",
    replace: "if (ctx.options.ack === 'sync') { work.catch(() => undefined); return; }",
    modes: ['backup'],
    promise: '1',
    what: 'a write is acknowledged before its backup has it',
  },
  {
    id: 'delta-write-early-ack',
    file: 'delta-manager.ts',
    find: "if (this.options.ack === 'sync') return work;",
    replace: "if (this.options.ack === 'sync') { work.catch(() => undefined); return; }",
    modes: ['delta'],
    promise: '1',
    what: 'a delta is acknowledged before the other members have it',
  },
  {
    id: 'logout-early-ack',
    file: 'replicator.ts',
    find: "if (this.options.ack === 'sync') await check;",
    replace: "if (this.options.ack === 'sync') check.catch(() => undefined);",
    modes: both,
    promise: '2',
    what: 'a logout is acknowledged before the copy holders removed the session',
  },
  {
    id: 'majority-off-by-one',
    file: 'lease.ts',
    find: 'const need = Math.floor(size / 2);',
    replace: 'const need = Math.floor((size - 1) / 2);',
    modes: both,
    promise: '6',
    what: 'half the cluster counts as a majority',
  },
  {
    id: 'failed-version-reused',
    file: 'replicator.ts',
    find: 'e.version = plan.next.version;\n',
    replace: '\n',
    modes: both,
    promise: '4',
    what: "a failed write's version is not burnt: the next write reuses it",
  },
  {
    id: 'failed-write-no-resync',
    file: 'replicator.ts',
    find: '          e.resync = true;\n',
    replace: '          e.resync = false;\n',
    modes: both,
    promise: '4',
    what: 'after a failed write the holders are not sent the whole session again',
  },
  {
    id: 'resync-cleared-early',
    file: 'backup/reprotection.ts',
    find: 'if (e.resync === true) e.version++;',
    replace: 'if (e.resync === true) e.version++;\n    e.resync = false;',
    modes: ['backup'],
    promise: '4',
    what: "re-protection clears the resend mark before the holders have the whole session",
  },
  {
    id: 'delta-resync-cleared-early',
    file: 'delta-manager.ts',
    find: 'e.version++;\n    try {\n      await this.#toAll(e.base, Buffer.alloc(0), e, true);',
    replace: 'e.version++;\n    e.resync = false;\n    try {\n      await this.#toAll(e.base, Buffer.alloc(0), e, false);',
    modes: ['delta'],
    promise: '4',
    what: "delta mode's resend after a failed write sends a delta, not the whole session",
  },
  {
    id: 'silent-answer-not-held',
    file: 'backup/takeover.ts',
    find: '    if (failed > 0) {\n      // A member that just died',
    replace: '    if (failed > 0 && false) {\n      // A member that just died',
    modes: ['backup'],
    promise: '3',
    what: "a takeover reads a member's missing survey answer as 'not held'",
  },
  {
    id: 'tombstone-dies-early',
    file: 'session-table.ts',
    find: 'const keep = Math.max(until, e === undefined ? 0 : fenceUntil(e.expire), t?.until ?? 0, moved?.until ?? 0);',
    replace: 'const keep = this.#clock.now() + 500 + 0 * Math.max(until, e === undefined ? 0 : fenceUntil(e.expire), t?.until ?? 0, moved?.until ?? 0);',
    modes: both,
    promise: '2',
    what: "a logout's tombstone lasts half a second instead of until no copy can exist",
  },
  {
    id: 'epoch-bump-too-small',
    file: 'copies.ts',
    find: 'export const PAST_A_SILENT_OWNER = 2;',
    replace: 'export const PAST_A_SILENT_OWNER = 1;',
    modes: both,
    promise: '6',
    what: 'adopting a silent owner\'s session bumps the epoch by one, which the owner may have granted',
  },
  {
    id: 'no-takeovers',
    file: 'backup/takeover.ts',
    find: "export async function takeOver(ctx: BackupContext, protection: Reprotection, grants: Pick<Grants, 'grantedTo'>, base: string): Promise<boolean> {",
    replace:
      "export async function takeOver(ctx: BackupContext, protection: Reprotection, grants: Pick<Grants, 'grantedTo'>, base: string): Promise<boolean> {\n  if (base !== '') throw ctx.unavailable(base, 'mutant: no takeovers');",
    modes: ['backup'],
    promise: '3, 5',
    what: 'no takeover ever succeeds (503 for every session away from its member)',
  },
  {
    id: 'stale-owner-not-fenced',
    file: 'copies.ts',
    find: 'if (e !== undefined && olderOwnership(epoch, owner, e.epoch, e.owner)) {',
    replace: 'if (e !== undefined && olderOwnership(epoch, owner, e.epoch, e.owner) && false) {',
    modes: both,
    promise: '6',
    what: "a holder applies writes from an owner older than the one it knows",
  },
  {
    id: 'destroy-spares-own-epoch',
    file: 'copies.ts',
    find: 'return heldEpoch <= epoch;',
    replace: 'return heldEpoch < epoch;',
    modes: both,
    promise: '2',
    what: 'a removal does not fence copies of its own epoch',
  },
  {
    id: 'delta-gap-applied',
    file: 'copies.ts',
    find: "  if (m.baseVersion !== e.version) return { status: 'NEED_FULL', epoch: 0, owner: '' };\n  e.packed",
    replace: '  e.packed',
    // Delta mode only. In backup mode the mutated line is never reached: the primary sends a delta
    // only to the backups that acknowledged the very version it builds on (fan-out.ts: `current` is
    // `e.backup`, set once every chosen backup acknowledged, and empty after a failed write, when the
    // whole session goes out); any other holder gets the whole session. A holder that lost or never had
    // its copy answers NEED_FULL by the `e === undefined` branch, one whose owner changed by the
    // ownership branch. Counted on the unmutated code with every oracle and nemesis of issue 24: no gap
    // in backup seeds 1..1000, a gap in 4 of delta seeds 1..100 (test/sim/README.md).
    modes: ['delta'],
    promise: '1, 4',
    what: 'a holder applies a delta onto a version other than the one it was made against',
  },
  {
    id: 'removal-needs-no-backup',
    file: 'backup-manager.ts',
    find: 'return this.channel.members().filter((m) => routes.has(m.route));\n  }\n\n  protected expectedHolders',
    replace: 'return this.channel.members().filter((m) => routes.has(m.route) && false);\n  }\n\n  protected expectedHolders',
    modes: ['backup'],
    promise: '2',
    what: 'a logout needs no acknowledgement from the backups',
  },
  {
    id: 'delta-removal-needs-nobody',
    file: 'delta-manager.ts',
    find: '  protected mustAcknowledgeRemoval(): MemberInfo[] {\n    return this.#holders();',
    replace: '  protected mustAcknowledgeRemoval(): MemberInfo[] {\n    return [];',
    modes: ['delta'],
    promise: '2',
    what: 'a logout needs no acknowledgement from the other members',
  },
  {
    id: 'expiry-ignored',
    file: 'session-table.ts',
    find: 'if (e !== undefined && e.expire <= now) {',
    replace: 'if (e !== undefined && e.expire + 3_600_000 <= now) {',
    modes: both,
    promise: '2 (expiry)',
    what: 'sessions are served an hour past their expiry',
  },
  {
    id: 'absolute-max-age-ignored',
    file: 'session-policy.ts',
    find: 'if (policy.absoluteMaxAge !== undefined) next.expire = Math.min(next.expire, createdAt + policy.absoluteMaxAge);',
    replace: '',
    modes: both,
    promise: '2 (expiry)',
    what: 'absoluteMaxAge does not end an active session',
  },
  {
    id: 'promise-shorter-than-lease',
    file: 'lease.ts',
    find: 'this.#margin = Math.ceil(leaseMs / 4) + 50;',
    replace: 'this.#margin = -Math.ceil(leaseMs / 2);',
    modes: both,
    promise: '6',
    what: "a member's promise not to release an owner runs out before that owner's lease",
  },
  {
    id: 'no-reprotection',
    file: 'backup-manager.ts',
    find: '    this.#protection.maintain();\n',
    replace: '\n',
    modes: ['backup'],
    promise: '5',
    what: 'sessions that lost a copy are not given one again until written',
  },
  {
    id: 'no-anti-entropy',
    file: 'backup-manager.ts',
    find: '    this.#antiEntropy.maintain();\n',
    replace: '\n',
    modes: ['backup'],
    promise: '5',
    what: 'a member back from a pause or a partition does not check its copies by itself',
  },
  {
    id: 'removal-keeps-lease',
    file: 'lease.ts',
    find: '    this.#acked.delete(route);\n    if ((this.#withdrawn.get(route) ?? -Infinity) < at) this.#withdrawn.set(route, at);',
    replace: '',
    modes: both,
    promise: '1',
    what: "a member removed for failure still counts toward the lease: a member cut off serves on the others' last answers",
  },
  {
    id: 'backup-write-past-silent-backup',
    file: 'backup/fan-out.ts',
    find: 'throw ctx.unavailable(e.base, `its backup ${old} went silent a moment ago`);',
    replace: 'continue;',
    // The former backup's drop is the check that fails such a write anyway (after the new backup has it).
    also: [{ file: 'backup/reprotection.ts', find: '    if (!ctx.isolation.ownerReleased(route)) return false;\n', replace: '' }],
    modes: ['backup'],
    promise: '1',
    what: 'a write picks a new backup, and counts, while its former backup went silent a moment ago (and may be taken over from on the other side)',
  },
  {
    id: 'adopt-keeps-backup-role',
    file: 'copies.ts',
    find: "  e.role = 'primary';\n  e.owner = route;\n  e.epoch += PAST_A_SILENT_OWNER;",
    replace: '  e.owner = route;\n  e.epoch += PAST_A_SILENT_OWNER;',
    // adopt() serves backup mode's takeover and anti-entropy only.
    modes: ['backup'],
    promise: '3, 5',
    what: 'an adopted session keeps the backup role: owner = self, role backup',
  },
  {
    id: 'expiry-leaves-no-trace',
    file: 'session-table.ts',
    find: '    this.#trace(e.base, e, e.expire + EXPIRY_TRACE_MS);\n',
    replace: '\n',
    modes: both,
    promise: '1',
    what: 'a copy that expired on a clock ahead leaves no trace: an older copy elsewhere is taken over (seed 592)',
  },
  {
    id: 'reconcile-ignores-expiry',
    file: 'backup-manager.ts',
    find: '      dropOutlived: (base, replies, e) => this.dropOutlived(base, replies, e),',
    replace: '      dropOutlived: () => false,',
    modes: ['backup'],
    promise: '1',
    what: "anti-entropy verifies or adopts a copy older than one that expired elsewhere (seeds 7927, 58)",
  },
  {
    id: 'delta-resync-ignores-expiry',
    file: 'delta-manager.ts',
    find: '          if (this.dropOutlived(base, replies, e)) return;',
    replace: '          if (replies.length < 0) return;',
    modes: ['delta'],
    promise: '1',
    what: 'a member back from a partition verifies its copy older than one that expired elsewhere (seed 67)',
  },
  {
    id: 'destruction-without-clock-margin',
    file: 'session-table.ts',
    find: '  return expire + EXPIRY_TRACE_MS;',
    replace: '  return expire;',
    modes: both,
    promise: '2',
    what: "a destruction fences only until the session's latest expiry by the destroyer's clock: a copy kept by a clock behind is served after the heal (delta seed 38101)",
  },
  {
    id: 'failed-write-served',
    file: 'backup-manager.ts',
    find: "      if (outcome === 'failed') e.unverified = true;",
    replace: '      void outcome;',
    modes: ['backup'],
    promise: '4',
    what: 'after a failed write its holders could not be sent again, the primary serves the older content while a backup it cannot reach keeps the failed write (backup seed 58171)',
  },
  {
    id: 'delta-failed-write-served',
    file: 'delta-manager.ts',
    find: '      this.#unsynced.add(e.base);\n      e.unverified = true;',
    replace: '      this.#unsynced.add(e.base);',
    modes: ['delta'],
    promise: '4',
    what: 'after a failed write the members could not be sent again, the owner serves the older content while members it cannot reach keep the failed write (short-ack, delta seeds 16 and 22)',
  },
  {
    id: 'delta-claim-served-early',
    file: 'delta-manager.ts',
    find: '    mine.unverified = true;\n    this.table.set(mine);',
    replace: '    this.table.set(mine);',
    modes: ['delta'],
    promise: '4',
    what: 'a takeover of its own is served before every member has the new copy, while a member that did not answer keeps a failed write (delta seed 565)',
  },
  {
    id: 'adopt-past-moved-owner',
    file: 'backup/anti-entropy.ts',
    find: 'if (replies.some((x) => isMoveTrace(x.r) && olderOwnership(e.epoch, e.owner, x.r.epoch, x.r.owner))) {',
    replace: 'if (replies.length < 0) {',
    modes: ['backup'],
    promise: '1',
    what: 'a copy whose owner let the session go to a newer owner is adopted when that owner is out of reach here, its acknowledged writes lost (backup seed 1194)',
  },
  {
    id: 'delta-stale-grant-claimed',
    file: 'delta-manager.ts',
    find: 'if (now !== undefined && olderOwnership(reply.copy.epoch, reply.copy.owner, now.epoch, now.owner)) {',
    replace: 'if (now !== undefined && now.epoch < 0) {',
    modes: ['delta'],
    promise: '1',
    what: "a takeover claims at the epoch of a grant given again, older than the copy the taker holds; a state transfer spreads the newer copy over the writes acknowledged at the older epoch (delta seed 41530)",
  },
  {
    id: 'expired-mid-read-unavailable',
    file: 'replicator.ts',
    find: 'if (this.#expiredAsOurs(base)) return undefined;',
    replace: '',
    modes: both,
    promise: '3',
    what: 'a session that expires here between its takeover and the read answers 503 ("moved while this request ran"), not "no session" (delta seed 64)',
  },
  {
    id: 'equal-expiry-trace-ignored',
    file: 'copies.ts',
    find: 'compareHeld(x, top) >= 0) ? x : undefined;',
    replace: 'compareHeld(x, top) > 0) ? x : undefined;',
    modes: both,
    promise: '3',
    what: "an expiry trace equal to the copy a taker holds (the holder's clock ahead) is not taken as the end: the owner has nothing to grant, 503 (delta seed 36)",
  },
  {
    id: 'delta-ended-copy-not-asked-again',
    file: 'delta-manager.ts',
    find: 'if (waits < 2) return this.#takeOver(base, waits + 1);\n        throw this.unavailable(base, `${held.m.route} let the session go',
    replace: 'throw this.unavailable(base, `${held.m.route} let the session go',
    modes: ['delta'],
    promise: '3',
    what: 'a holder whose copy ended between the survey and the fetch answers it with nothing, and the takeover answers 503 instead of asking everyone again (delta seed 347)',
  },
  {
    id: 'delta-ended-owner-not-asked-again',
    file: 'delta-manager.ts',
    find: 'if (reply.movedTo === null && waits < 2) return this.#takeOver(base, waits + 1);',
    replace: '',
    modes: ['delta'],
    promise: '3',
    what: 'an owner whose copy ended between the survey and the take answers it with nothing, and the takeover answers 503 instead of asking everyone again (delta seed 493)',
  },
  {
    id: 'expired-mid-write-copies-kept',
    file: 'replicator.ts',
    find: '(fresh || this.#expiredAsOurs(base))',
    replace: 'fresh',
    // Backup mode takes the copy over as the failed write taking effect, a later expiry with it: an
    // outcome a failed write allows (an aimed nemesis, tried and not kept, served it so), not a 503.
    modes: ['delta'],
    promise: '3',
    what: "a session that expires at its owner while a write is on its way keeps the failed write's copies on the holders, answered 503 until the write's later expiry (delta seed 278)",
  },
  {
    id: 'delta-grant-nothing-held-as-installed',
    file: 'delta-manager.ts',
    find: "if (r.removed || (r.owner !== '' && r.epoch >= epoch)",
    replace: "if (r.removed || r.owner === '' || r.epoch >= epoch",
    modes: ['delta'],
    promise: '5',
    what: 'a grant whose taker holds nothing is taken as installed: a take that waited in a one-way cut is granted after its taker gave up, and the session has no owner (delta seed 2310)',
  },
  {
    id: 'timed-out-take-not-asked-again',
    file: 'backup/takeover.ts',
    find: "err.code === 'ERR_REQUEST_TIMEOUT' && !retriedTake",
    replace: "err.code === 'ERR_REQUEST_TIMEOUT' && retriedTake",
    modes: ['backup'],
    promise: '3',
    what: 'a take that timed out while its grant was on a slow link answers 503 for a live session, with no fault left (backup seed 23863)',
  },
  {
    id: 'backup-copy-let-go-before-taker-protected',
    file: 'backup/anti-entropy.ts',
    find: "if (e.role !== 'primary' && !this.#keptElsewhere(newerOwner?.r.backup)) {",
    replace: "if (e.role !== 'primary' && !installed) {",
    modes: ['backup'],
    promise: '3',
    what: "an old backup lets its copy go as soon as a taker holds the session, before the taker's copies are out; the taker and its grantor die together and the session is gone (backup seed 5044)",
  },
  {
    id: 'delta-timed-out-take-not-asked-again',
    file: 'delta-manager.ts',
    find: "err.code !== 'ERR_REQUEST_TIMEOUT') throw err;\n          reply = await take();",
    replace: "err.code !== 'ERR_REQUEST_TIMEOUT' || reply === undefined) throw err;\n          reply = await take();",
    modes: ['delta'],
    promise: '3',
    what: "a take that timed out while the owner's grant was on a slow link answers 503 for a live session, with no fault left (delta seed 26798)",
  },
  {
    id: 'delta-whole-copy-not-resent',
    file: 'delta-manager.ts',
    find: "err.code !== 'ERR_REQUEST_TIMEOUT') throw err;\n      return this.sendCopy(m, full);",
    replace: "err.code !== 'ERR_REQUEST_TIMEOUT' || full.base !== '') throw err;\n      return this.sendCopy(m, full);",
    modes: ['delta'],
    promise: '3',
    what: "a takeover's claim behind a slow message on its connection fails, and the session is 503 with no fault left (delta seed 26798)",
  },
  {
    id: 'copy-older-than-expired-installed',
    file: 'copies.ts',
    find: 'if (ended !== undefined && compareHeld(c, ended) < 0) return',
    replace: 'if (ended !== undefined && compareHeld(c, ended) < -Infinity) return',
    modes: ['delta', 'backup'],
    promise: '1',
    what: 'a copy older than one that expired here is installed: its owner, back from a cut, reads the OK as no newer owner anywhere and serves its stale copy again (delta seed 57635)',
  },
];
