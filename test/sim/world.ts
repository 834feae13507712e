/**
 * One simulated schedule, from a seed: members start, clients run, the nemesis injects one fault at a
 * time (crash then restart, pause, partition then heal, graceful stop then restart, connection resets)
 * and waits for convergence (a checkpoint dropTime + 2 s after the fault ended) before the next, as
 * the promises assume. At the end the history is checked against every promise.
 */
import { DeltaManager } from '../../src/replication/delta-manager.js';
import { MSG } from '../../src/replication/message-types.js';
import { messages } from '../../src/codec/messages.js';
import type { MemberInfo } from '../../src/cluster/types.js';
import { checkConvergence } from './convergence.js';
import { check, expiryBounds, type ExpiryRules, type Violation } from './checker.js';
import { Client, MAX_AGE, type ClientWorld } from './clients.js';
import { checkAgreement } from './agreement.js';
import { expiryRace } from './expiry-race.js';
import { leaseRace } from './lease-race.js';
import { writeCut } from './write-cut.js';
import type { RaceWorld } from './race-world.js';
import { hungCalls, probeAll, probeEnded } from './availability.js';
import { LEGACY, type Feature } from './features.js';
import { installGlobals, type GlobalUse } from './globals.js';
import { History, type Op } from './history.js';
import { SIM_EPOCH, SimLoop } from './loop.js';
import { Membership, timingFor } from './membership.js';
import { SimMember, type MemberConfig } from './member.js';
import { SimNetwork } from './network.js';
import { Prng } from './prng.js';
import { Trace, traceLogger } from './trace.js';
import { ReferenceStore, type ReferenceFault } from './reference-store.js';
import type { SimChannel, ChannelObserver } from './channel.js';

export interface SimOptions {
  seed: number;
  mode: 'backup' | 'delta';
  /** Members (default: 3-5 in backup mode, 2-3 in delta mode, chosen by the seed). */
  members?: number;
  /** Fault rounds (default 2-3 by the seed). */
  rounds?: number;
  /** Clients, each with its own session (default 4). */
  clients?: number;
  dropTime?: number;
  frequency?: number;
  ackTimeout?: number;
  ack?: 'sync' | 'async';
  /**
   * Test the checker: every member serves from one linearizable reference store instead of the
   * protocol (broken on purpose unless 'none'); convergence is not checked.
   */
  reference?: ReferenceFault;
  /**
   * Sessions by user (default true, false with `reference`): members run the principal index, and
   * clients sometimes log out everywhere. Off, the schedules are those of the seeds found before it
   * (the regression seeds).
   */
  principals?: boolean;
  /**
   * Routes whose members run the previous release: without a handler for the message types in
   * `NEWER_MESSAGES` (a newer member must fall back to what they have).
   */
  olderRelease?: readonly string[];
  /** Backup mode: backups per session (option `backups`, default 1). */
  backups?: number;
  /** Members run with `expectedMembers` set to the number of routes. */
  expectedMembers?: boolean;
  /**
   * The oracles and nemeses beyond the original ones (features.ts); default `LEGACY`, the schedules
   * the regression seeds were found with.
   */
  features?: readonly Feature[];
  /** Keep every trace line (replay). */
  traceAll?: boolean;
  echo?: (line: string) => void;
}

export interface SimResult {
  seed: number;
  mode: 'backup' | 'delta';
  violations: Violation[];
  hash: string;
  events: number;
  simMs: number;
  coverage: Record<string, number>;
  schedule: string[];
  traceTail: string[];
  trace: string[] | undefined;
  globals: GlobalUse;
  ops: number;
  /** Exceptions and unhandled rejections from the code under test: each would crash a member. */
  errors: string[];
}

type Fault =
  | 'crash'
  | 'pause'
  | 'partition'
  | 'leave'
  | 'reset'
  | 'none'
  // The added nemeses (features.ts), chosen only when enabled:
  | 'multi-kill'
  | 'zone-kill'
  | 'long-partition'
  | 'long-pause'
  | 'one-way'
  | 'non-transitive'
  | 'reset-partition'
  | 'mixed-reset'
  | 'cut-off-start'
  | 'logout-crash'
  | 'clock-step'
  | 'slow-link'
  | 'even-split'
  | 'takeover-partition'
  | 'grant-partition'
  | 'logout-reset'
  | 'expiry-race'
  | 'lease-race'
  | 'write-cut';

/** Longer than every grace of the protocol (`forgetAfter`, 60 s, is the longest). */
const PAST_EVERY_GRACE: [number, number] = [61_000, 70_000];
/** The members' `forgetAfter` (the library's default). */
const FORGET_AFTER = 60_000;

