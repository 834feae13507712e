/**
 * The taker's side of a takeover: a request for a session this member does not serve. It asks every
 * live member where the session is (a copy may sit off its ring position after joins and failures),
 * asks the owner to grant it (or, when the owner is gone or disowned it, the member with the best
 * copy), installs the granted copy as its primary, gives it a backup, and has every former holder
 * drop its copy before the session is served.
 */
import type { MemberInfo } from '../../cluster/types.js';
import { messages } from '../../codec/messages.js';
import { ClusterRequestError } from '../../errors.js';
import { adopt, compareHeld, destroyCovers, expiredPast, fence, installGranted } from '../copies.js';
import { describeReplies } from '../member-core.js';
import { MSG } from '../message-types.js';
import { fenceUntil, type SessionEntry } from '../session-table.js';
import { shortId } from '../session-id.js';
import { backupList } from '../backups.js';
import type { BackupContext } from './context.js';
import type { Grants } from './grant.js';
import type { Reprotection } from './reprotection.js';

const MAX_HOPS = 5;
/** Times a takeover waits for a gone owner's promises to run out before it answers 503. */
const MAX_RELEASE_WAITS = 2;

/**
 * Makes this member the primary of `base`. Resolves false only when the session surely exists nowhere;
 * throws `SessionUnavailableError` when that cannot be told now. Called with the session's lock held.
 */
