/**
 * One simulated schedule, from a seed: members start, clients run, the nemesis injects one fault at a
 * time (crash then restart, pause, partition then heal, graceful stop then restart, connection resets)
 * and waits for convergence (a checkpoint dropTime + 2 s after the fault ended) before the next, as
 * the promises assume. At the end the history is checked against every promise.
 */
import { DeltaManager } from '../../src/replication/delta-manager.js';
import { MSG } from '../../src/replication/message-types.js';
import { checkConvergence } from './convergence.js';
import { check, type Violation } from './checker.js';
import { Client, type ClientWorld } from './clients.js';
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

type Fault = 'crash' | 'pause' | 'partition' | 'leave' | 'reset' | 'none';

export async function runSchedule(o: SimOptions): Promise<SimResult> {
  const salt = o.mode === 'backup' ? 0x5eed : 0xde17a;
  const plan = new Prng((o.seed * 2654435761) ^ salt);
  const netRng = new Prng((o.seed * 40503) ^ (salt + 1));
  const clientRng = new Prng((o.seed * 69069) ^ (salt + 2));
  const idRng = new Prng((o.seed * 1103515245) ^ (salt + 3));
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
    return await simulate(o, { plan, netRng, clientRng, idRng, loop, trace, globals });
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
  const cfg: MemberConfig = {
    mode,
    ack: o.ack ?? 'sync',
    ackTimeout: o.ackTimeout ?? 1700,
    dropTime,
    frequency,
    reprotectRate: 2000,
    stateTransferTimeout: 20_000,
    stateTransferBatch: 3,
    principals: withPrincipals,
    olderRelease: o.olderRelease ?? [],
    ...(o.backups !== undefined ? { backups: o.backups } : {}),
    ...(o.expectedMembers === true ? { expectedMembers: n } : {}),
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
  const partitionAcks = new Set<number>();
  /** When each member incarnation was killed (ack 'async' may lose what it acknowledged just before). */
  const crashes = new Map<string, number>();
  const reference = o.reference === undefined ? undefined : new ReferenceStore(o.reference);

  const observer: ChannelObserver = {
    request: (from, to, type) => trace.add(`${from.proc.name} > ${to.route} ${type.slice(8)}`),
    handled: (at, _from, type) => {
      if (type === MSG.statePage) cover('state transfer page of whole copies (from an older release)');
      if (type === MSG.statePack) cover('state transfer page of packed copies');
      if (type === 'session.delta' || type === 'session.copy') {
        const m = all.find((x) => x.channel === at);
        if (m !== undefined && mode === 'delta' && !m.ready) cover('delta or copy during a state transfer');
      }
    },
    failed: (from, to, type, code) => trace.add(`${from.proc.name} x ${to.slice(0, 4)} ${type.slice(8)} ${code}`),
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
  let done = false;

  const world: ClientWorld = {
    loop,
    rng: p.clientRng,
    revokes: withPrincipals,
    history,
    targets: () => running().filter((m) => m.ready),
    memberByRoute: (route) => current.get(route),
    quiet: () => done || loop.now >= quietFrom,
    trace: (s) => trace.add(s),
    cover,
    onOpEnd: (op: Op) => {
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

  const checkpoint = async (faultEnd: number, label: string): Promise<void> => {
    const at = faultEnd + dropTime + 2000;
    quietFrom = at - 1500;
    await sleepUntil(at);
    const r = reference === undefined ? checkConvergence(history, all, mode, at, label, o.backups ?? 1) : { checked: 0, skippedBusy: 0, violations: [] };
    trace.add(`checkpoint ${label}: ${r.checked} sessions, ${r.skippedBusy} busy, ${r.violations.length} not converged`);
    if (r.skippedBusy > 0) cover('sessions busy at a checkpoint (not counted)');
    violations.push(...r.violations);
    quietFrom = Infinity;
  };

  const pendingWrites = (m?: SimMember) =>
    history.calls.some((c) => c.kind === 'set' && c.end === undefined && (m === undefined || c.member === m.proc.name));

  // ---- the run ----
  const routes = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const incarnation = new Map(routes.map((r) => [r, 1]));
  schedule.push(`${mode}, ${n} members, ${o.clients ?? 4} clients, dropTime ${dropTime}, ack ${cfg.ack}`);
  for (const r of routes) loop.after(plan.range(0, 50), loop.world, () => void startMember(r, 1));
  await loop.run(loop.now + (mode === 'delta' ? frequency * 4 + 1200 : 1000));
  const clients = Array.from({ length: o.clients ?? 4 }, (_, i) => new Client(i + 1, world));
  for (const c of clients) loop.after(plan.range(0, 200), loop.world, () => c.tick());

  const restart = async (route: string): Promise<void> => {
    await sleepUntil(loop.now + plan.range(100, 1000));
    const inc = (incarnation.get(route) ?? 0) + 1;
    incarnation.set(route, inc);
    schedule.push(`${ts()} restart ${route}#${inc}`);
    const started = loop.now;
    const ready = startMember(route, inc);
    await Promise.race([ready, sleepUntil(loop.now + 10_000)]);
    await checkpoint(Math.max(started, loop.now), `after restart of ${route}#${inc}`);
  };

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
          const side = new Map<string, number>(live.map((m) => [m.route, 0]));
          const cut = live.length >= 5 && plan.chance(0.3) ? 2 : 1;
          const order = [...live];
          for (let i = 0; i < cut; i++) side.set(order.splice(plan.int(0, order.length - 1), 1)[0].route, 1);
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
  violations.push(...check(history, cfg.ack === 'async' ? { crashes, window: cfg.ackTimeout } : undefined));
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
