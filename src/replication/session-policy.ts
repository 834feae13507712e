/**
 * What the application decides about every session, applied to each write before it is replicated:
 * whose it is (option `principal`, read from the merged values, so a concurrent request that did not
 * touch the user keeps it) and when it must end (`absoluteMaxAge` after creation, however active).
 * Pure: the replicator calls it under the session's lock.
 */
import type { SessionDeltaMessage } from '../codec/messages.js';
import type { SessionData } from '../codec/types.js';
import type { WritePlan } from './write-plan.js';
import { setOwn } from './session-value.js';

export interface SessionPolicy {
  /** Whose session it is; undefined (or '') for nobody's. */
  principal?: (session: SessionData) => string | number | undefined;
  /** A session ends this many ms after its creation, whatever its idle expiry says. */
  absoluteMaxAge?: number;
}

/** The principal of `values` under `policy`: a non-empty string (a numeric id becomes one), or undefined. */
export function principalOf(policy: SessionPolicy, values: SessionData): string | undefined {
  if (policy.principal === undefined) return undefined;
  const p: unknown = policy.principal(values);
  if (typeof p === 'number' && Number.isFinite(p)) return String(p);
  return typeof p === 'string' && p.length > 0 ? p : undefined;
}

/** The session's values once a planned write applied: `current` with the keys the write sends taken from `written`. */
export function mergedValues(current: SessionData, written: SessionData, message: SessionDeltaMessage): SessionData {
  const out: SessionData = { ...current };
  for (const { key } of message.set) setOwn(out, key, written[key]);
  for (const key of message.removed) delete out[key];
  return out;
}

/**
 * Stamps the planned entry and its message with the session's creation time (kept from the current
 * entry, or `now` for a new one), its principal (of `values`, the session after the write), and an expiry no later than `createdAt +
 * absoluteMaxAge`: the expiry travels with every write, so every copy ends the session then.
 */
export function applyPolicy(plan: WritePlan, policy: SessionPolicy, now: number, values: SessionData): void {
  const { next, message } = plan;
  const createdAt = next.createdAt ?? now;
  next.createdAt = createdAt;
  next.principal = principalOf(policy, values);
  if (policy.absoluteMaxAge !== undefined) next.expire = Math.min(next.expire, createdAt + policy.absoluteMaxAge);
  message.expire = next.expire;
  message.createdAt = createdAt;
  message.principal = next.principal ?? '';
}
