/**
 * The `lease-race` nemesis (features.ts): a cut whose two sides remove each other seconds apart, with
 * a client steered into the grace periods that the lease and the write guards keep.
 *
 * A member cut off keeps its lease until the others' last answers are `leaseMs` old, and the others
 * promise it, for longer, not to take its sessions (lease.ts). When both sides meet silence they drop
 * each other at about the same moment, and a grace that ends too soon is never seen (the mutants
 * `promise-shorter-than-lease` in delta mode and `backup-write-past-silent-backup` survived 1,300 seeds
 * without this fault). Firewalls that reject on some links and not others make the removals seconds
 * apart. Two shapes, on a client's session owned by X:
 *
 * - `late-release`: X's firewall rejects what comes in. The others see resets and drop X at once; X
 *   meets silence and keeps serving until its lease ends. The client is sent to the other side (a
 *   balancer that gave up on X) and writes there, which takes the session over once every promise to
 *   X has run out; meanwhile the session is read at X. A promise shorter than X's lease lets the
 *   takeover and its acknowledged write come while X still serves the older copy.
 * - `new-backup` (backup mode, five members): only X's connection to the session's backup B resets,
 *   with one other member on X's side; X drops B at once and still holds its lease through the
 *   others' last answers. A write at X must not be acknowledged by a backup chosen in B's place (on
 *   X's side): the larger side, B among it, takes the session over from B's older copy once X is
 *   released. The client writes at X, then goes to the other side.
 */
import { backupList } from '../../src/replication/backups.js';
import { backupsFor } from '../../src/ring/index.js';
import { parseSessionId } from '../../src/replication/session-id.js';
import type { Client } from './clients.js';
import type { SimMember } from './member.js';
import { probeAfterHeal, type RaceWorld } from './race-world.js';

/** What the nemesis needs of the schedule (world.ts). */
export type LeaseRaceWorld = RaceWorld;

interface Target {
  client: Client;
  cookie: string;
  base: string;
  owner: SimMember;
  /** Backup mode: the member holding the session's backup. */
  backup?: SimMember;
}

function findTarget(w: LeaseRaceWorld, wantBackup: boolean): Target | undefined {
  const live = w.running();
  const found: Target[] = [];
  for (const client of w.clients) {
    const id = parseSessionId(client.cookie);
    if (client.cookie === undefined || id === undefined || client.keep) continue;
    const owner = live.find((m) => {
      const e = m.manager.table.get(id.base);
      return m.ready && e !== undefined && e.role === 'primary' && e.owner === m.route && e.unverified !== true;
    });
    if (owner === undefined) continue;
    const e = owner.manager.table.get(id.base)!;
    const backups = backupList(e.backup);
    const backup = live.find((m) => m.route === backups[0]);
    if (wantBackup && (backup === undefined || backups.length !== 1)) continue;
    found.push({ client, cookie: client.cookie, base: id.base, owner, backup });
  }
  return found.length === 0 ? undefined : w.plan.pick(found);
}

/** Runs one race; returns the member cut off (undefined when no session could be raced). */
export async function leaseRace(w: LeaseRaceWorld): Promise<SimMember | undefined> {
  const { plan } = w;
  const live = w.running();
  const shape = w.mode === 'backup' && live.length >= 5 && plan.chance(0.5) ? 'new-backup' : 'late-release';
  const give = w.now() + 5000;
  let target = findTarget(w, shape === 'new-backup');
  while (target === undefined && w.now() < give) {
    await w.sleepUntil(w.now() + plan.range(100, 400));
    target = findTarget(w, shape === 'new-backup');
  }
  const members = w.running();
  if (target === undefined || members.length < 3 || !members.includes(target.owner) || (target.backup !== undefined && !members.includes(target.backup))) {
    w.note(`no session to race the lease on (${shape})`);
    return undefined;
  }
  const { client, base, owner } = target;
  client.keep = true;
  const side = new Map<string, number>(members.map((m) => [m.route, 0]));
  side.set(owner.route, 1);
  const resets = new Set<string>();
  if (shape === 'late-release') {
    for (const m of members) if (m !== owner) resets.add(`${m.route}>${owner.route}`);
  } else {
    const b = target.backup!;
    // The member X picks in B's place (the ring's next), so that a write past the guard finds its backup.
    const others = members.filter((m) => m !== owner && m !== b);
    const next = backupsFor(base, owner.channel.self, others.map((m) => m.channel.self), 1)[0];
    const companion = others.find((m) => m.route === next) ?? plan.pick(others);
    side.set(companion.route, 1);
    resets.add(`${owner.route}>${b.route}`);
  }
  const cutOff = members.filter((m) => side.get(m.route) === 1).map((m) => m.route);
  w.note(`lease race (${shape}) on ${base.slice(0, 6)} owned by ${owner.route}: {${cutOff.join(',')}} cut off, resets on ${[...resets].sort().join(' ')}`);
  w.trace(`NEMESIS lease race ${shape} ${base.slice(0, 6)} ${owner.route}: cut ${cutOff.join(',')}, resets ${[...resets].sort().join(' ')}`);
  w.partition(side, resets);
  const t0 = w.now();
  // Past X's lease (it ends by `leaseMs` < dropTime) and past every promise (lease + margin), with room.
  const window = w.dropTime * 1.4;
  const cookie = () => (client.cookie !== undefined && parseSessionId(client.cookie)?.base === base ? client.cookie : target.cookie);
  if (shape === 'late-release') {
    // The client's requests go to the other side at once; the session is read at X meanwhile.
    client.avoid = owner;
    while (w.now() < t0 + window) {
      await w.sleepUntil(w.now() + plan.range(40, 160));
      if (owner.phase === 'running') w.prober.probe(owner, cookie(), 1500);
    }
  } else {
    // The client writes at X (its sticky member) through X's lease, then goes to the other side, which
    // takes the session over once X is released there.
    await w.sleepUntil(t0 + window);
    client.avoid = owner;
    await w.sleepUntil(t0 + w.removal + w.dropTime);
  }
  w.trace('NEMESIS heal');
  w.heal();
  await probeAfterHeal(w, cookie);
  client.avoid = undefined;
  client.keep = false;
  w.cover(`lease race: ${shape}`);
  return owner;
}
