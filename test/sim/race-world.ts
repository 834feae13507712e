/** What the aimed nemeses (`lease-race.ts`, `write-cut.ts`) need of the schedule (world.ts). */
import type { Client } from './clients.js';
import type { SimMember } from './member.js';
import type { Prng } from './prng.js';

export interface RaceWorld {
  now(): number;
  plan: Prng;
  mode: 'backup' | 'delta';
  dropTime: number;
  /** How long a member cut off silently takes to be removed (dropTime + the direct check + margin). */
  removal: number;
  running(): SimMember[];
  clients: readonly Client[];
  prober: Client;
  sleepUntil(t: number): Promise<void>;
  /** Cuts `side` 1 from side 0; connections named `a>b` are reset, the others meet silence. */
  partition(side: Map<string, number>, resets: ReadonlySet<string>): void;
  heal(): void;
  note(line: string): void;
  trace(line: string): void;
  cover(what: string): void;
}

/** Reads after a heal, at members drawn from the ready ones: a lost or failed write shows wherever the session is served. */
export async function probeAfterHeal(w: RaceWorld, cookie: () => string | undefined): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await w.sleepUntil(w.now() + w.plan.range(150, 400));
    const targets = w.running().filter((m) => m.ready);
    const c = cookie();
    if (targets.length > 0 && c !== undefined) w.prober.probe(w.plan.pick(targets), c, 2500);
  }
}
