/**
 * What the phases of backup mode (placement, the write's fan-out, takeover, re-protection,
 * anti-entropy, graceful leave) need from the member they run in: its table, locks, channel and
 * isolation, and the copy-holding helpers every mode shares. `BackupManager` builds one and hands it
 * to each phase, so a phase owns its own fields and reaches the rest only through this.
 */
import type { Logger } from 'pino';
import type { ClusterChannel, MemberInfo } from '../../cluster/types.js';
import type { ApplyReply } from '../../codec/messages.js';
import type { SessionUnavailableError, StaleOwnerError } from '../../errors.js';
import type { Clock } from '../clock.js';
import type { FullMembers } from '../capacity.js';
import type { ReplicationMetrics, ReplicatorOptions, Survey } from '../member-core.js';
import type { Isolation } from '../isolation.js';
import type { KeyLock } from '../key-lock.js';
import type { RemovalQueue } from '../removal-queue.js';
import type { SchemaSync } from '../schema-sync.js';
import type { SessionEntry, SessionTable } from '../session-table.js';

export interface BackupContext {
  readonly route: string;
  readonly table: SessionTable;
  readonly channel: ClusterChannel;
  readonly locks: KeyLock;
  readonly isolation: Isolation;
  readonly options: ReplicatorOptions;
  readonly clock: Clock;
  readonly log: Logger;
  readonly removals: RemovalQueue;
  readonly schemas: SchemaSync;
  readonly counters: ReplicationMetrics;
  /** Members that refused a copy for capacity a moment ago (`capacity.ts`). */
  readonly fullMembers: FullMembers;
  /** Whether this member is leaving (graceful stop): no new work starts. */
  stopping(): boolean;
  /** Routes of the live members, self included, minus those leaving. */
  liveRoutes(): string[];
  memberByRoute(route: string): MemberInfo | undefined;
  unavailable(base: string, why: string, cause?: unknown): SessionUnavailableError;
  staleError(base: string, reply: ApplyReply): StaleOwnerError;
  /** Sends the whole entry to `member` to hold as a copy. */
  sendCopy(member: MemberInfo, e: SessionEntry): Promise<ApplyReply>;
  requestApply(member: MemberInfo, type: string, body: Buffer): Promise<ApplyReply>;
  survey(bases: string[]): Promise<Map<string, Survey>>;
  waitForVerdict(maxMs: number): Promise<void>;
  ownerMayServe(owner: string): boolean;
  /** Waits for a gone owner's promises to run out when that is soon; true when it waited (ask again). */
  awaitRelease(owner: string, promised: ReadonlyMap<string, number>): Promise<boolean>;
  newestRemoval(base: string, replies: Survey['replies']): { epoch: number; owner: string } | undefined;
  /** A point to clear a session's check from later (`verified`): counts the pauses and lost leases so far. */
  unverifiedMarks(): number;
  /** Clears `e`'s check, unless a pause or a lost lease marked every session after `since`. */
  verified(e: SessionEntry, since: number): void;
  /** Drops `e` when a newer copy is known to have expired (logged); true when it did. */
  dropOutlived(base: string, replies: Survey['replies'], e: SessionEntry): boolean;
}
