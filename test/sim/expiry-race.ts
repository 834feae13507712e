/**
 * The `expiry-race` nemesis (features.ts): a member that missed a session's last writes comes back
 * while the newest copies have expired on clocks ahead and its own older copy lives on by a clock
 * behind, and gets requests for that session in that window.
 *
 * Each copy ends by its holder's wall clock, and `absoluteMaxAge` gives every version of a session
 * the same end: so the member whose clock is behind keeps an older copy longest. The protocol must
 * never serve that copy (promise 1: it lacks acknowledged writes): an expired copy leaves a trace of
 * its ownership and version (session-table.ts) that takeovers read. Without this fault the sweep
 * never made that history in delta mode (`expiry-leaves-no-trace` survived 3,000 delta seeds).
 *
 * The steps: pick a client's session with enough life left; step the clocks so that one of its
 * holders (its owner or a copy holder) runs behind every other member by 1.2-2.5 s (an NTP step; the
 * checker's clock slack follows); cut that member off long enough to be removed while the session is
 * written on the other side (by its owner there, or by a member that takes it over); heal so that it
 * is back around the moment the newest copies expire on the others; kill the session's owner (unless
 * it is that member) as they expire (a stray copy is served only by a takeover, which must read the
 * traces of the newest copies, and a live owner would refuse to hand it over); and read
 * the session at that member (mostly) and at the others until its own copy has expired too.
 *
 * With `expiry-destroy`, half the races destroy the session (logout or regenerate) on the far side
 * during the cut and heal only after the newest copies' end: the destruction's tombstones, and its
 * removal owed to the cut-off member, must outlive the copy its slower clock keeps (delta seed 38101;
 * the mutant `destruction-without-clock-margin`).
 */
import { compareHeld } from '../../src/replication/copies.js';
import { parseSessionId } from '../../src/replication/session-id.js';
import type { ClockSkew } from './loop.js';
import type { Client } from './clients.js';
import type { SimMember } from './member.js';
import type { Prng } from './prng.js';

/** What the nemesis needs of the schedule (world.ts). */
export interface RaceWorld {
  now(): number;
  plan: Prng;
  dropTime: number;
  /** How long a cut-off member takes to be removed (dropTime + the direct check + margin). */
  removal: number;
  absoluteMaxAge: number;
  clocks: Record<string, ClockSkew>;
  running(): SimMember[];
  clients: readonly Client[];
  prober: Client;
  sleepUntil(t: number): Promise<void>;
  partition(cutOff: SimMember): void;
  heal(): void;
  kill(victim: SimMember): void;
  /** Records the clocks' offsets for the checker's slack (call before and after a step). */
  clockSlack(): void;
  /** The expiry-destroy variant is on (drawn only then: the other schedules replay unchanged). */
  destroy: boolean;
  /** The expiry-resend variant is on (drawn only then, as `destroy`). */
  resend: boolean;
  note(line: string): void;
  trace(line: string): void;
  cover(what: string): void;
}

/** What happened, for the caller's checkpoint and restart. */
export interface RaceOutcome {
  /** The member killed as the newest copies expired (to restart), if any. */
  killed?: SimMember;
  /** The cut-off member, when the race ran. */
  stale?: SimMember;
}

/** The member serving `base` now (its owner), if a running one does. */
function ownerOf(members: readonly SimMember[], base: string): SimMember | undefined {
  return members.find((m) => {
    const e = m.manager.table.get(base);
    return e !== undefined && e.role === 'primary' && e.owner === m.route;
  });
}

/** Real (simulated) time at which `m`'s wall clock reaches `wall`. */
function whenClockReads(w: RaceWorld, m: SimMember, wall: number): number {
  return w.now() + (wall - m.manager.table.now());
}

interface Target {
  client: Client;
  cookie: string;
  base: string;
  /** The session's absolute end, wall ms (every copy holds it: `createdAt + absoluteMaxAge`). */
  end: number;
  owner: SimMember;
}

