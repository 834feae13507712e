/**
 * Destroyed sessions whose tombstone some live member has not acknowledged yet. A removal is
 * replicated like a write; the members that did not answer (slow, paused, just joined) are sent it
 * again on every tick until each live member has it, or until the tombstone itself expires. One that
 * waits only for members out of reach is parked, not looked at every tick, until a member comes
 * back (`wake`). A destruction every member of the cluster acknowledged is reported done (`onDone`):
 * no copy it fences is left anywhere, and its tombstones can go.
 */
import type { MemberInfo } from '../cluster/types.js';
import type { ApplyReply, RemoveMessage } from '../codec/messages.js';

interface Pending {
  message: RemoveMessage;
  /** Member ids it must reach; undefined: every live member, those that appear later included. */
  only: Set<string> | undefined;
  /** Member ids that acknowledged. */
  acked: Set<string>;
  /** Retries in flight (one per member at a time). */
  sending: Set<string>;
}

export class RemovalQueue {
  readonly #pending = new Map<string, Pending>();
  /** Keys of `#pending` by session: `cancelDrops` runs for every copy sent, and must not walk them all. */
  readonly #keysByBase = new Map<string, Set<string>>();
  readonly #send: (m: MemberInfo, message: RemoveMessage) => Promise<ApplyReply>;
  readonly #onDone: (message: RemoveMessage) => void;
  /** Waiting only for members out of reach: looked at again when one comes back, or when expired. */
  readonly #parked = new Map<string, Pending>();
  #lastPrune = 0;

  constructor(send: (m: MemberInfo, message: RemoveMessage) => Promise<ApplyReply>, onDone: (message: RemoveMessage) => void = () => undefined) {
    this.#send = send;
    this.#onDone = onDone;
  }

  get size(): number {
    return this.#pending.size + this.#parked.size;
  }

  /** A member came back (or one out of reach was forgotten): what was parked is looked at again. */
  wake(): void {
    for (const [key, p] of this.#parked) this.#pending.set(key, p);
    this.#parked.clear();
  }

  /**
   * Sends `message` to every member of `members`; resolves with each member's outcome (a reply, or the
   * error), and keeps retrying in the background those that did not acknowledge: a destruction to
   * every live member (`onlyThese` false), a drop only to `members`.
   */
  async start(message: RemoveMessage, members: MemberInfo[], onlyThese = false): Promise<Map<MemberInfo, ApplyReply | Error>> {
    const p: Pending = { message, only: onlyThese ? new Set(members.map((m) => m.id)) : undefined, acked: new Set(), sending: new Set() };
    // One destruction per session (a newer one replaces it); drops are kept per session and member.
    const key = onlyThese ? `${message.base} ${[...p.only!].sort().join(',')}` : message.base;
    this.#set(key, p);
    const outcomes = new Map<MemberInfo, ApplyReply | Error>();
    await Promise.all(
      members.map(async (m) => {
        outcomes.set(m, await this.#attempt(p, m));
      }),
    );
    return outcomes;
  }

  async #attempt(p: Pending, m: MemberInfo): Promise<ApplyReply | Error> {
    p.sending.add(m.id);
    try {
      const reply = await this.#send(m, p.message);
      // STALE: that member knows a newer owner; the session lives on there, nothing to repeat.
      p.acked.add(m.id);
      return reply;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    } finally {
      p.sending.delete(m.id);
    }
  }

  /**
   * Forgets the drops of `base` still owed to `memberId`: the owner is about to make it a copy holder
   * again, and a late drop would take the new copy away.
   */
  cancelDrops(base: string, memberId: string): void {
    const keys = this.#keysByBase.get(base);
    if (keys === undefined) return;
    for (const key of [...keys]) {
      const p = (this.#pending.get(key) ?? this.#parked.get(key))!;
      if (p.message.destroy || p.only === undefined || !p.only.has(memberId)) continue;
      p.only.delete(memberId);
      if ([...p.only].every((id) => p.acked.has(id))) this.#delete(key);
    }
  }

  #set(key: string, p: Pending): void {
    this.#parked.delete(key);
    this.#pending.set(key, p);
    let keys = this.#keysByBase.get(p.message.base);
    if (keys === undefined) this.#keysByBase.set(p.message.base, (keys = new Set()));
    keys.add(key);
  }

  #delete(key: string): void {
    const p = this.#pending.get(key) ?? this.#parked.get(key);
    if (p === undefined) return;
    this.#pending.delete(key);
    this.#parked.delete(key);
    const keys = this.#keysByBase.get(p.message.base);
    keys?.delete(key);
    if (keys?.size === 0) this.#keysByBase.delete(p.message.base);
  }

  /**
   * Sends again to the live members that have not acknowledged; forgets what is done or expired. A
   * destruction is not done while some member is `silent` (removed for silence, not forgotten): it may
   * come back across a healed partition with a copy.
   */
  retry(members: MemberInfo[], now: number, silent = false): void {
    if (now - this.#lastPrune > 60_000) {
      this.#lastPrune = now;
      for (const [key, p] of this.#parked) if (p.message.until <= now) this.#delete(key);
    }
    for (const [key, p] of this.#pending) {
      if (p.message.until <= now) {
        this.#delete(key);
        continue;
      }
      const missing = members.filter((m) => !p.acked.has(m.id) && (p.only === undefined || p.only.has(m.id)));
      if (missing.length > 0) {
        for (const m of missing) if (!p.sending.has(m.id)) void this.#attempt(p, m);
        continue;
      }
      if (p.sending.size > 0) continue;
      if (p.only === undefined ? !silent : [...p.only].every((id) => p.acked.has(id))) {
        this.#delete(key);
        if (p.only === undefined) this.#onDone(p.message);
        continue;
      }
      // A drop waits for its member to come back (it may be across a partition), a destruction for
      // the members out of reach, until it expires: parked until then.
      this.#pending.delete(key);
      this.#parked.set(key, p);
    }
  }
}
