/**
 * Where a session's backup belongs: the first live member other than the primary in the ring's order
 * for its base. Any member computes it alike, so no location is ever broadcast.
 */
import type { MemberInfo } from '../../cluster/types.js';
import { backupFor } from '../../ring/index.js';
import type { BackupContext } from './context.js';

/** The member that should hold `base`'s backup now, if any other is live. */
export function backupTarget(ctx: BackupContext, base: string): MemberInfo | undefined {
  const route = backupFor(base, ctx.route, ctx.liveRoutes());
  return route === undefined ? undefined : ctx.memberByRoute(route);
}
