/**
 * Copies agree (oracle `agreement`), at a quiet checkpoint, per session: every copy on the running
 * members holds the same content; in backup mode also the same epoch, owner and version, every backup
 * names the primary as owner, the primary names its backups, and nothing is left unverified or marked
 * for a resend. Summed counts (`/cluster/status`) hide a backup that holds other content at the same
 * version: the next crash of the primary would serve it.
 */
import type { Violation } from './checker.js';
import type { History } from './history.js';
import type { SimMember } from './member.js';
import { unpackEntries, type Packed } from '../../src/replication/packed-entries.js';
import { backupList } from '../../src/replication/backups.js';

/** The content of a packed session, independent of key order. */
function content(p: Packed): string {
  return unpackEntries(p)
    .map((e) => `${e.key}=${Buffer.from(e.value).toString('base64')}`)
    .sort()
    .join('&');
}

/**
 * `majority`: a strict majority of the cluster runs (else nothing is re-protected or verified, by
 * design: only content, epoch, owner and version are compared). `mayHaveExpired`: copies expire by
 * their own member's clock, so a session that may have expired is left out.
 *
 * Without a majority, backup mode's copies of one epoch and owner may hold different versions: the
 * owner's last write goes to each backup on its own, and an owner killed mid-write (`backups: 2`, two
 * of four members killed at once) leaves one backup a version ahead of the other, with a write that
 * was never acknowledged (sync waits for every backup). Only adoption, which needs the majority,
 * settles it, and it adopts the highest version (`compareHeld`), so no acknowledged write is lost; the
 * next checkpoint with a majority compares versions again. Copies of one version must still agree.
 * The same holds across epochs: a takeover granted a moment before the kill leaves the old owner's
 * other backups at the old epoch until the new owner's re-protection reaches them, which the kill cut
 * short (backup seed 105 of the default features: granted 11 ms before two of four members died);
 * epochs fence the old copies, and adoption takes the highest epoch once a majority runs again.
 */
export function checkAgreement(
  h: History,
  members: readonly SimMember[],
  mode: 'backup' | 'delta',
  at: number,
  label: string,
  majority = true,
  mayHaveExpired: (base: string) => boolean = () => false,
): Violation[] {
  const live = members.filter((m) => m.phase === 'running' && m.proc.state === 'running');
  const out: Violation[] = [];
  for (const base of h.byBase.keys()) {
    if (members.some((m) => m.alive && m.busy.has(base)) || mayHaveExpired(base)) continue;
    const copies = live.map((m) => ({ m, e: m.manager.table.get(base) })).filter((x): x is { m: SimMember; e: NonNullable<typeof x.e> } => x.e !== undefined);
    if (copies.length === 0) continue;
    const where = () => copies.map((x) => `${x.m.proc.name}:${x.e.role}@${x.e.epoch}v${x.e.version}${x.e.unverified === true ? '?' : ''}${x.e.resync === true ? '!' : ''} owner ${x.e.owner}`).join(', ');
    const problems: string[] = [];
    // Without a majority, copies may differ in epoch, owner and version (above), never in content at
    // one epoch, owner and version; otherwise every copy holds the same.
    const lenient = mode === 'backup' && !majority;
    const byVersion = new Map<string, Set<string>>();
    for (const x of copies) {
      const v = lenient ? `${x.e.epoch}/${x.e.owner}/${x.e.version}` : '';
      byVersion.set(v, (byVersion.get(v) ?? new Set()).add(content(x.e.packed)));
    }
    const contents = Math.max(...[...byVersion.values()].map((c) => c.size));
    if (contents > 1) problems.push(`${contents} different contents`);
    if (mode === 'backup') {
      const primary = copies.find((x) => x.e.role === 'primary');
      if (!lenient && new Set(copies.map((x) => `${x.e.epoch}/${x.e.owner}/${x.e.version}`)).size > 1) problems.push('epoch, owner or version differ');
      if (primary !== undefined && majority) {
        for (const x of copies) if (x.e.role === 'backup' && x.e.owner !== primary.m.route) problems.push(`backup on ${x.m.proc.name} names ${x.e.owner}, not the primary ${primary.m.route}`);
        const named = new Set(backupList(primary.e.backup));
        const held = new Set(copies.filter((x) => x.e.role === 'backup').map((x) => x.m.route));
        if ([...held].some((r) => !named.has(r)) || [...named].some((r) => !held.has(r))) problems.push(`the primary names backups [${[...named].join(',')}], held on [${[...held].join(',')}]`);
        if (primary.e.resync === true) problems.push('the primary still has a resend pending');
      }
    }
    if (majority && copies.some((x) => x.e.unverified === true)) problems.push('a copy is left unverified');
    if (problems.length > 0) {
      out.push({ promise: 5, oracle: 'agreement', at, base, what: `${label}: copies of ${base.slice(0, 6)} disagree (${problems.join('; ')}): ${where()}` });
    }
  }
  return out;
}