/** A client's session, owned by a running member, with at least `need` ms of life left (the least such). */
function findTarget(w: RaceWorld, need: number): Target | undefined {
  const live = w.running();
  const found: Target[] = [];
  for (const client of w.clients) {
    const id = parseSessionId(client.cookie);
    if (client.cookie === undefined || id === undefined) continue;
    const owner = ownerOf(live, id.base);
    const e = owner?.manager.table.get(id.base);
    if (owner === undefined || e?.createdAt === undefined) continue;
    const end = e.createdAt + w.absoluteMaxAge;
    if (whenClockReads(w, owner, end) - w.now() < need) continue;
    found.push({ client, cookie: client.cookie, base: id.base, end, owner });
  }
  return found.sort((a, b) => whenClockReads(w, a.owner, a.end) - whenClockReads(w, b.owner, b.end))[0];
}

export async function expiryRace(w: RaceWorld): Promise<RaceOutcome> {
  const { plan, dropTime } = w;
  // Cut off long enough to be removed and to miss writes, then back about a drop time (its recovery)
  // before the newest copies expire.
  const need = w.removal + 1500 + dropTime + 1000;
  const give = w.now() + 8000;
  let target = findTarget(w, need);
  while (target === undefined && w.now() < give) {
    await w.sleepUntil(w.now() + plan.range(100, 400));
    target = findTarget(w, need);
  }
  if (target === undefined) {
    w.note('no session with enough life left within 8 s');
    return {};
  }
  // Its client keeps it (no logout) until the race is over, and it is left to run to its end first.
  target.client.keep = true;
  await w.sleepUntil(Math.max(w.now(), whenClockReads(w, target.owner, target.end) - need - plan.range(0, 1000)));
  const owner = ownerOf(w.running(), target.base);
  if (owner === undefined || w.running().length < 3) {
    target.client.keep = false;
    w.note(`no owner of ${target.base.slice(0, 6)} to race with`);
    return {};
  }
  const { base, end } = target;
  // The member that will miss the last writes: the owner (the others take the session over while it is
  // cut off) or another holder of a copy.
  const holders = w.running().filter((m) => m !== owner && m.manager.table.get(base) !== undefined);
  // (expiry-resend: always the owner, whose failed write it resends.)
  const stale = plan.chance(0.5) || w.resend || holders.length === 0 ? owner : plan.pick(holders);
  // expiry-destroy (half the races while on): the session is destroyed on the far side during the cut,
  // and the member is back only after the newest copies' end, when a destruction that fenced only until
  // then has ended on the others (and its removal, owed to this member, was given up), yet early enough
  // to serve its copy (which lives on by its clock) after its recovery. Tombstones end on the second
  // after their time: the gap is wider then, to leave that window.
  const destroying = w.destroy && plan.chance(0.5);
  // Its clock steps behind every other member's by `gap`.
  const gap = destroying ? plan.range(2800, 3800) : plan.range(1200, 2500);
  w.clockSlack();
  for (const m of w.running()) w.clocks[m.route].offset = m === stale ? -gap / 2 : gap / 2 + plan.range(0, 100);
  w.clockSlack();
  const fast = () => Math.max(...w.running().filter((m) => m !== stale).map((m) => whenClockReads(w, m, end)));
  const tFast = fast();
  // Its copy ends at the session's end, or sooner by maxAge (from the last write it got).
  const tSlow = whenClockReads(w, stale, Math.min(end, stale.manager.table.get(base)?.expire ?? end));
  if (tSlow <= tFast + dropTime / 2) {
    target.client.keep = false;
    w.note(`no expiry race on ${base.slice(0, 6)}: ${stale.route}'s copy would end by maxAge first`);
    return {};
  }
  const destroyAt = destroying ? w.now() + w.removal + plan.range(200, 800) : undefined;
  // Back a drop time (its recovery, after which it pulls the state and checks its copies) before the
  // newest copies expire, or up to half the window later: what it pulls then lacks the session.
  const healAt =
    destroyAt !== undefined
      ? Math.max(destroyAt + 1500, tFast + 1000 + plan.range(20, Math.max(50, tSlow - tFast - 1000 - dropTime - 600)))
      : Math.max(w.now() + w.removal + 1000, tFast - dropTime + plan.range(100, (tSlow - tFast) / 2));
  w.note(
    `expiry race on ${base.slice(0, 6)} (owner ${owner.route}): ${stale.route}'s clock ${Math.round(gap)} ms behind the others, cut off until ${Math.round(healAt - w.now())} ms from now; newest copies end in ${Math.round(tFast - w.now())} ms, ${stale.route}'s in ${Math.round(tSlow - w.now())} ms${destroyAt === undefined ? '' : `; destroyed on the far side in ${Math.round(destroyAt - w.now())} ms`}`,
  );
  w.trace(`NEMESIS expiry race ${base.slice(0, 6)}: ${stale.route} behind by ${Math.round(gap)}ms, cut off`);
  w.partition(stale);
  target.client.avoid = stale;
  // expiry-resend: a write reaches the owner the instant it is cut off. No holder acknowledges it: it
  // fails, and the owner resends its copy whole once back, while the newest copies end on the far
  // side; a holder whose newest copy has expired must refuse the older one (delta seed 57635).
  if (w.resend && stale === owner && target.client.write(stale) !== undefined) {
    w.trace(`NEMESIS expiry race: a write of ${base.slice(0, 6)} at ${stale.route} as it is cut off`);
    w.cover('expiry race: a write at the owner as it was cut off (expiry-resend)');
  }
  if (destroyAt !== undefined) {
    await w.sleepUntil(destroyAt);
    const far = w.running().filter((m) => m !== stale && m.ready);
    if (far.length > 0) {
      const kind = plan.chance(0.5) ? 'logout' : 'regenerate';
      w.trace(`NEMESIS expiry race: ${kind} of ${base.slice(0, 6)} while ${stale.route} is cut off`);
      if (target.client.end(kind, plan.pick(far)) !== undefined) w.cover('expiry race: the session destroyed while the member was cut off (expiry-destroy)');
    }
  }
  // Its user goes idle shortly before the heal (a write after it would bring the member back up to date):
  // the session is left to expire.
  await w.sleepUntil(healAt - plan.range(0, 600));
  target.client.idleUntil = tSlow + 500;
  await w.sleepUntil(healAt);
  target.client.avoid = undefined;
  const mine = stale.manager.table.get(base);
  const newest = w
    .running()
    .filter((m) => m !== stale)
    .map((m) => m.manager.table.get(base))
    .filter((e) => e !== undefined)
    .sort((a, b) => compareHeld(b, a))[0];
  if (mine !== undefined && newest !== undefined && compareHeld(newest, mine) > 0) w.cover('expiry race: the member cut off missed writes');
  w.trace('NEMESIS heal');
  w.heal();
  const outcome: RaceOutcome = { stale };
  // The owner on the other side, killed as its copy expires: a stray copy is then served only through
  // a takeover (which must read the traces of the newest copies).
  const current = ownerOf(w.running(), base);
  const killAt = current !== undefined && current !== stale ? tFast + plan.range(0, (tSlow - tFast) / 3) : undefined;
  // Reads of the session until the stale copy has expired too, mostly at the member that was cut off.
  while (w.now() < tSlow + 300) {
    await w.sleepUntil(w.now() + plan.range(100, 350));
    if (killAt !== undefined && outcome.killed === undefined && w.now() >= killAt && current!.phase === 'running') {
      w.trace(`NEMESIS crash ${current!.proc.name} (its copy of ${base.slice(0, 6)} expired)`);
      w.kill(current!);
      outcome.killed = current;
    }
    const targets = w.running().filter((m) => m.ready);
    if (targets.length === 0) continue;
    const at = stale.phase === 'running' && plan.chance(0.7) ? stale : plan.pick(targets);
    const cookie = target.client.cookie !== undefined && parseSessionId(target.client.cookie)?.base === base ? target.client.cookie : target.cookie;
    w.prober.probe(at, cookie, 2500);
  }
  target.client.keep = false;
  const e = stale.manager.table.get(base);
  w.cover(e === undefined ? 'expiry race: the stale copy ended' : 'expiry race: the stale copy outlived the window');
  w.cover('expiry race: a member back with an older copy while the newest expired (expiry-race)');
  return outcome;
}
