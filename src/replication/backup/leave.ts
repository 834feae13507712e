/**
 * Graceful leave: peers first move the copies we hold for them, then each of our sessions is granted
 * to the member that holds its backup, which makes it its own and gives it a new backup. And the other
 * side of it: a leaving member hands us one of its sessions.
 */
import type { MemberInfo } from '../../cluster/types.js';
import { messages, type SessionCopy } from '../../codec/messages.js';
import { owners } from '../../ring/index.js';
import { backupList } from '../backups.js';
import { fence, installGranted, toCopy } from '../copies.js';
import { MSG } from '../message-types.js';
import { shortId } from '../session-id.js';
import type { BackupContext } from './context.js';
import type { Reprotection } from './reprotection.js';

/** Hands every session this member owns to its heir; resolves when each was handed off or failed. */
export async function handOffAll(ctx: BackupContext, protection: Reprotection): Promise<void> {
  const peers = ctx.channel.members();
  await Promise.allSettled(
    peers.map((m) => ctx.channel.request(m.id, MSG.leaving, Buffer.alloc(0), { timeoutMs: ctx.options.stateTransferTimeout })),
  );
  const queue = ctx.table.entries().filter((e) => e.role === 'primary' && e.owner === ctx.route);
  let handed = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    for (let e = queue.shift(); e !== undefined; e = queue.shift()) {
      const base = e.base;
      await ctx.locks.run(base, async () => {
        const entry = ctx.table.get(base);
        if (entry === undefined || entry.role !== 'primary' || entry.owner !== ctx.route) return;
        const live = ctx.liveRoutes().filter((r) => r !== ctx.route); // not those leaving too
        // A backup inherits it (it holds this version already); else the ring's first.
        const holder = backupList(entry.backup).find((r) => live.includes(r));
        const heir = ctx.memberByRoute(holder ?? owners(base, live)[0] ?? '');
        if (heir === undefined) {
          failed++;
          return;
        }
        const granted = { ...toCopy(entry), owner: heir.route, epoch: entry.epoch + 1 };
        try {
          const reply = await ctx.requestApply(heir, MSG.handoff, messages.copy.encode(granted));
          if (reply.status === 'OK') {
            ctx.table.moved(base, granted.epoch, heir.route);
            handed++;
          } else failed++;
        } catch (err) {
          failed++;
          ctx.log.warn({ err, session: shortId(base), heir: heir.route }, 'hand-off failed; the session keeps its backup copy');
        }
      });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  protection.stop();
  ctx.log.info({ handed, failed }, 'graceful leave: sessions handed off');
}

/** A leaving member grants us one of its sessions: we make it ours and give it a backup. */
export async function acceptHandoff(ctx: BackupContext, protection: Reprotection, from: MemberInfo, c: SessionCopy): Promise<Buffer> {
  await ctx.schemas.learn(c.entries, from);
  return ctx.locks.run(c.base, async () => {
    const stale = fence(ctx.table, c.base, c.epoch, c.owner);
    if (stale !== undefined) return messages.applyReply.encode(stale);
    const e = installGranted(ctx.table, c);
    await protection.protectEntry(e);
    return messages.applyReply.encode({ status: 'OK', epoch: 0, owner: '' });
  });
}