export async function runSchedule(o: SimOptions): Promise<SimResult> {
  const salt = o.mode === 'backup' ? 0x5eed : 0xde17a;
  const plan = new Prng((o.seed * 2654435761) ^ salt);
  const netRng = new Prng((o.seed * 40503) ^ (salt + 1));
  const clientRng = new Prng((o.seed * 69069) ^ (salt + 2));
  const idRng = new Prng((o.seed * 1103515245) ^ (salt + 3));
  // Choices of the added oracles and nemeses, apart from `plan` so that turning them off replays the
  // original schedules.
  const extra = new Prng((o.seed * 22695477) ^ (salt + 5));
  const loop = new SimLoop();
  const trace = new Trace(() => loop.now, o.traceAll === true, o.echo);
  const globals: GlobalUse = { dateNow: 0, timers: 0 };
  const uninstall = installGlobals(loop, new Prng(o.seed ^ (salt + 4)), globals);
  // A rejection nobody handles would crash a real member (Node's default): record it as a failure.
  const onRejection = (reason: unknown) => {
    loop.errors.push(`unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
  };
  process.on('unhandledRejection', onRejection);
  try {
    return await simulate(o, { plan, netRng, clientRng, idRng, extra, loop, trace, globals });
  } finally {
    process.off('unhandledRejection', onRejection);
    uninstall();
  }
}

interface Parts {
  plan: Prng;
  netRng: Prng;
  clientRng: Prng;
  idRng: Prng;
  extra: Prng;
  loop: SimLoop;
  trace: Trace;
  globals: GlobalUse;
}

async function simulate(o: SimOptions, p: Parts): Promise<SimResult> {
  const { plan, loop, trace } = p;
  const mode = o.mode;
  const n = o.members ?? (mode === 'backup' ? plan.int(3, 5) : plan.int(2, 3));
  const rounds = o.rounds ?? plan.int(2, 3);
  const frequency = o.frequency ?? 250;
  const dropTime = o.dropTime ?? 1000;
  // The reference store (a checker test) knows nothing of principals: its schedules revoke nothing.
  const withPrincipals = o.principals ?? o.reference === undefined;
  const features = new Set<Feature>(o.features ?? LEGACY);
  const on = (f: Feature) => features.has(f);
  const { extra } = p;
  // The expiry profile: in half the schedules, sessions live seconds (maxAge), some at most a few more
  // seconds however active (absoluteMaxAge).
  const shortLived = on('expiry') && extra.chance(0.5);
  const drawnAge = shortLived ? Math.round(extra.range(2500, 12_000)) : MAX_AGE;
  const drawnMaxAge = shortLived && extra.chance(0.5) ? Math.round(extra.range(4000, 20_000)) : undefined;
  // Several members killed at once: k = backups, so backup mode runs k = 2 in some schedules.
  const backups = o.backups ?? (mode === 'backup' && on('multi-kill') && n >= 4 && extra.chance(0.4) ? 2 : undefined);
  // Zones: three, round robin over the routes, in half the schedules.
  const zones = on('zone') && n >= 3 && extra.chance(0.5) ? Object.fromEntries(Array.from({ length: n }, (_, i) => [`n${i + 1}`, `z${(i % 3) + 1}`])) : undefined;
  // Partitions longer than every grace keep the promises only with expectedMembers (README).
  const expected = o.expectedMembers === true || (on('long-partition') && extra.chance(0.4));
  // Clocks: each member's wall clock off by up to a few seconds (less when sessions live seconds) and
  // running up to 0.2 % fast or slow; the clock-step fault steps one.
  const maxOffset = shortLived ? 1000 : 5000;
  const maxStep = shortLived ? 1000 : 20_000;
  const drawnClocks = on('clock') && extra.chance(0.5) ? Object.fromEntries(Array.from({ length: n }, (_, i) => [`n${i + 1}`, { offset: extra.range(-maxOffset, maxOffset), drift: extra.range(-0.002, 0.002) }])) : undefined;
  // The expiry-race nemesis (expiry-race.ts), in 60 % of the short-lived schedules: it needs an
  // absoluteMaxAge (every version of a session then ends at one instant, by each holder's clock), a
  // maxAge that outlasts its cut, and clocks it can step. Drawn last, and only when enabled: the other schedules replay unchanged.
  const race = on('expiry-race') && shortLived && extra.chance(0.6);
  // There, a copy a member stopped receiving writes to must not end by maxAge before the session's
  // absolute end: at least 9 s.
  const maxAge = race ? Math.max(drawnAge, 9000) : drawnAge;
  const absoluteMaxAge = drawnMaxAge ?? (race ? Math.round(extra.range(8000, 20_000)) : undefined);
  const clocks = drawnClocks ?? (race ? Object.fromEntries(Array.from({ length: n }, (_, i) => [`n${i + 1}`, { offset: 0, drift: 0 }])) : undefined);
  // An ackTimeout shorter than the lease (3/4 of dropTime) in 40 % of the schedules: a member cut off
  // then hears a request fail while its lease runs (delta seeds 16 and 22 of `short-ack`). Drawn after
  // every other option, and only when enabled: the other schedules replay unchanged.
  const shortAck = on('short-ack') && o.ackTimeout === undefined && extra.chance(0.4) ? Math.round(extra.range(0.3, 0.7) * 0.75 * dropTime) : undefined;
  const t0 = loop.now;
  /** How far a member's wall clock may be off now, for the expiry rules. */
  let worstOffset = 0;
  const clockSlack = (): number => {
    if (clocks === undefined) return 0;
    worstOffset = Math.max(worstOffset, ...Object.values(clocks).map((c) => Math.abs(c.offset)));
    // Twice: a creation time stamped by one member's clock is compared by another's.
    return 2 * worstOffset + 0.004 * (loop.now - t0);
  };
  const expiryRules: ExpiryRules | undefined = shortLived ? { absoluteMaxAge, slack: 50 } : undefined;
  const cfg: MemberConfig = {
    mode,
    ack: o.ack ?? 'sync',
    ackTimeout: o.ackTimeout ?? shortAck ?? 1700,
    dropTime,
    frequency,
    reprotectRate: 2000,
    stateTransferTimeout: 20_000,
    stateTransferBatch: 3,
    principals: withPrincipals,
    olderRelease: o.olderRelease ?? [],
    ...(backups !== undefined ? { backups } : {}),
    ...(expected ? { expectedMembers: n } : {}),
    ...(absoluteMaxAge !== undefined ? { absoluteMaxAge } : {}),
    ...(zones !== undefined ? { zones } : {}),
    ...(clocks !== undefined ? { clocks } : {}),
    ...(o.traceAll === true ? { logger: traceLogger(trace) } : {}),
  };
  const timing = timingFor(frequency, dropTime);
  const net = new SimNetwork(loop, p.netRng);
  const coverage: Record<string, number> = {};
  const cover = (what: string) => (coverage[what] = (coverage[what] ?? 0) + 1);
  const membership = new Membership(loop, net, p.netRng, timing, (s) => trace.add(s));
  const history = new History();
  const violations: Violation[] = [];
  const schedule: string[] = [];
  const channels = new Map<string, SimChannel>();
  const current = new Map<string, SimMember>();
  const all: SimMember[] = [];
  /** Takeovers in flight, by base: which members are taking it now. */
  const taking = new Map<string, Set<SimMember>>();
  let partitionSides: Map<string, number> | undefined;
  /** The grant-partition nemesis: called the instant a member handles a take request. */
  let onTake: ((at: SimChannel, from: MemberInfo) => void) | undefined;
  /** The slow-grant nemesis: armed during a checkpoint's probes, for the next take a member handles. */
  let slowGrant = false;
  /** The logout-reset nemesis: called the instant a member sends a removal that destroys a session. */
  let onDestroy: ((from: SimChannel) => void) | undefined;
  /** The write-cut nemesis: called for each write (a delta) a member sends and each one a holder applies. */
  let onWrite: ((event: 'sent' | 'applied', from: SimMember, to: SimMember, body: Buffer) => void) | undefined;
  const memberOf = (ch: SimChannel) => all.find((m) => m.channel === ch);
  const memberById = (id: string) => all.find((m) => m.channel.id === id);
  const partitionAcks = new Set<number>();
  /** When each member incarnation was killed (ack 'async' may lose what it acknowledged just before). */
  const crashes = new Map<string, number>();
  const reference = o.reference === undefined ? undefined : new ReferenceStore(o.reference);

  const observer: ChannelObserver = {
    request: (from, to, type, body) => {
      trace.add(`${from.proc.name} > ${to.route} ${type.slice(8)}`);
      if (type === MSG.remove && onDestroy !== undefined && messages.remove.decode(body).destroy) onDestroy(from);
      if (type === MSG.delta && onWrite !== undefined) {
        const a = memberOf(from);
        const b = memberById(to.id);
        if (a !== undefined && b !== undefined) onWrite('sent', a, b, body);
      }
    },
    handled: (at, from, type, body) => {
      if (type === MSG.take) onTake?.(at, from);
      if (type === MSG.take && slowGrant) {
        // This take's answer leaves its grantor 5 to 60 ms past the taker's ackTimeout; the grantor's
        // other answers are not held up (its connection is not: the answer alone was slow).
        slowGrant = false;
        const late = plan.range(cfg.ackTimeout + 5, cfg.ackTimeout + 60);
        trace.add(`NEMESIS slow grant ${at.route}>${from.route} ${Math.round(late)}ms`);
        cover("a take's answer sent past its taker's ackTimeout during the probes (slow-grant)");
        return late;
      }
      if (type === MSG.delta && onWrite !== undefined) {
        const a = memberById(from.id);
        const b = memberOf(at);
        if (a !== undefined && b !== undefined) onWrite('applied', a, b, body);
      }
      if (type === MSG.statePage) cover('state transfer page of whole copies (from an older release)');
      if (type === MSG.statePack) cover('state transfer page of packed copies');
      if (type === 'session.delta' || type === 'session.copy') {
        const m = all.find((x) => x.channel === at);
        if (m !== undefined && mode === 'delta' && !m.ready) cover('delta or copy during a state transfer');
      }
    },
    failed: (from, to, type, code) => {
      trace.add(`${from.proc.name} x ${to.slice(0, 4)} ${type.slice(8)} ${code}`);
      // Only the questions a takeover asks every member: a member none of whose answers came cannot tell.
      if (code === 'ERR_REQUEST_TIMEOUT' && (type === MSG.survey || type === MSG.fetch || type === MSG.locate)) lastTimeout.set(from.proc.name, loop.now);
    },
    refusedLate: (at, from, type, lateMs) => {
      trace.add(`${at.proc.name} refused late ${type.slice(8)} from ${from.route} (${Math.round(lateMs)}ms past its deadline)`);
      cover('a request refused for arriving after its sender gave up');
    },
  };

  const startMember = (route: string, incarnation: number): Promise<void> =>
    new Promise((ready) => {
      const m = new SimMember(route, incarnation, loop, net, membership, p.idRng, cfg, observer, (id) => channels.get(id));
      channels.set(m.id, m.channel);
      if (reference !== undefined) {
        m.store = reference.storeFor();
        m.binder = (_ctx, next) => next();
      }
      current.set(route, m);
      all.push(m);
      trace.add(`start ${m.proc.name} id=${m.id.slice(0, 4)}`);
      const ch = m.channel;
      ch.on('member-added', (x) => trace.add(`${m.proc.name}: + ${x.route}#${x.id.slice(0, 4)}`));
      ch.on('member-suspected', (x) => trace.add(`${m.proc.name}: ? ${x.route}#${x.id.slice(0, 4)}`));
      ch.on('member-removed', (x, why) => {
        trace.add(`${m.proc.name}: - ${x.route}#${x.id.slice(0, 4)} ${why}`);
        if ([...taking.values()].some((s) => s.size > 0)) cover('member removed during a takeover');
      });
      // Observe takeovers (an acquire of a session this member does not serve), to count races.
      const mgr = m.manager;
      const acquire = mgr.acquire.bind(mgr);
      mgr.acquire = async (base: string) => {
        if (mgr.isPrimary(base)) return acquire(base);
        let set = taking.get(base);
        if (set === undefined) taking.set(base, (set = new Set()));
        set.add(m);
        if (set.size > 1) cover('takeover race: two members acquiring one session');
        try {
          return await acquire(base);
        } finally {
          set.delete(m);
          if (set.size === 0) taking.delete(base);
        }
      };
      m.start(() => {
        trace.add(`ready ${m.proc.name}`);
        ready();
      });
    });

  const ts = () => `${((loop.now - SIM_EPOCH) / 1000).toFixed(2)}s`;
  const running = () => [...current.values()].filter((m) => m.phase === 'running');
  const sleepUntil = (t: number) => new Promise<void>((r) => loop.at(t, loop.world, r));
  let quietFrom = Infinity;
  /** Killed the moment a client has a logout's (or a regenerate's) acknowledgement there; `anyAnswer`: a failure too, and a revoke's. */
  let killAfterLogout: { victim: SimMember; done: () => void; anyAnswer?: boolean } | undefined;
  let done = false;

  const world: ClientWorld = {
    loop,
    rng: p.clientRng,
    revokes: withPrincipals,
    history,
    targets: () => running().filter((m) => m.ready),
    memberByRoute: (route) => current.get(route),
    quiet: () => done || loop.now >= quietFrom,
    maxAge,
    replayExpired: shortLived,
    idleAfterError: on('idle-after-error'),
    trace: (s) => trace.add(s),
    cover,
    onOpEnd: (op: Op) => {
      // The logout-crash and logout-reset nemeses: the member dies the moment the client has the logout's answer.
      const k = killAfterLogout;
      if (k !== undefined && op.member === k.victim.proc.name && (op.kind === 'logout' || op.kind === 'regenerate' || (k.anyAnswer === true && op.kind === 'revoke')) && (op.status === 'acked' || k.anyAnswer === true)) {
        killAfterLogout = undefined;
        kill([k.victim]);
        k.done();
      }
      if (op.status === 'unavailable') cover('503 session unavailable');
      if (op.status === 'acked' && op.kind === 'replay') cover('replayed an old cookie');
      if (op.status === 'acked' && op.kind === 'regenerate') cover('regenerate');
      if (op.status === 'acked' && op.kind === 'logout') cover('logout');
      if (partitionSides !== undefined && op.status === 'acked' && op.calls.some((c) => c.kind === 'set' && c.ok === true)) {
        const side = partitionSides.get(op.member.split('#')[0]) ?? 0;
        const before = partitionAcks.size;
        partitionAcks.add(side);
        if (before === 1 && partitionAcks.size === 2) cover('partition with writes acknowledged on both sides');
      }
    },
  };

  /** When each member's last survey of the others timed out (the `definite` oracle excuses a probe it overlaps). */
  const lastTimeout = new Map<string, number>();
  const probing = {
    loop,
    history,
    prober: new Client(0, world),
    members: all,
    bound: 2 * cfg.ackTimeout + dropTime + 2000,
    hung: 4 * cfg.ackTimeout + 2 * dropTime + 4000,
    expiry: expiryRules,
    sleepUntil: (t: number) => sleepUntil(t),
    timedOutSince: (m: SimMember, t: number) => (lastTimeout.get(m.proc.name) ?? -Infinity) >= t,
  };

  const checkpoint = async (faultEnd: number, label: string): Promise<void> => {
    const at = faultEnd + dropTime + 2000;
    quietFrom = at - 1500;
    await sleepUntil(at);
    if (expiryRules !== undefined) expiryRules.slack = 50 + clockSlack();
    // Without a strict majority of the cluster's seats running, members serve nothing, adopt nothing and
    // leave copies unverified by design (README: a two-member cluster answers 503 while one is down):
    // the excuse covers this checkpoint only. Delta mode's convergence (a copy on every live member,
    // at most one primary) needs no adoption, so it stays checked.
    const seats = expected ? n : [...current.values()].filter((m) => m.phase !== 'stopped').length;
    const majority = running().length * 2 > seats;
    if (!majority) cover('checkpoint without a majority running (availability excused)');
    const excused = !majority && mode === 'backup';
    const r = reference === undefined && !excused ? checkConvergence(history, all, mode, at, label, backups ?? 1, expiryRules) : { checked: 0, skippedBusy: 0, violations: [] };
    trace.add(`checkpoint ${label}: ${r.checked} sessions, ${r.skippedBusy} busy, ${r.violations.length} not converged`);
    if (r.skippedBusy > 0) cover('sessions busy at a checkpoint (not counted)');
    violations.push(...r.violations);
    if (reference === undefined && on('agreement')) violations.push(...checkAgreement(history, all, mode, at, label, majority, (base) => {
          if (expiryRules === undefined) return false;
          const sets = (history.byBase.get(base) ?? []).filter((c) => c.kind === 'set');
          return expiryBounds(sets, at, expiryRules).soonest <= at + expiryRules.slack;
        }));
    if (on('availability') && majority) {
      violations.push(...hungCalls(probing, at, label));
      // The slow-grant nemesis: one grant during the probes is late, as one lost segment makes it.
      if (on('slow-grant') && running().length >= 3 && plan.chance(0.5)) slowGrant = true;
      const probed = await probeAll(probing, label);
      slowGrant = false;
      if (probed.probes > 0) cover('availability probes (reads at every member once quiet)');
      violations.push(...probed.violations);
      // Every seat running: a session that ended answers "no session" (or its content), never 503.
      if (on('definite') && running().length === seats) {
        const ended = await probeEnded(probing, label);
        if (ended.probes > 0) cover('ended sessions probed once quiet with every seat running');
        violations.push(...ended.violations);
      }
    }
    quietFrom = Infinity;
  };

  const pendingWrites = (m?: SimMember) =>
    history.calls.some((c) => c.kind === 'set' && c.end === undefined && (m === undefined || c.member === m.proc.name));

  // ---- the run ----
  const routes = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const incarnation = new Map(routes.map((r) => [r, 1]));
  schedule.push(
    `${mode}, ${n} members, ${o.clients ?? 4} clients, dropTime ${dropTime}, ack ${cfg.ack}` +
      (cfg.ackTimeout !== 1700 ? `, ackTimeout ${cfg.ackTimeout}` : '') +
      (shortLived ? `, maxAge ${maxAge}, absoluteMaxAge ${absoluteMaxAge ?? '-'}` : '') +
      (backups !== undefined ? `, backups ${backups}` : '') +
      (expected ? ', expectedMembers' : '') +
      (zones !== undefined ? `, zones ${Object.values(zones).join(',')}` : '') +
      (clocks !== undefined ? `, clocks ${Object.values(clocks).map((c) => `${Math.round(c.offset)}ms/${(c.drift * 100).toFixed(2)}%`).join(',')}` : ''),
  );
  for (const r of routes) loop.after(plan.range(0, 50), loop.world, () => void startMember(r, 1));
  await loop.run(loop.now + (mode === 'delta' ? frequency * 4 + 1200 : 1000));
  const clients = Array.from({ length: o.clients ?? 4 }, (_, i) => new Client(i + 1, world));
  for (const c of clients) loop.after(plan.range(0, 200), loop.world, () => c.tick());

  /** Restarts `route`; `cutOffFor`: it starts unable to reach anyone, for that long. */
  const restart = async (route: string, cutOffFor?: number): Promise<void> => {
    await sleepUntil(loop.now + plan.range(100, 1000));
    const inc = (incarnation.get(route) ?? 0) + 1;
    incarnation.set(route, inc);
    schedule.push(`${ts()} restart ${route}#${inc}${cutOffFor !== undefined ? ` cut off for ${Math.round(cutOffFor)} ms` : ''}`);
    if (cutOffFor !== undefined) {
      trace.add(`NEMESIS partition ${route} (before it starts) ${Math.round(cutOffFor)}ms`);
      membership.partitioned(new Map([...current.keys()].map((r) => [r, r === route ? 1 : 0])));
    }
    const started = loop.now;
    const ready = startMember(route, inc);
    if (cutOffFor !== undefined) {
      await sleepUntil(started + cutOffFor);
      trace.add('NEMESIS heal');
      membership.healed();
      cover('member started while cut off');
    }
    await Promise.race([ready, sleepUntil(loop.now + 10_000)]);
    await checkpoint(Math.max(started, loop.now), `after restart of ${route}#${inc}`);
  };

  /** SIGKILL of each of `victims` at one instant. */
  const kill = (victims: readonly SimMember[]): void => {
    for (const victim of victims) {
      trace.add(`NEMESIS crash ${victim.proc.name}`);
      victim.crash();
      crashes.set(victim.proc.name, loop.now);
      history.crashed(victim.proc.name, loop.now);
      for (const op of history.ops) if (op.member === victim.proc.name && op.clientEnd === undefined) op.onCrash?.();
    }
  };

  /** Waits for `killed` (the logout's answer killed `victim`) or `ms`, then kills it anyway; then 100-500 ms. */
  const killOnLogout = async (victim: SimMember, killed: Promise<void>, ms: number, covered: string): Promise<void> => {
    await Promise.race([killed, sleepUntil(loop.now + ms)]);
    if (killAfterLogout !== undefined) {
      killAfterLogout = undefined;
      kill([victim]);
    } else cover(covered);
    await sleepUntil(loop.now + plan.range(100, 500));
  };

  /** A partition's sides: `k` of `live`, drawn one by one, on side 1; the rest on side 0. */
  const drawSide = (live: readonly SimMember[], k: number): Map<string, number> => {
    const side = new Map<string, number>(live.map((m) => [m.route, 0]));
    const order = [...live];
    for (let i = 0; i < k; i++) side.set(order.splice(plan.int(0, order.length - 1), 1)[0].route, 1);
    return side;
  };

  /** A partition-like fault's length: past dropTime and the check (members drop each other), or short. */
  const faultLength = (pLong: number): number =>
    plan.chance(pLong) ? plan.range(dropTime + timing.checkTimeout + 700, 2 * dropTime + 3000) : plan.range(100, dropTime * 0.8);

  /** The schedule as the aimed nemeses (lease-race, write-cut) see it. */
  const raceWorld = (): RaceWorld => ({
    now: () => loop.now,
    plan,
    mode,
    dropTime,
    removal: dropTime + timing.checkTimeout + 700,
    running,
    clients,
    prober: probing.prober,
    sleepUntil,
    partition: (side, resets) => membership.resetPartitioned(side, resets),
    heal: () => membership.healed(),
    note: (line) => schedule.push(`${ts()} ${line}`),
    trace: (line) => trace.add(line),
    cover,
  });

  const nemesis = async (): Promise<void> => {
    await sleepUntil(loop.now + plan.range(500, 1500));
    for (let r = 0; r < rounds; r++) {
      const live = running();
      const fault = plan.weighted<Fault>([
        ['crash', 3],
        ['pause', 3],
        ['partition', live.length >= 2 ? 2 : 0],
        ['leave', 2],
        ['reset', 1],
        ['none', 1],
        ['multi-kill', on('multi-kill') && live.length >= 3 ? 2 : 0],
        ['zone-kill', zones !== undefined && new Set(live.map((m) => zones[m.route])).size >= 2 ? 2 : 0],
        ['long-partition', on('long-partition') && expected && live.length >= 3 ? 1 : 0],
        ['long-pause', on('long-pause') ? 1 : 0],
        ['one-way', on('one-way') && live.length >= 2 ? 2 : 0],
        ['non-transitive', on('non-transitive') && live.length >= 3 ? 2 : 0],
        ['reset-partition', on('reset-partition') && live.length >= 2 ? 2 : 0],
        ['mixed-reset', on('mixed-reset') && live.length >= 2 ? 2 : 0],
        ['cut-off-start', on('cut-off-start') ? 2 : 0],
        ['logout-crash', on('logout-crash') && live.length >= 2 ? 2 : 0],
        ['clock-step', drawnClocks !== undefined ? 2 : 0],
        ['slow-link', on('slow-link') && live.length >= 2 ? 2 : 0],
        ['even-split', on('even-split') && live.length >= 4 && live.length % 2 === 0 ? 3 : 0],
        ['takeover-partition', on('takeover-partition') && live.length >= 3 ? 2 : 0],
        ['grant-partition', on('grant-partition') && live.length >= 3 ? 2 : 0],
        ['logout-reset', on('logout-reset') && live.length >= 2 ? 2 : 0],
        ['expiry-race', race && live.length >= 3 ? 8 : 0],
        ['lease-race', on('lease-race') && live.length >= 3 ? 3 : 0],
        ['write-cut', on('write-cut') && live.length >= 3 ? 3 : 0],
      ]);
      const victim = plan.pick(live);
      // Often strike while the victim is in the middle of a write: the interesting interleavings.
      if ((fault === 'crash' || fault === 'pause' || fault === 'leave') && plan.chance(0.6)) {
        const give = loop.now + 1500;
        while (loop.now < give && !pendingWrites(victim)) await sleepUntil(loop.now + plan.range(0.5, 3));
      }
      switch (fault) {
        case 'crash': {
          if (pendingWrites(victim)) cover('crash during a write on the crashed member');
          else if (pendingWrites()) cover('crash during a write elsewhere');
          schedule.push(`${ts()} crash ${victim.proc.name}`);
          trace.add(`NEMESIS crash ${victim.proc.name}`);
          victim.crash();
          crashes.set(victim.proc.name, loop.now);
          history.crashed(victim.proc.name, loop.now);
          for (const op of history.ops) if (op.member === victim.proc.name && op.clientEnd === undefined) op.onCrash?.();
          await checkpoint(loop.now, `after crash of ${victim.proc.name}`);
          await restart(victim.route);
          break;
        }
        case 'pause': {
          const long = plan.chance(0.65);
          const ms = long ? plan.range(dropTime + timing.checkTimeout + 700, 2 * dropTime + 2500) : plan.range(100, dropTime * 0.8);
          if (pendingWrites(victim)) cover('pause during a write on the paused member');
          schedule.push(`${ts()} pause ${victim.proc.name} for ${Math.round(ms)} ms`);
          trace.add(`NEMESIS pause ${victim.proc.name} ${Math.round(ms)}ms`);
          loop.pause(victim.proc);
          membership.paused(victim.channel, ms);
          await sleepUntil(loop.now + ms);
          if (victim.proc.held.some((e) => e.timer)) cover(long ? 'late timers after a long pause' : 'late timers after a short pause');
          trace.add(`NEMESIS resume ${victim.proc.name}`);
          loop.resume(victim.proc);
          membership.resumed(victim.channel, ms);
          await checkpoint(loop.now, `after pause of ${victim.proc.name}`);
          break;
        }
        case 'partition': {
          const side = drawSide(live, live.length >= 5 && plan.chance(0.3) ? 2 : 1);
          const long = plan.chance(0.7);
          const ms = long ? plan.range(dropTime + timing.checkTimeout + 700, 2 * dropTime + 3000) : plan.range(100, dropTime * 0.8);
          const cutOff = [...side].filter(([, s]) => s === 1).map(([r]) => r);
          schedule.push(`${ts()} partition {${cutOff.join(',')}} from the rest for ${Math.round(ms)} ms`);
          trace.add(`NEMESIS partition ${cutOff.join(',')} ${Math.round(ms)}ms`);
          partitionSides = side;
          partitionAcks.clear();
          membership.partitioned(side);
          await sleepUntil(loop.now + ms);
          trace.add('NEMESIS heal');
          partitionSides = undefined;
          membership.healed();
          await checkpoint(loop.now, `after partition of ${cutOff.join(',')}`);
          break;
        }
        case 'leave': {
          if (pendingWrites()) cover('graceful stop during writes');
          schedule.push(`${ts()} stop ${victim.proc.name} (graceful)`);
          trace.add(`NEMESIS stop ${victim.proc.name}`);
          const stopped = new Promise<void>((r) => victim.stop(r));
          const began = loop.now;
          await Promise.race([stopped, sleepUntil(loop.now + 20_000)]);
          if (victim.phase !== 'stopped') cover('graceful stop took over 20 s');
          for (const op of history.ops) if (op.member === victim.proc.name && op.clientEnd === undefined) op.onCrash?.();
          history.crashed(victim.proc.name, loop.now);
          await checkpoint(Math.max(began, loop.now), `after stop of ${victim.proc.name}`);
          await restart(victim.route);
          break;
        }
        case 'reset': {
          schedule.push(`${ts()} connection resets`);
          for (let i = 0; i < 4; i++) {
            const rs = running();
            if (rs.length < 2) break;
            const a = plan.pick(rs);
            const b = plan.pick(rs.filter((x) => x !== a));
            trace.add(`NEMESIS reset ${a.proc.name}>${b.proc.name}`);
            if (pendingWrites()) cover('connection reset during writes');
            membership.connectionReset(a.channel, b.channel);
            await sleepUntil(loop.now + plan.range(20, 300));
          }
          await checkpoint(loop.now, 'after connection resets');
          break;
        }
        case 'multi-kill':
        case 'zone-kill': {
          let victims: SimMember[];
          if (fault === 'zone-kill') {
            const zone = plan.pick([...new Set(live.map((m) => zones![m.route]))]);
            victims = live.filter((m) => zones![m.route] === zone);
          } else {
            // Backup mode: as many as each session has backups; delta mode: all but one.
            const k = Math.min(live.length - 1, mode === 'backup' ? (backups ?? 1) : live.length - 1);
            const pool = [...live];
            victims = Array.from({ length: k }, () => pool.splice(plan.int(0, pool.length - 1), 1)[0]);
          }
          if (victims.length === live.length) victims.pop();
          schedule.push(`${ts()} kill ${victims.map((m) => m.proc.name).join(', ')} at once${fault === 'zone-kill' ? ` (zone ${zones![victims[0].route]})` : ''}`);
          kill(victims);
          await checkpoint(loop.now, `after killing ${victims.map((m) => m.proc.name).join(', ')}`);
          for (const v of victims) await restart(v.route);
          break;
        }
        case 'long-pause': {
          // Without expectedMembers, the others forget a member silent for forgetAfter, and a destruction
          // every member they still know acknowledged lets its tombstones go 8 ackTimeouts later: a
          // member paused longer than both may bring a destroyed session back (README, "What they
          // assume"). Those pauses are drawn with expectedMembers only (short-ack makes them reachable).
          const [lo, hi] = PAST_EVERY_GRACE;
          const ms = plan.range(lo, expected ? hi : Math.max(lo, Math.min(hi, FORGET_AFTER + 8 * cfg.ackTimeout - 500)));
          schedule.push(`${ts()} pause ${victim.proc.name} for ${Math.round(ms)} ms (past every grace)`);
          trace.add(`NEMESIS pause ${victim.proc.name} ${Math.round(ms)}ms`);
          loop.pause(victim.proc);
          membership.paused(victim.channel, ms);
          await sleepUntil(loop.now + ms);
          trace.add(`NEMESIS resume ${victim.proc.name}`);
          loop.resume(victim.proc);
          membership.resumed(victim.channel, ms);
          await checkpoint(loop.now, `after a long pause of ${victim.proc.name}`);
          break;
        }
        case 'long-partition':
        case 'reset-partition': {
          // Long ones cut up to half (an even split leaves no majority anywhere).
          const side = drawSide(live, fault === 'long-partition' ? plan.int(1, Math.floor(live.length / 2)) : 1);
          const ms = fault === 'long-partition' ? plan.range(...PAST_EVERY_GRACE) : faultLength(0.7);
          const cutOff = [...side].filter(([, s]) => s === 1).map(([r]) => r);
          const how = fault === 'reset-partition' ? ' behind firewalls that reset' : '';
          schedule.push(`${ts()} partition {${cutOff.join(',')}} from the rest for ${Math.round(ms)} ms${how}`);
          trace.add(`NEMESIS partition ${cutOff.join(',')} ${Math.round(ms)}ms${how}`);
          if (fault === 'reset-partition') membership.resetPartitioned(side);
          else membership.partitioned(side);
          await sleepUntil(loop.now + ms);
          trace.add('NEMESIS heal');
          membership.healed();
          await checkpoint(loop.now, `after partition of ${cutOff.join(',')}${how}`);
          break;
        }
        case 'mixed-reset': {
          // Firewalls reject on some links and not others: one side removes the other within
          // milliseconds, the other only after dropTime, so their grace periods start seconds apart.
          // 'inbound': the cut-off side rejects what comes in (the rest sees resets, it sees silence);
          // 'outbound': the reverse; 'mixed': each member's connection to each peer drawn alone.
          const side = drawSide(live, plan.int(1, Math.floor(live.length / 2)));
          const shape = plan.pick(['inbound', 'outbound', 'mixed'] as const);
          const resets = new Set<string>();
          for (const a of live) {
            for (const b of live) {
              if (side.get(a.route) === side.get(b.route)) continue;
              const reset = shape === 'mixed' ? plan.chance(0.5) : (side.get(a.route) === 0) === (shape === 'inbound');
              if (reset) resets.add(`${a.route}>${b.route}`);
            }
          }
          const ms = faultLength(0.7);
          const cutOff = [...side].filter(([, s]) => s === 1).map(([r]) => r);
          const links = [...resets].sort().join(' ');
          schedule.push(`${ts()} partition {${cutOff.join(',')}} from the rest for ${Math.round(ms)} ms, resets on ${links || 'no link'} (${shape})`);
          trace.add(`NEMESIS partition ${cutOff.join(',')} ${Math.round(ms)}ms, resets ${links} (${shape})`);
          membership.resetPartitioned(side, resets);
          await sleepUntil(loop.now + ms);
          trace.add('NEMESIS heal');
          membership.healed();
          await checkpoint(loop.now, `after partition of ${cutOff.join(',')} with resets on some links`);
          break;
        }
        case 'one-way':
        case 'non-transitive': {
          const pool = [...live];
          const a = pool.splice(plan.int(0, pool.length - 1), 1)[0];
          const b = plan.pick(pool);
          const pairs: [SimMember, SimMember][] = fault === 'one-way' ? [[a, b]] : [[a, b], [b, a]];
          const ms = faultLength(0.7);
          const what = fault === 'one-way' ? `nothing from ${a.route} reaches ${b.route}` : `${a.route} and ${b.route} cut from each other, both reach the rest`;
          schedule.push(`${ts()} ${what} for ${Math.round(ms)} ms`);
          trace.add(`NEMESIS cut ${pairs.map(([x, y]) => `${x.route}>${y.route}`).join(' ')} ${Math.round(ms)}ms`);
          membership.cut(pairs.map(([x, y]) => [x.channel, y.channel] as const));
          await sleepUntil(loop.now + ms);
          trace.add('NEMESIS heal');
          membership.healed();
          await checkpoint(loop.now, `after ${fault} cut of ${a.route}, ${b.route}`);
          break;
        }
        case 'cut-off-start': {
          schedule.push(`${ts()} crash ${victim.proc.name}, to restart cut off`);
          kill([victim]);
          await checkpoint(loop.now, `after crash of ${victim.proc.name}`);
          // Past every grace only with expectedMembers (else a member alone that long may serve: README).
          await restart(victim.route, expected && plan.chance(0.3) ? plan.range(...PAST_EVERY_GRACE) : plan.range(500, 5000));
          break;
        }
        case 'logout-crash': {
          // Kill the victim the moment a client has the answer to a logout (or a regenerate) there, while
          // the removal may still be on its way; in half the schedules the victim is also cut from one
          // other member first, so the removal cannot reach every holder (the faulted logout).
          const other = plan.pick(live.filter((m) => m !== victim));
          const cutOther = plan.chance(0.5);
          schedule.push(`${ts()} kill ${victim.proc.name} right after a logout there${cutOther ? `, cut from ${other.route}` : ''}`);
          if (cutOther) {
            trace.add(`NEMESIS partition ${other.route} from ${victim.route}`);
            membership.partitioned(new Map(live.map((m) => [m.route, m === other ? 1 : 0])));
          }
          const killed = new Promise<void>((done) => (killAfterLogout = { victim, done }));
          await killOnLogout(victim, killed, 8000, 'primary killed the moment its logout was answered');
          if (cutOther) {
            trace.add('NEMESIS heal');
            membership.healed();
          }
          await checkpoint(loop.now, `after killing ${victim.proc.name} after a logout`);
          await restart(victim.route);
          break;
        }
        case 'takeover-partition': {
          // Cut a taker off the moment its takeover runs (with the owner granting it, from five members
          // up): a grant on the smaller side in the instant before the partition shows, which the
          // other side's adoption must outbid.
          const give = loop.now + 4000;
          const takerNow = () => [...taking.entries()].find(([, set]) => [...set].some((m) => m.phase === 'running'));
          while (loop.now < give && takerNow() === undefined) await sleepUntil(loop.now + plan.range(0.2, 2));
          const found = takerNow();
          const taker = found === undefined ? victim : [...found[1]].find((m) => m.phase === 'running')!;
          const owner = found === undefined ? undefined : live.find((m) => m !== taker && m.manager.table.get(found[0])?.role === 'primary');
          const side = new Map<string, number>(live.map((m) => [m.route, 0]));
          side.set(taker.route, 1);
          if (owner !== undefined && live.length >= 5) side.set(owner.route, 1);
          const ms = faultLength(0.8);
          const cutOff = [...side].filter(([, x]) => x === 1).map(([r]) => r);
          if (found !== undefined) cover('partition during a takeover');
          schedule.push(`${ts()} partition {${cutOff.join(',')}} ${found !== undefined ? 'during a takeover ' : ''}for ${Math.round(ms)} ms`);
          trace.add(`NEMESIS partition ${cutOff.join(',')} ${Math.round(ms)}ms`);
          membership.partitioned(side);
          await sleepUntil(loop.now + ms);
          trace.add('NEMESIS heal');
          membership.healed();
          await checkpoint(loop.now, `after a partition of ${cutOff.join(',')} during a takeover`);
          break;
        }
        case 'grant-partition': {
          // The member asked to grant a takeover is cut off the instant the request reaches it: it
          // still holds its lease and grants, and its answer stays on the smaller side, with the taker
          // from five members on (below five, two cut off leave no strict majority anywhere). The larger
          // side adopts the session once that owner's promises ran out, at an epoch that must outbid
          // the one just granted (copies.ts, PAST_A_SILENT_OWNER): always past dropTime and the check,
          // and healed soon after, before further takeovers there raise the epoch anyway and hide a tie.
          // (A taker left on the larger side in backup mode asks again at once and takes the session
          // from the adopter one epoch up, which hides the tie: from five members it goes with the grantor.)
          const withTaker = live.length >= 5;
          const ms = plan.range(dropTime + timing.checkTimeout + 700, 2 * dropTime + 3000);
          const hit: { struck?: { grantor: SimMember; side: Map<string, number> } } = {};
          onTake = (at, from) => {
            const grantor = running().find((m) => m.channel === at);
            if (grantor === undefined) return;
            onTake = undefined;
            const side = new Map<string, number>(running().map((m) => [m.route, m === grantor || (withTaker && m.id === from.id) ? 1 : 0]));
            hit.struck = { grantor, side };
            trace.add(`NEMESIS partition ${[...side].filter(([, x]) => x === 1).map(([r]) => r).join(',')} ${Math.round(ms)}ms (grant by ${grantor.route} to ${from.route})`);
            partitionSides = side;
            partitionAcks.clear();
            membership.partitioned(side);
          };
          const give = loop.now + 6000;
          while (loop.now < give && hit.struck === undefined) await sleepUntil(loop.now + 50);
          onTake = undefined;
          const struck = hit.struck;
          if (struck === undefined) {
            schedule.push(`${ts()} no take request within 6 s`);
            await checkpoint(loop.now - dropTime - 500, 'quiet (no take request)');
            break;
          }
          const cutOff = [...struck.side].filter(([, x]) => x === 1).map(([r]) => r);
          cover('partition the instant a take request arrived');
          schedule.push(`${ts()} partition {${cutOff.join(',')}} as ${struck.grantor.route} grants a takeover, for ${Math.round(ms)} ms`);
          await sleepUntil(loop.now + ms);
          trace.add('NEMESIS heal');
          partitionSides = undefined;
          membership.healed();
          await checkpoint(loop.now, `after a partition of ${cutOff.join(',')} as it granted a takeover`);
          break;
        }
        case 'logout-reset': {
          // A member starting to destroy a session (a logout, a regenerate, a revoke) is cut off behind
          // firewalls that reset the instant its removal goes out: every holder's acknowledgement fails
          // at once, while the member still holds its lease. It is killed the moment the client has its
          // answer (3 s at most), so nothing but what the holders acknowledged keeps the session dead.
          const hit: { victim?: SimMember } = {};
          const answered = new Promise<void>((done) => {
            onDestroy = (from) => {
              const victim = running().find((m) => m.channel === from);
              if (victim === undefined) return;
              onDestroy = undefined;
              hit.victim = victim;
              trace.add(`NEMESIS partition ${victim.route} behind firewalls that reset (a removal went out)`);
              membership.resetPartitioned(new Map(running().map((m) => [m.route, m === victim ? 1 : 0])));
              killAfterLogout = { victim, done, anyAnswer: true };
            };
          });
          const give = loop.now + 8000;
          while (loop.now < give && hit.victim === undefined) await sleepUntil(loop.now + 50);
          onDestroy = undefined;
          const victim = hit.victim;
          if (victim === undefined) {
            schedule.push(`${ts()} no logout within 8 s`);
            await checkpoint(loop.now - dropTime - 500, 'quiet (no logout)');
            break;
          }
          schedule.push(`${ts()} partition {${victim.route}} behind firewalls that reset as a removal goes out, then kill it`);
          await killOnLogout(victim, answered, 3000, 'member killed the moment its logout was answered behind resetting firewalls');
          trace.add('NEMESIS heal');
          membership.healed();
          await checkpoint(loop.now, `after killing ${victim.proc.name} cut off during a logout`);
          await restart(victim.route);
          break;
        }
        case 'even-split': {
          // Two halves (2 against 2 with four members): neither holds a strict majority.
          const side = drawSide(live, Math.floor(live.length / 2));
          const ms = faultLength(0.7);
          const cutOff = [...side].filter(([, x]) => x === 1).map(([r]) => r);
          schedule.push(`${ts()} split {${cutOff.join(',')}} from the rest for ${Math.round(ms)} ms`);
          trace.add(`NEMESIS partition ${cutOff.join(',')} ${Math.round(ms)}ms`);
          membership.partitioned(side);
          await sleepUntil(loop.now + ms);
          trace.add('NEMESIS heal');
          membership.healed();
          await checkpoint(loop.now, `after a split of ${cutOff.join(',')}`);
          break;
        }
        case 'clock-step': {
          const skew = clocks![victim.route];
          const step = (plan.chance(0.5) ? 1 : -1) * plan.range(500, maxStep);
          clockSlack(); // the offset before the step counts too
          skew.offset += step;
          schedule.push(`${ts()} step ${victim.route}'s clock by ${Math.round(step)} ms`);
          trace.add(`NEMESIS clock ${victim.route} ${Math.round(step)}ms`);
          await sleepUntil(loop.now + plan.range(500, 2000));
          await checkpoint(loop.now - dropTime - 500, `after a clock step on ${victim.route}`);
          break;
        }
        case 'slow-link': {
          const other = plan.pick(live.filter((m) => m !== victim));
          const ms = plan.range(2000, 6000);
          const late: [number, number] = [cfg.ackTimeout * 1.05, cfg.ackTimeout * 1.5];
          schedule.push(`${ts()} link ${victim.route}-${other.route} slower than ackTimeout for ${Math.round(ms)} ms`);
          trace.add(`NEMESIS slow ${victim.route}-${other.route} ${Math.round(ms)}ms`);
          net.slow(victim.route, other.route, loop.now + ms, late);
          net.slow(other.route, victim.route, loop.now + ms, late);
          await sleepUntil(loop.now + ms + late[1]);
          await checkpoint(loop.now, `after a slow link ${victim.route}-${other.route}`);
          break;
        }
        case 'expiry-race': {
          const r = await expiryRace({
            now: () => loop.now,
            plan,
            dropTime,
            removal: dropTime + timing.checkTimeout + 700,
            absoluteMaxAge: absoluteMaxAge!,
            clocks: clocks!,
            running,
            clients,
            prober: probing.prober,
            sleepUntil,
            partition: (cutOff) => membership.partitioned(new Map(running().map((m) => [m.route, m === cutOff ? 1 : 0]))),
            heal: () => membership.healed(),
            kill: (victim) => kill([victim]),
            clockSlack,
            destroy: on('expiry-destroy'),
            resend: on('expiry-resend'),
            note: (line) => schedule.push(`${ts()} ${line}`),
            trace: (line) => trace.add(line),
            cover,
          });
          if (r.stale === undefined) await checkpoint(loop.now - dropTime - 500, 'quiet (no expiry race)');
          else await checkpoint(loop.now, `after an expiry race with ${r.stale.route} behind`);
          if (r.killed !== undefined) await restart(r.killed.route);
          break;
        }
        case 'lease-race': {
          const cutOff = await leaseRace(raceWorld());
          if (cutOff === undefined) await checkpoint(loop.now - dropTime - 500, 'quiet (no lease race)');
          else await checkpoint(loop.now, `after a lease race with ${cutOff.route} cut off`);
          break;
        }
        case 'write-cut': {
          const cutOff = await writeCut({ ...raceWorld(), watch: (hook) => (onWrite = hook) });
          if (cutOff === undefined) await checkpoint(loop.now - dropTime - 500, 'quiet (no write cut)');
          else await checkpoint(loop.now, `after a write cut with ${cutOff.route} cut off`);
          break;
        }
        case 'none':
          schedule.push(`${ts()} no fault`);
          await sleepUntil(loop.now + plan.range(500, 2000));
          await checkpoint(loop.now - dropTime - 500, 'quiet');
          break;
      }
      cover(`fault: ${fault}`);
      await sleepUntil(loop.now + plan.range(200, 1200));
    }
    done = true;
  };

  let finished = false;
  void nemesis().then(() => (finished = true));
  while (!finished) await loop.run(loop.now + 1000);
  // Let requests still running finish (a paused member's, an abandoned one's).
  await loop.run(loop.now + 3 * cfg.ackTimeout);

  for (const m of all) {
    const t = m.manager.metrics();
    if (t.takeovers > 0) coverage['takeovers'] = (coverage['takeovers'] ?? 0) + t.takeovers;
    if (m.manager instanceof DeltaManager && m.incarnation > 1) cover('delta state transfer after restart');
  }
  if (on('availability')) violations.push(...hungCalls(probing, loop.now, 'at the end'));
  if (expiryRules !== undefined) expiryRules.slack = 50 + clockSlack();
  violations.push(
    ...check(history, {
      ...(cfg.ack === 'async' ? { allowance: { crashes, window: cfg.ackTimeout } } : {}),
      lifetime: on('lifetime'),
      ...(expiryRules !== undefined ? { expiry: expiryRules } : {}),
    }),
  );
  for (const e of loop.errors) trace.add(`ERROR ${e.split('\n')[0]}`);
  violations.sort((a, b) => a.at - b.at);
  trace.add(`end: ${history.ops.length} ops, ${violations.length} violations`);
  return {
    seed: o.seed,
    mode,
    violations,
    hash: trace.digest(),
    events: loop.events,
    simMs: loop.now - SIM_EPOCH,
    coverage,
    schedule,
    traceTail: trace.tail(80),
    trace: trace.all,
    globals: p.globals,
    ops: history.ops.length,
    errors: loop.errors,
  };
}
