/**
 * The context of one backup phase (`AntiEntropy`, `Grants`) for a test that drives that phase alone:
 * the session table and the lock are real, this member is `d`, and what it learns from the cluster
 * (members, answers, isolation) is the test's, given as the network would bring it.
 */
import pino from 'pino';
import type { BackupContext } from '../../src/replication/backup/context.js';
import type { Clock } from '../../src/replication/clock.js';
import { KeyLock } from '../../src/replication/key-lock.js';
import type { SessionEntry, SessionTable } from '../../src/replication/session-table.js';

export function phaseContext(table: SessionTable, clock: Clock, cluster: Record<string, unknown>): BackupContext {
  // No pause or lost lease unless the test marks one: a check clears a session's mark.
  const verification = { unverifiedMarks: () => 0, verified: (e: SessionEntry) => (e.unverified = false) };
  return { route: 'd', table, clock, locks: new KeyLock({ clock }), log: pino({ level: 'silent' }), ...verification, ...cluster } as unknown as BackupContext;
}

/** A clock standing still at `now` (wall) and `monotonic`, whose timers never fire: the test drives time. */
export function stillClock(now: number, monotonic = 1_000_000): Clock {
  return {
    now: () => now,
    monotonic: () => monotonic,
    setTimeout: () => undefined,
    clearTimeout: () => undefined,
    setInterval: () => undefined,
    clearInterval: () => undefined,
  };
}
