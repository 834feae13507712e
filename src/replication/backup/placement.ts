/**
 * Where a session's backups belong: `backups` (option, default 1) live members other than the primary,
 * in the ring's order for its base, over distinct zones first (`ring/placement.ts`). Any member
 * computes it alike, so no location is ever broadcast. Members that are leaving hold no new copy.
 */
import type { MemberInfo } from '../../cluster/types.js';
import { backupsFor, type Placed } from '../../ring/index.js';
import type { BackupContext } from './context.js';

/** How many backups a session should have. */
export function wantedBackups(ctx: BackupContext): number {
  return ctx.options.backups ?? 1;
}

/** This member and the live ones (not leaving), as placement sees them. */
function placed(ctx: BackupContext): { self: Placed; members: MemberInfo[] } {
  const live = new Set(ctx.liveRoutes());
  const members = ctx.channel.members().filter((m) => live.has(m.route));
  return { self: { route: ctx.route, ...(ctx.options.zone !== undefined ? { zone: ctx.options.zone } : {}) }, members };
}

/** The routes that should hold `base`'s backups now (fewer than wanted when fewer members live). */
export function backupRoutes(ctx: BackupContext, base: string): string[] {
  const { self, members } = placed(ctx);
  return backupsFor(base, self, members, wantedBackups(ctx));
}

/** The members that should hold `base`'s backups now. */
export function backupTargets(ctx: BackupContext, base: string): MemberInfo[] {
  const { self, members } = placed(ctx);
  const routes = backupsFor(base, self, members, wantedBackups(ctx));
  return routes.map((r) => members.find((m) => m.route === r)!);
}
