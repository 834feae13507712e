/**
 * The nemesis: one fault at a time, drawn from the seed, and after each fault ends (a member back,
 * resumed, gone, or a partition healed) a wait for convergence (promise 5), timed. The promises
 * assume one failure at a time between re-protections: the next fault starts only once the cluster
 * converged, and if it never does (within `capMs`), no further fault is injected.
 */
import type { ChaosCluster } from './members.js';
import { notConverged } from './convergence.js';
import { fmt, type History } from './history.js';
import type { Random } from './random.js';

export type FaultKind = 'kill' | 'pause' | 'term' | 'partition-one' | 'partition-two';

export interface Fault {
  kind: FaultKind;
  /** The member signalled, or the members cut off from the rest. */
  targets: string[];
  /** How long the member stays down, paused or cut off (ms). */
  holdMs: number;
  /** Quiet time after the cluster converged, before the next fault (ms). */
  gapMs: number;
}

/** The faults a run may inject: partitions need namespaces, two-against-three needs 5 members. */
export function faultKinds(net: 'loopback' | 'netns', members: number): FaultKind[] {
  const kinds: FaultKind[] = ['kill', 'pause', 'term'];
  if (net === 'netns') kinds.push('partition-one');
  if (net === 'netns' && members >= 5) kinds.push('partition-two');
  return kinds;
}

/** The next fault, from the seeded stream. Pauses and partitions outlast dropTime, so they count. */
export function planFault(rng: Random, kinds: readonly FaultKind[], routes: readonly string[], dropTime: number): Fault {
  const kind = rng.pick(kinds);
  const targets = rng.shuffle(routes).slice(0, kind === 'partition-two' ? 2 : 1);
  const holdMs =
    kind === 'pause' ? dropTime + rng.int(1000, 3000) : kind.startsWith('partition') ? dropTime + rng.int(2000, 6000) : rng.int(500, 2500);
  return { kind, targets, holdMs, gapMs: rng.int(1000, 4000) };
}

export interface Convergence {
  fault: string;
  /** Run-relative ms when the fault ended. */
  endedAt: number;
  /** ms from the end of the fault to the first converged poll; undefined if it never converged. */
  ms: number | undefined;
}

