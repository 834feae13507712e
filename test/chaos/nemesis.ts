/**
 * The nemesis: one fault at a time, drawn from the seed, and after each fault ends (members back,
 * resumed, gone, or a partition healed) a wait for convergence (promise 5), timed: first the counts
 * of `/cluster/status`, then, with the clients held still, every session's copies compared member by
 * member (copies.ts). A fault may hit several members at once (two killed together, a whole zone);
 * the next fault starts only once the cluster converged, and if it never does (within `capMs`), no
 * further fault is injected: the promises assume re-protection between failures.
 */
import type { ChaosCluster, MemberCopies } from './members.js';
import { LIBFAKETIME } from './members.js';
import { checkCopies, placement } from './copies.js';
import { notConverged } from './convergence.js';
import type { CutReset } from './partition.js';
import { CpuWait } from '../helpers/cpu-wait.js';
import { fmt, type History } from './history.js';
import type { Random } from './random.js';

/** Every kind of fault, in the order `--faults` lists them. */
export const FAULT_KINDS = [
  'kill',
  'pause',
  'term',
  'partition-one',
  'partition-two',
  'kill-many',
  'zone-kill',
  'zone-cut',
  'partition-reset',
  'partition-reset-in',
  'partition-long',
  'cut-restart',
  'clock-step',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The kinds a run without `--faults` injects: one member at a time, as before the faults of issues 23-25. */
export const DEFAULT_FAULTS: readonly FaultKind[] = ['kill', 'pause', 'term', 'partition-one', 'partition-two'];

/**
 * A partition longer than every grace (leases, dropTime, `forgetAfter` 60 s): 2-3 minutes, as issue 23
 * asks (production partitions last minutes). A 10-minute run fits it in its first 7.
 */
const LONG_PARTITION_MS: [number, number] = [120_000, 180_000];

export interface Fault {
  kind: FaultKind;
  /** The members signalled, or the members cut off from the rest. */
  targets: string[];
  /** How long the members stay down, paused or cut off (ms). */
  holdMs: number;
  /** Quiet time after the cluster converged, before the next fault (ms). */
  gapMs: number;
  /** clock-step: the wall-clock offsets the member runs at, first and after the step ("+12s"). */
  clock?: [string, string];
}

/** What decides which faults can run. */
export interface FaultSetting {
  net: 'loopback' | 'netns';
  members: number;
  mode: 'backup' | 'delta';
  /** The members of each zone (absent or one zone: no zone faults). */
  zones: Map<string, string[]>;
  /** libfaketime is installed. */
  faketime: boolean;
  /** Members killed together by kill-many. */
  killMany: number;
  /** clock-step: the largest offset from true time, seconds (default 30). */
  clockMaxS?: number;
}

/** The faults a run may inject, each with why it cannot when it cannot. */
export function faultKinds(s: FaultSetting): { kinds: FaultKind[]; why: Map<FaultKind, string> } {
  const why = new Map<FaultKind, string>();
  const netns = s.net === 'netns' ? undefined : 'needs --net netns';
  const zones = s.zones.size >= 2 ? undefined : 'needs --zones 2 or more';
  const need: Record<FaultKind, string | undefined> = {
    kill: undefined,
    pause: undefined,
    term: undefined,
    'partition-one': netns,
    'partition-two': netns ?? (s.members >= 5 ? undefined : 'needs 5 members or more'),
    'kill-many': s.killMany < s.members ? undefined : `kills ${s.killMany} of ${s.members} members: needs more members`,
    'zone-kill': zones,
    'zone-cut': netns ?? zones,
    'partition-reset': netns,
    'partition-reset-in': netns,
    'partition-long': netns,
    'cut-restart': netns,
    'clock-step': s.faketime ? undefined : 'needs libfaketime (Debian package faketime)',
  };
  for (const k of FAULT_KINDS) {
    const reason = need[k];
    if (reason !== undefined) why.set(k, reason);
  }
  return { kinds: FAULT_KINDS.filter((k) => need[k] === undefined), why };
}

/** A wall-clock offset of libfaketime, `sign * 1..max` seconds. */
function offset(rng: Random, max: number): string {
  const s = rng.int(1, max);
  return rng.chance(0.5) ? `+${s}s` : `-${s}s`;
}

/**
 * The next fault, from the seeded stream. Pauses and partitions outlast dropTime, so they count.
 * `remainingMs`: time left in the run; a long partition is drawn only when it fits.
 */
export function planFault(rng: Random, kinds: readonly FaultKind[], routes: readonly string[], s: FaultSetting, dropTime: number, remainingMs: number): Fault {
  const fits = kinds.filter((k) => k !== 'partition-long' || remainingMs >= LONG_PARTITION_MS[1]);
  const kind = rng.pick(fits.length > 0 ? fits : kinds);
  const zone = rng.pick([...s.zones.keys()].sort());
  const targets =
    kind === 'zone-kill' || kind === 'zone-cut'
      ? [...s.zones.get(zone)!]
      : rng.shuffle(routes).slice(0, kind === 'partition-two' ? 2 : kind === 'kill-many' ? s.killMany : 1);
  const cut = dropTime + rng.int(2000, 6000);
  const holdMs: Record<FaultKind, number> = {
    kill: rng.int(500, 2500),
    term: rng.int(500, 2500),
    'kill-many': rng.int(500, 2500),
    'zone-kill': rng.int(500, 2500),
    pause: dropTime + rng.int(1000, 3000),
    'partition-one': cut,
    'partition-two': cut,
    'zone-cut': cut,
    'partition-reset': cut,
    'partition-reset-in': cut,
    'partition-long': rng.int(...LONG_PARTITION_MS),
    'cut-restart': rng.int(2000, 5000),
    'clock-step': rng.int(5000, 12_000),
  };
  return { kind, targets, holdMs: holdMs[kind], gapMs: rng.int(1000, 4000), ...(kind === 'clock-step' ? { clock: [offset(rng, s.clockMaxS ?? 30), offset(rng, s.clockMaxS ?? 30)] } : {}) };
}

export interface Convergence {
  fault: string;
  /** Run-relative ms when the fault ended. */
  endedAt: number;
  /** ms from the end of the fault to the first converged poll; undefined if it never converged. */
  ms: number | undefined;
  /** ms from when the clients were still to the first poll where every session's copies agreed. */
  copiesMs?: number;
  /** ms a member (or the runner) waited for a CPU meanwhile: added to the limit (`cpu-wait.ts`). */
  waitedMs?: number;
}

export interface NemesisOptions {
  mode: 'backup' | 'delta';
  dropTime: number;
  /** Option `backups` of the members (1 when not given). */
  backups: number;
  /** Run-relative ms. */
  now(): number;
  /** Ms of Date.now() at run time 0. */
  t0: number;
  /** Run-relative ms when the run's fault injection ends. */
  endsAt: number;
  /** Closes (false) or opens (true) the clients' logins, logouts and regenerates while counting. */
  lifecycle(open: boolean): void;
  /** Holds every client still (resolves once none has a request out), or lets them go on. */
  hold(still: boolean): Promise<void>;
  /** Give up waiting for convergence after this long (ms). */
  capMs: number;
  /** Only these kinds (default: DEFAULT_FAULTS, those the network allows). */
  faults?: readonly FaultKind[];
  /** A directory for the fake clocks' files. */
  tmpDir: string;
  /** clock-step: the largest offset from true time, seconds (default 30). */
  clockMaxS?: number;
  log(line: string): void;
}

/** A fault that made members unreachable together; `placement`: where each session's copies were just before. */
interface CutWindow {
  kind: FaultKind;
  from: number;
  to: number;
  groups: string[][];
  placement: Map<string, string[]>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Nemesis {
  readonly faults: (Fault & { at: number; endedAt?: number })[] = [];
  readonly convergences: Convergence[] = [];
  /** Partitions that cut off more members than `backups` (or a zone): the copies they made unreachable. */
  readonly cutWindows: CutWindow[] = [];
  /** Excused answers per kind of fault. */
  readonly excusedBy = new Map<FaultKind, number>();
  stoppedBecause: string | undefined;
  readonly #cluster: ChaosCluster;
  readonly #history: History;
  readonly #rng: Random;
  readonly #o: NemesisOptions;
  readonly #setting: FaultSetting;
  /** Sessions the last copy check compared (for the progress line). */
  #compared = 0;

  constructor(cluster: ChaosCluster, history: History, rng: Random, options: NemesisOptions) {
    this.#cluster = cluster;
    this.#history = history;
    this.#rng = rng;
    this.#o = options;
    const zones = new Map<string, string[]>();
    for (const [route, zone] of cluster.zones) zones.set(zone, [...(zones.get(zone) ?? []), route]);
    const killMany = options.mode === 'backup' ? options.backups : 1;
    this.#setting = {
      net: cluster.spec.net,
      members: cluster.spec.members,
      mode: options.mode,
      zones,
      faketime: LIBFAKETIME !== undefined,
      // kill-many kills `backups` members (what the promises cover), 2 with one backup or in delta mode.
      killMany: Math.max(2, killMany),
      clockMaxS: options.clockMaxS,
    };
  }

  /** The kinds this run injects; throws when a kind asked for cannot run here. */
  kinds(): FaultKind[] {
    const { kinds, why } = faultKinds(this.#setting);
    const asked = this.#o.faults ?? DEFAULT_FAULTS;
    const impossible = this.#o.faults === undefined ? [] : asked.filter((k) => why.has(k));
    if (impossible.length > 0) throw new Error(`cannot inject ${impossible.map((k) => `${k} (${why.get(k)})`).join(', ')}`);
    const out = kinds.filter((k) => asked.includes(k));
    if (out.length === 0) throw new Error(`none of the faults ${asked.join(', ')} can run here`);
    return out;
  }

  /**
   * Excuse for History: "no session" for session `base`, answered by `member` while a partition cut
   * off every member holding a copy of it (per the copies just before the cut), or until dropTime
   * after the heal, when the sides hear each other again, and only on the side without a copy. That
   * is as many failures as copies, which no promise covers. The side that holds the copies must
   * answer for them, and a member cut off from a majority must answer 503: never excused. Kills are
   * never excused: a session whose every copy was killed is lost, and the table must say so.
   */
  excuse = (member: string, base: string, sentAt: number, answeredAt: number): string | undefined => {
    for (const w of this.cutWindows) {
      if (sentAt > w.to + this.#o.dropTime || answeredAt < w.from) continue;
      const holders = w.placement.get(base);
      if (holders === undefined || holders.length === 0) continue;
      const side = w.groups.find((g) => g.includes(member));
      if (side === undefined || holders.some((h) => side.includes(h))) continue;
      this.excusedBy.set(w.kind, (this.excusedBy.get(w.kind) ?? 0) + 1);
      return `answered by ${member}, cut off from every copy (${holders.join(', ')}) by ${w.kind} ${w.groups.map((g) => g.join('+')).join(' | ')} (${fmt(w.from)}..${fmt(w.to)})`;
    }
    return undefined;
  };

  /** Injects faults until `done()` (checked between faults), then leaves every member up. */
  async run(done: () => boolean): Promise<void> {
    const kinds = this.kinds();
    while (!done() && this.stoppedBecause === undefined) {
      const f = planFault(this.#rng, kinds, this.#cluster.routes, this.#setting, this.#o.dropTime, this.#o.endsAt - this.#o.now());
      const fault: Fault & { at: number; endedAt?: number } = { ...f, at: this.#o.now() };
      this.faults.push(fault);
      this.#o.log(`${fmt(this.#o.now())} fault ${f.kind} ${f.targets.join('+')} for ${f.holdMs} ms${f.clock === undefined ? '' : `, clock ${f.clock.join(' then ')}`}`);
      await this.#inject(f);
      fault.endedAt = this.#o.now();
      await sleep(f.gapMs);
    }
  }

  #rel(wall: number): number {
    return wall - this.#o.t0;
  }

  /** SIGKILLs (or SIGTERMs) `targets` at the same moment; resolves when all are gone. */
  async #stop(label: string, targets: string[], signal: 'SIGKILL' | 'SIGTERM'): Promise<number> {
    const gone = await Promise.all(
      targets.map(async (t) => {
        try {
          return this.#rel(await this.#cluster.signal(t, signal));
        } catch (err) {
          // A graceful stop that never ends is a finding too; the member was killed instead.
          this.#history.convergence(`${label}: ${(err as Error).message}`);
          return this.#o.now();
        }
      }),
    );
    return Math.max(...gone);
  }

  async #restartAll(targets: string[]): Promise<number> {
    return Math.max(...(await Promise.all(targets.map(async (t) => this.#rel(await this.#cluster.restart(t))))));
  }

  /** Cuts `targets` off the rest; a partition that makes copies unreachable together gets a window. */
  async #cut(kind: FaultKind, targets: string[], reset: CutReset): Promise<CutWindow> {
    const c = this.#cluster;
    const groups = [targets, c.routes.filter((r) => !targets.includes(r))];
    // Where the copies are right now: only sessions with every copy on one side are excused.
    const where = targets.length > 1 ? placement(await this.#allCopies()) : new Map<string, string[]>();
    const window: CutWindow = { kind, from: this.#o.now(), to: Infinity, groups, placement: where };
    c.partition(groups, reset);
    if (targets.length > 1) this.cutWindows.push(window);
    this.#o.log(`${fmt(window.from)} ${kind}: ${groups.map((g) => g.join('+')).join(' | ')} cut${reset === true ? ' (TCP reset)' : reset === 'first-rejects' ? ` (TCP reset toward ${targets.join('+')})` : ''}`);
    return window;
  }

  #heal(window: CutWindow): number {
    this.#cluster.heal();
    window.to = this.#o.now();
    this.#o.log(`${fmt(window.to)} ${window.kind}: healed`);
    return window.to;
  }

  async #inject(f: Fault): Promise<void> {
    const c = this.#cluster;
    const [target] = f.targets;
    const label = `${f.kind} ${f.targets.join('+')}`;
    switch (f.kind) {
      case 'kill':
      case 'term':
      case 'kill-many':
      case 'zone-kill': {
        await this.converge(`${label}: gone`, await this.#stop(label, f.targets, f.kind === 'term' ? 'SIGTERM' : 'SIGKILL'));
        await sleep(f.holdMs);
        await this.converge(`${label}: back`, await this.#restartAll(f.targets));
        return;
      }
      case 'pause':
        await c.signal(target, 'SIGSTOP');
        await sleep(f.holdMs);
        await this.converge(`${label}: resumed`, this.#rel(await c.signal(target, 'SIGCONT')));
        return;
      case 'partition-one':
      case 'partition-two':
      case 'zone-cut':
      case 'partition-reset':
      case 'partition-reset-in':
      case 'partition-long': {
        const window = await this.#cut(f.kind, f.targets, f.kind === 'partition-reset' ? true : f.kind === 'partition-reset-in' ? 'first-rejects' : false);
        await sleep(f.holdMs);
        await this.converge(`${label}: healed`, this.#heal(window));
        return;
      }
      case 'cut-restart': {
        // Cut off first, then killed and restarted while still cut off: it starts without meeting anyone.
        const window = await this.#cut(f.kind, f.targets, false);
        await sleep(this.#o.dropTime + 1000);
        await this.#stop(label, f.targets, 'SIGKILL');
        const back = c.restart(target);
        // start() may wait for a majority it cannot reach: the heal comes after the hold either way.
        await Promise.race([back, sleep(f.holdMs + 30_000)]);
        await sleep(f.holdMs);
        const healed = this.#heal(window);
        await back;
        await this.converge(`${label}: healed`, healed);
        return;
      }
      case 'clock-step': {
        const [first, second] = f.clock!;
        const clock = { file: `${this.#o.tmpDir}/${target}.faketime`, offset: first };
        await this.#stop(label, f.targets, 'SIGKILL');
        await this.converge(`${label}: back at ${first}`, this.#rel(await c.restart(target, clock)));
        await sleep(f.holdMs);
        c.stepClock(target, second);
        // libfaketime reads the file at most once a second: the step lands within that.
        await sleep(1000);
        await this.converge(`${label}: stepped to ${second}`, this.#o.now());
        await sleep(f.holdMs);
        await this.#stop(label, f.targets, 'SIGKILL');
        await this.converge(`${label}: back on the real clock`, this.#rel(await c.restart(target)));
        return;
      }
    }
  }

  async #allCopies(): Promise<MemberCopies[]> {
    const answers = await Promise.all(this.#cluster.live().map((m) => this.#cluster.copies(m.route)));
    return answers.filter((a): a is MemberCopies => a !== undefined);
  }

  /**
   * Polls every live member's status until converged; a violation of promise 5 if that takes more
   * than dropTime + 2 s after `endedAt`. Logins, logouts and regenerates wait meanwhile, so the
   * count of live sessions holds still (abandoned ones are in its range). Then, with every client
   * still, every session's copies are compared (`checkCopies`) until they agree, within the same limit.
   */
  async converge(fault: string, endedAt: number): Promise<void> {
    const limit = this.#o.dropTime + 2000;
    // The bound is members' working time: what they (or this runner, polling) waited for a core on a
    // shared machine is added to it, and reported.
    const waits = new CpuWait([process.pid, ...this.#cluster.pids()]);
    this.#o.lifecycle(false);
    let why: string | undefined = 'not polled';
    let ms: number | undefined;
    let copiesMs: number | undefined;
    let waited = 0;
    /** Why it was not converged at the limit, and at the last poll before it was: a late one's report says. */
    let atLimit: string | undefined;
    let last: string | undefined;
    try {
      while (this.#o.now() - endedAt < this.#o.capMs) {
        const live = this.#cluster.live();
        const statuses = await Promise.all(live.map((m) => this.#cluster.status(m.route)));
        why = notConverged(this.#o.mode, live, statuses, this.#history.liveRange(), this.#o.backups);
        if (why === undefined) break;
        last = why;
        if (atLimit === undefined && this.#o.now() - endedAt > limit + waits.longest()) {
          // The sessions whose copies are off at that moment (clients still running: some may be moving).
          const copies = checkCopies(this.#o.mode, this.#o.backups, await this.#allCopies(), this.#history.definiteBases(), true);
          atLimit = `${why}; sessions off: ${copies.problems.slice(0, 4).join('; ') || 'none'}`;
        }
        await sleep(100);
      }
      if (why === undefined) {
        ms = Math.max(0, this.#o.now() - endedAt);
        waited = waits.longest();
        copiesMs = await this.#copiesAgree(fault, endedAt, limit, waits);
      }
    } finally {
      this.#o.lifecycle(true);
    }
    if (fault !== 'start') this.convergences.push({ fault, endedAt, ms, waitedMs: waited, ...(copiesMs === undefined ? {} : { copiesMs }) });
    if (ms === undefined) {
      this.#history.convergence(`${fault} (ended at ${fmt(endedAt)}): not converged after ${this.#o.capMs} ms: ${why} (at the limit: ${atLimit ?? '?'})`);
      this.stoppedBecause ??= `the cluster did not converge after ${fault}; no further faults (the promises assume re-protection between failures)`;
    } else if (ms > limit + waited) {
      const beyond = waited > 0 ? ` + ${waited} ms waiting for a CPU` : '';
      this.#history.convergence(`${fault} (ended at ${fmt(endedAt)}): converged after ${ms} ms, more than dropTime + 2 s = ${limit} ms${beyond} (at the limit: ${atLimit ?? '?'}; last: ${last ?? '?'})`);
    }
    this.#o.log(`${fmt(this.#o.now())} ${fault}: ${ms === undefined ? `NOT converged: ${why}` : `converged in ${ms} ms${copiesMs === undefined ? '' : `, copies of ${this.#compared} sessions agreed ${copiesMs} ms after the clients were still`}`}`);
  }

  /**
   * With the clients still, polls every live member's copies until every session agrees; a violation
   * of promise 5 (naming the sessions) if they still disagree `limit` ms after. Returns the ms taken.
   */
  async #copiesAgree(fault: string, endedAt: number, limit: number, waits: CpuWait): Promise<number | undefined> {
    await this.#o.hold(true);
    try {
      const still = this.#o.now();
      // The same allowance as the counts': what a member or the runner waited for a CPU from here on.
      const waitedBefore = waits.longest();
      let problems: string[] = [];
      let polls = 0;
      while (polls < 3 || this.#o.now() - still < limit + Math.max(0, waits.longest() - waitedBefore)) {
        polls++;
        const live = this.#cluster.live();
        const answers = await Promise.all(live.map((m) => this.#cluster.copies(m.route)));
        const missing = live.filter((_, i) => answers[i] === undefined).map((m) => `${m.route} did not answer /chaos/copies`);
        const majority = live.length * 2 > this.#cluster.routes.length;
        const check = checkCopies(this.#o.mode, this.#o.backups, answers.filter((a): a is MemberCopies => a !== undefined), this.#history.definiteBases(), majority);
        problems = [...missing, ...check.problems];
        this.#compared = check.sessions;
        if (problems.length === 0) return this.#o.now() - still;
        await sleep(200);
      }
      const shown = problems.slice(0, 6).join('; ');
      this.#history.convergence(
        `${fault} (ended at ${fmt(endedAt)}): copies of ${problems.length} sessions still disagree ${limit} ms (+ ${Math.max(0, waits.longest() - waitedBefore)} ms waiting for a CPU) after the clients were still: ${shown}${problems.length > 6 ? '; …' : ''}`,
      );
      return undefined;
    } finally {
      await this.#o.hold(false);
    }
  }
}
