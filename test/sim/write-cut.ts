/**
 * The `write-cut` nemesis (features.ts): an owner cut off the instant a copy holder applies its write,
 * so that holder keeps a write whose acknowledgement never comes back.
 *
 * The owner X is cut off (from five members with a companion); its connection to the holder H resets
 * (X drops H at once and answers the write failed within milliseconds), every other link across meets
 * silence (X keeps its lease through the others' last answers). The session is read at X meanwhile,
 * and its client goes to the other side, which takes the session over from the copies it has once X
 * is released: H's copy holds the failed write. If X served the older content after answering the write failed, the failed write appears
 * after the fact (the `lifetime` oracle; backup seed 58171 met this by chance in a lease race, once
 * in 58,000 seeds). In delta mode every member holds the session: the cut comes when the last holder
 * applies the write, so that X does not wait out the others' silence (it would lose its lease first).
 */
import { messages } from '../../src/codec/messages.js';
import { parseSessionId } from '../../src/replication/session-id.js';
import { backupsFor } from '../../src/ring/index.js';
import type { Client } from './clients.js';
import type { SimMember } from './member.js';
import { probeAfterHeal, type RaceWorld } from './race-world.js';

/** What the nemesis needs of the schedule (world.ts). */
export interface WriteCutWorld extends RaceWorld {
  /** Calls `hook` for each write (a delta) a member sends (`sent`) and applies (`applied`); undefined disarms. */
  watch(hook: ((event: 'sent' | 'applied', from: SimMember, to: SimMember, body: Buffer) => void) | undefined): void;
}

interface Hit {
  owner: SimMember;
  holder: SimMember;
  client: Client;
  base: string;
  companion: SimMember | undefined;
}

/** Runs one cut; returns the owner cut off (undefined when no write of a client's session came). */
export async function writeCut(w: WriteCutWorld): Promise<SimMember | undefined> {
  let hit: Hit | undefined;
  /** Delta mode: holders each write was sent to and has yet to apply, by its body. */
  const waiting = new Map<Buffer, Set<SimMember>>();
  w.watch((event, from, to, body) => {
    if (hit !== undefined) return;
    if (event === 'sent') {
      if (!waiting.has(body)) waiting.set(body, new Set());
      waiting.get(body)!.add(to);
      return;
    }
    const left = waiting.get(body);
    if (left === undefined) return; // sent before the watch began
    left.delete(to);
    if (w.mode === 'delta' && left.size > 0) return;
    waiting.delete(body);
    const base = messages.delta.decode(body).base;
    const client = w.clients.find((c) => !c.keep && c.cookie !== undefined && parseSessionId(c.cookie)?.base === base);
    const members = w.running();
    if (client === undefined || members.length < 3 || !members.includes(from) || !members.includes(to)) return;
    // From five members a companion stays on X's side (in backup mode the member X picks in H's place):
    // X re-sends the session to it at once, and answers the write failed while its lease runs, since H
    // cannot drop its copy. Alone, X would wait out the new backup's silence first.
    const others = members.filter((m) => m !== from && m !== to);
    const next = backupsFor(base, from.channel.self, others.map((m) => m.channel.self), 1)[0];
    const companion = members.length >= 5 ? (others.find((m) => w.mode === 'backup' && m.route === next) ?? w.plan.pick(others)) : undefined;
    hit = { owner: from, holder: to, client, base, companion };
    client.keep = true;
    const side = new Map<string, number>(members.map((m) => [m.route, m === from || m === companion ? 1 : 0]));
    w.trace(`NEMESIS write cut ${base.slice(0, 6)} ${from.route}: cut off${companion === undefined ? '' : ` with ${companion.route}`}, resets ${from.route}>${to.route}`);
    w.partition(side, new Set([`${from.route}>${to.route}`]));
  });
  const give = w.now() + 6000;
  while (hit === undefined && w.now() < give) await w.sleepUntil(w.now() + 50);
  w.watch(undefined);
  if (hit === undefined) {
    w.note('no write of a client session within 6 s to cut');
    return undefined;
  }
  const { owner, holder, client, base, companion } = hit;
  const t0 = w.now();
  const cutOff = companion === undefined ? owner.route : `${owner.route},${companion.route}`;
  w.note(`write cut on ${base.slice(0, 6)}: {${cutOff}} cut off as ${holder.route} applied ${owner.route}'s write, resets on ${owner.route}>${holder.route}`);
  const cookie = () => (client.cookie !== undefined && parseSessionId(client.cookie)?.base === base ? client.cookie : undefined);
  // The session is read at X through its lease; the client's own requests go to the other side.
  client.avoid = owner;
  while (w.now() < t0 + w.dropTime * 1.4) {
    await w.sleepUntil(w.now() + w.plan.range(20, 120));
    const c = cookie();
    if (owner.phase === 'running' && c !== undefined) w.prober.probe(owner, c, 1500);
  }
  await w.sleepUntil(t0 + w.removal + w.dropTime);
  w.trace('NEMESIS heal');
  w.heal();
  await probeAfterHeal(w, cookie);
  client.avoid = undefined;
  client.keep = false;
  w.cover(`write cut (${w.mode})`);
  return owner;
}