export interface NemesisOptions {
  mode: 'backup' | 'delta';
  dropTime: number;
  /** Run-relative ms. */
  now(): number;
  /** Ms of Date.now() at run time 0. */
  t0: number;
  /** Closes (false) or opens (true) the clients' logins, logouts and regenerates while counting. */
  lifecycle(open: boolean): void;
  /** Give up waiting for convergence after this long (ms). */
  capMs: number;
  /** Only these kinds (default: every kind the network allows). */
  faults?: readonly FaultKind[];
  log(line: string): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Nemesis {
  readonly faults: (Fault & { at: number })[] = [];
  readonly convergences: Convergence[] = [];
  /** Two-against-three partitions, run-relative [from, to]: a double failure for the cut-off copies. */
  readonly doubleFailures: { from: number; to: number; groups: string[][] }[] = [];
  stoppedBecause: string | undefined;
  readonly #cluster: ChaosCluster;
  readonly #history: History;
  readonly #rng: Random;
  readonly #o: NemesisOptions;

  constructor(cluster: ChaosCluster, history: History, rng: Random, options: NemesisOptions) {
    this.#cluster = cluster;
    this.#history = history;
    this.#rng = rng;
    this.#o = options;
  }

  /**
   * Excuse for History: "no session" answered by a member of the larger side while a two-against-
   * three partition was on (or until the sides could hear each other again, dropTime after the
   * heal). From there, a session with both copies on the smaller side is two members lost at once,
   * which no promise covers. The smaller side lost at least as many members as remain, knows it may
   * be cut off, and must answer 503 instead: never excused.
   */
  excuse = (member: string, sentAt: number, answeredAt: number): string | undefined => {
    if (this.#o.mode !== 'backup') return undefined;
    const w = this.doubleFailures.find((d) => sentAt <= d.to + this.#o.dropTime && answeredAt >= d.from);
    if (w === undefined) return undefined;
    const larger = [...w.groups].sort((a, b) => b.length - a.length)[0];
    if (!larger.includes(member)) return undefined;
    return `answered by ${member} on the larger side of the partition ${w.groups.map((g) => g.join('+')).join(' | ')} (${fmt(w.from)}..${fmt(w.to)})`;
  };

  /** Injects faults until `done()` (checked between faults), then leaves every member up. */
  async run(done: () => boolean): Promise<void> {
    const possible = faultKinds(this.#cluster.spec.net, this.#cluster.spec.members);
    const kinds = this.#o.faults === undefined ? possible : possible.filter((k) => this.#o.faults!.includes(k));
    if (kinds.length === 0) throw new Error(`none of the faults ${this.#o.faults!.join(', ')} can run here (possible: ${possible.join(', ')})`);
    while (!done() && this.stoppedBecause === undefined) {
      const f = planFault(this.#rng, kinds, this.#cluster.routes, this.#o.dropTime);
      this.faults.push({ ...f, at: this.#o.now() });
      this.#o.log(`${fmt(this.#o.now())} fault ${f.kind} ${f.targets.join('+')} for ${f.holdMs} ms`);
      await this.#inject(f);
      await sleep(f.gapMs);
    }
  }

  async #inject(f: Fault): Promise<void> {
    const c = this.#cluster;
    const rel = (wall: number) => wall - this.#o.t0;
    const [target] = f.targets;
    const label = `${f.kind} ${f.targets.join('+')}`;
    switch (f.kind) {
      case 'kill':
      case 'term': {
        let gone: number;
        try {
          gone = rel(await c.signal(target, f.kind === 'kill' ? 'SIGKILL' : 'SIGTERM'));
        } catch (err) {
          // A graceful stop that never ends is a finding too; the member was killed instead.
          this.#history.convergence(`${label}: ${(err as Error).message}`);
          gone = this.#o.now();
        }
        await this.converge(`${label}: gone`, gone);
        await sleep(f.holdMs);
        await this.converge(`${label}: back`, rel(await c.restart(target)));
        return;
      }
      case 'pause':
        await c.signal(target, 'SIGSTOP');
        await sleep(f.holdMs);
        await this.converge(`${label}: resumed`, rel(await c.signal(target, 'SIGCONT')));
        return;
      case 'partition-one':
      case 'partition-two': {
        const groups = [f.targets, c.routes.filter((r) => !f.targets.includes(r))];
        const from = this.#o.now();
        c.partition(groups);
        const window = { from, to: Infinity, groups };
        if (f.kind === 'partition-two') this.doubleFailures.push(window);
        await sleep(f.holdMs);
        c.heal();
        const healed = this.#o.now();
        window.to = healed;
        await this.converge(`${label}: healed`, healed);
        return;
      }
    }
  }

  /**
   * Polls every live member's status until converged; a violation of promise 5 if that takes more
   * than dropTime + 2 s after `endedAt`. Logins, logouts and regenerates wait meanwhile, so the
   * count of live sessions holds still (abandoned ones are in its range).
   */
  async converge(fault: string, endedAt: number): Promise<void> {
    const limit = this.#o.dropTime + 2000;
    this.#o.lifecycle(false);
    let why: string | undefined = 'not polled';
    try {
      while (this.#o.now() - endedAt < this.#o.capMs) {
        const live = this.#cluster.live();
        const statuses = await Promise.all(live.map((m) => this.#cluster.status(m.route)));
        why = notConverged(this.#o.mode, live, statuses, this.#history.liveRange());
        if (why === undefined) break;
        await sleep(100);
      }
    } finally {
      this.#o.lifecycle(true);
    }
    const ms = why === undefined ? Math.max(0, this.#o.now() - endedAt) : undefined;
    if (fault !== 'start') this.convergences.push({ fault, endedAt, ms });
    if (ms === undefined) {
      this.#history.convergence(`${fault} (ended at ${fmt(endedAt)}): not converged after ${this.#o.capMs} ms: ${why}`);
      this.stoppedBecause ??= `the cluster did not converge after ${fault}; no further faults (the promises assume re-protection between failures)`;
    } else if (ms > limit) {
      this.#history.convergence(`${fault} (ended at ${fmt(endedAt)}): converged after ${ms} ms, more than dropTime + 2 s = ${limit} ms`);
    }
    this.#o.log(`${fmt(this.#o.now())} ${fault}: ${ms === undefined ? `NOT converged: ${why}` : `converged in ${ms} ms`}`);
  }
}