export async function takeOver(ctx: BackupContext, protection: Reprotection, grants: Pick<Grants, 'grantedTo'>, base: string): Promise<boolean> {
  let force: string | undefined;
  let mine: SessionEntry | undefined;
  /** The member whose grant made it ours: it kept the data as a copy of ours. */
  let grantedBy: MemberInfo | undefined;
  let holders: MemberInfo[] = [];
  let askedAfterMove = false;
  let waits = 0;
  let retriedTake = false;
  // Every step waits on the network under the session's lock: the whole takeover is bounded, so the
  // requests queued behind it (each waits at most 2 ackTimeouts for the lock) are answered.
  let deadline = ctx.clock.monotonic() + 3 * ctx.options.ackTimeout;
  for (let hop = 0; hop < MAX_HOPS + waits && mine === undefined; hop++) {
    if (ctx.clock.monotonic() > deadline) throw ctx.unavailable(base, 'the takeover took too long');
    // Each hop waits on the network: a majority seen when the request came may be gone by now.
    if (!ctx.isolation.hasQuorum()) throw ctx.unavailable(base, 'this member lost the majority of the cluster during a takeover');
    // Answers given while this member was paused (or its lease lapsed) may predate a takeover by the
    // others: such a survey verifies nothing.
    const marks = ctx.unverifiedMarks();
    const { replies, failed, gone, promised } = (await ctx.survey([base])).get(base)!;
    ctx.log.debug({ session: shortId(base), hop, failed, replies: describeReplies(replies) }, 'takeover: where the session is');
    // A member that did not answer may hold a newer copy, or the tombstone of a logout.
    if (failed > 0) {
      // A member that just died (its connection reset) is removed in milliseconds: ask again once the
      // verdict is in, rather than answer 503 to the first request after a crash.
      if (hop < 2) {
        await ctx.waitForVerdict(Math.min(250, ctx.options.dropTime / 4));
        continue;
      }
      throw ctx.unavailable(base, `${failed} member(s) did not answer where the session is`);
    }
    holders = replies.filter((x) => x.r.found || x.r.removed).map((x) => x.m);
    const local = ctx.table.get(base);
    const removed = ctx.newestRemoval(base, replies);
    const held = replies.filter((x) => x.r.found).sort((a, b) => compareHeld(b.r, a.r) || Number(b.r.primary) - Number(a.r.primary));
    const best = held[0];
    const localBest = local !== undefined && (best === undefined || compareHeld(local, best.r) >= 0);
    const top = localBest ? local : best?.r;
    // Destroyed by its owner (or a later one) than every copy found: it stays destroyed.
    if (removed !== undefined && (top === undefined || destroyCovers(removed.epoch, top.epoch))) {
      ctx.table.destroy(base, removed.epoch, removed.owner, fenceUntil(ctx.clock.now() + 2 * ctx.options.dropTime));
      return false;
    }
    // A copy newer than every one found expired (by its holder's clock, which may run ahead of the
    // others'): the session has ended. What is found is its past (a stray its owner could not reach to
    // drop), never served: it lacks the writes after it. "No session", as when every copy is gone.
    const expired = expiredPast(ctx.table, base, replies.map((x) => x.r), top);
    if (expired !== undefined) {
      if (!askedAfterMove && gone > 0) {
        askedAfterMove = true; // the answers may be as old as the wait for the removed member
        continue;
      }
      // With more members out of reach than copies cover, a newer copy may live on them.
      if (!ctx.isolation.settled() || ctx.isolation.unreachable() > (ctx.options.backups ?? 1)) {
        throw ctx.unavailable(base, 'a copy of it expired, and some members that may hold a newer one cannot be asked now');
      }
      ctx.table.outlived(base, expired);
      return false;
    }
    if (top === undefined) {
      // A holder (this member too) let it go to a newer owner that answered before it installed the
      // session (answers are not one instant): the new owner holds it by now, ask again once. So too
      // when the survey waited for a member until it was removed: the others answered as long ago (a
      // taker's "not held" given before its grant arrived).
      const letGo = ctx.table.tombstone(base)?.kind === 'moved' || replies.some((x) => !x.r.found && !x.r.removed && x.r.owner !== '');
      if (!askedAfterMove && (letGo || gone > 0)) {
        askedAfterMove = true;
        continue;
      }
      // Every session has `backups` + 1 copies on distinct members: with at most `backups` members out of
      // reach, one of them answered if it exists. With more (a partition, or failures beyond what the
      // copies cover), it may be on them.
      if (!ctx.isolation.settled() || ctx.isolation.unreachable() > (ctx.options.backups ?? 1)) {
        throw ctx.unavailable(base, 'not found on the members that answered, and some members cannot be asked now');
      }
      return false;
    }
    if (localBest && local.role === 'primary' && local.owner === ctx.route) {
      // Checked after a possible cut-off: nobody took it over meanwhile. Served once it has a live
      // backup holding it as held here; else (none, or a failed write not yet sent again) it is
      // protected (and strays dropped) first, as a takeover would.
      const backups = backupList(local.backup);
      if (backups.length > 0 && local.resync !== true && backups.every((r) => ctx.memberByRoute(r) !== undefined)) {
        if (marks !== ctx.unverifiedMarks()) continue; // asked again
        ctx.verified(local, marks);
        return true;
      }
      mine = local;
      break;
    }
    const owner = top.owner === ctx.route ? undefined : ctx.memberByRoute(top.owner);
    if (owner === undefined && top.owner !== ctx.route && (ctx.ownerMayServe(top.owner) || promised.has(top.owner))) {
      // A killed owner's sessions are released a lease after its last answer: one slow request, not 503s.
      const waitedFrom = ctx.clock.monotonic();
      if (waits < MAX_RELEASE_WAITS && (await ctx.awaitRelease(top.owner, promised))) {
        waits++;
        deadline += ctx.clock.monotonic() - waitedFrom;
        continue;
      }
      throw ctx.unavailable(base, `its owner ${top.owner} may still be serving it (its lease may not have run out, or it was not met yet)`);
    }
    // A live owner is always asked first, under its lock (it may be taking the session over itself
    // right now); only when it answered that it does not hold the session is a copy granted instead.
    const bypass = force === top.owner;
    // Granted by us to that owner a moment ago, and not installed there yet: asking it under our lock
    // would keep out its own take of the grant, should it ask again, and each would wait for the other
    // (backup seeds 50120, 58099). 503 now; the grant's time checks on it.
    if (owner !== undefined && !bypass && localBest && grants.grantedTo(base) === top.owner && !held.some((x) => x.m.route === top.owner && x.r.primary)) {
      throw ctx.unavailable(base, `granted to ${top.owner} a moment ago, and its grant is still on its way`);
    }
    if (owner === undefined || bypass) {
      if (localBest) {
        // The best copy is ours and its owner is gone or disowned it: we are the one to grant it.
        adopt(local, ctx.route);
        mine = local;
        break;
      }
    }
    const grantor = owner !== undefined && !bypass ? owner : best.m;
    const askedAt = ctx.clock.monotonic();
    let reply;
    try {
      reply = messages.takeReply.decode(
        await ctx.channel.request(
          grantor.id,
          MSG.take,
          messages.take.encode({ base, newOwner: ctx.route, timeoutMs: ctx.options.ackTimeout, force: bypass }),
          { timeoutMs: ctx.options.ackTimeout },
        ),
      );
    } catch (err) {
      if (err instanceof ClusterRequestError && ['ERR_NOT_CONNECTED', 'ERR_MEMBER_GONE'].includes(err.code) && hop < MAX_HOPS - 1) {
        await ctx.waitForVerdict(Math.min(250, ctx.options.dropTime / 4)); // it is dying
        continue;
      }
      // The take or its grant was slow (each may be): the grantor may have granted it, and a grant
      // asked for again is given again ("granted before; the answer was lost"), so ask once more while
      // the takeover has time for it, rather than answer 503 for a live session (backup seed 23863).
      if (err instanceof ClusterRequestError && err.code === 'ERR_REQUEST_TIMEOUT' && !retriedTake && ctx.clock.monotonic() + ctx.options.ackTimeout <= deadline) {
        retriedTake = true;
        continue;
      }
      throw ctx.unavailable(base, `${grantor.route} did not grant the takeover`, err);
    }
    if (reply.copy !== null) {
      await ctx.schemas.learn(reply.copy.entries, grantor);
      // The grantor takes the session back once our take's time is surely up (`grant.ts`): a grant
      // whose schemas took longer to learn is not installed, or two members would own it.
      if (ctx.clock.monotonic() - askedAt > ctx.options.ackTimeout) throw ctx.unavailable(base, `the grant from ${grantor.route} came too late to install`);
      const granted = { ...reply.copy, owner: ctx.route };
      if (fence(ctx.table, base, granted.epoch, granted.owner) !== undefined) throw ctx.unavailable(base, 'a newer owner appeared during the takeover');
      mine = installGranted(ctx.table, granted);
      grantedBy = grantor;
    } else if (reply.removed) {
      return false;
    } else if (grantor.route === top.owner) {
      force = top.owner; // the owner does not hold it (restarted, or let it go): ask the best copy
    } else if (reply.movedTo !== null && ctx.memberByRoute(reply.movedTo) === undefined && reply.movedTo !== ctx.route) {
      throw ctx.unavailable(base, `${grantor.route} says ${reply.movedTo} owns it, and this member cannot reach ${reply.movedTo} now`);
    }
  }
  if (mine === undefined) throw ctx.unavailable(base, 'the session kept moving during the takeover');
  ctx.log.info({ session: shortId(base), epoch: mine.epoch }, 'took over session');
  mine.unverified = false;
  // The newest version must be on a backup before the request goes on.
  const protectedBy = await protection.protectEntry(mine);
  if (protectedBy === 'lost') throw ctx.unavailable(base, 'lost the session to a newer owner during the takeover');
  if (protectedBy === 'failed') {
    // No new backup acknowledged it. The grantor kept the data as a copy of ours at this very version:
    // it is the backup for now (re-protection moves it where the ring says). Without one, nothing is
    // dropped: the session must not be served from one copy while others hold it.
    if (grantedBy === undefined || ctx.memberByRoute(grantedBy.route) === undefined) {
      mine.unverified = true;
      throw ctx.unavailable(base, 'took the session over, but no member acknowledged a copy of it');
    }
    mine.backup = grantedBy.route;
  }
  // Every member that held a copy drops it before we serve: a copy left behind would be a stale
  // stray that the other side of a partition could take over. The others are told in passing.
  const backups = backupList(mine.backup);
  const others = ctx.channel.members().filter((m) => !backups.includes(m.route));
  const dropped = await Promise.all(others.filter((m) => holders.includes(m)).map((m) => protection.drop(m, mine)));
  const rest = others.filter((m) => !holders.includes(m));
  // Retried in the background until each has it: a member that missed it may get a stray copy late.
  if (rest.length > 0) void ctx.removals.start({ base, owner: ctx.route, epoch: mine.epoch, destroy: false, until: mine.expire }, rest, true);
  if (dropped.includes(false)) {
    mine.unverified = true; // checked again before it is served
    throw ctx.unavailable(base, 'a former copy holder did not let go of the session');
  }
  return true;
}
