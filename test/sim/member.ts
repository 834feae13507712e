/**
 * One member of the simulated cluster: the real replication manager (BackupManager or DeltaManager),
 * the real codec, the real koa-session store adapter and route binder, over a SimChannel, with its
 * own process (pausable, killable) and clock. A restart is a new incarnation: new member id, empty
 * table, same route.
 */
import { pino, type Logger } from 'pino';
import type { Middleware } from 'koa';
import { createSessionCodec, type SessionCodec } from '../../src/codec/index.js';
import { BackupManager } from '../../src/replication/backup-manager.js';
import { DeltaManager } from '../../src/replication/delta-manager.js';
import type { Replicator, ReplicatorOptions } from '../../src/replication/replicator.js';
import { createSessionStore, type KoaSessionStore } from '../../src/koa/session-store.js';
import { createRouteBinder } from '../../src/koa/route-binder.js';
import { Principals } from '../../src/replication/principals.js';
import { deriveHandleKey } from '../../src/replication/session-handle.js';
import { MSG } from '../../src/replication/message-types.js';
import { Proc, type ClockSkew, type SimLoop } from './loop.js';
import { SimChannel, type ChannelObserver } from './channel.js';
import type { Membership } from './membership.js';
import type { SimNetwork } from './network.js';
import type { Prng } from './prng.js';

const silent: Logger = pino({ level: 'silent' });

/** Message types a member of the previous release has no handler for (`MemberConfig.olderRelease`). */
export const NEWER_MESSAGES: readonly string[] = [MSG.statePack];
const HANDLE_KEY = deriveHandleKey('simulated-cluster-secret');

let codec: SessionCodec | undefined;
/**
 * Every simulated member runs the same app (no `types`, no `sessionSchema`), so their codecs are
 * identical and never learn a foreign schema: one real codec serves them all. Building one costs
 * about 1.5 ms, a third of a short schedule.
 */
function sharedCodec(): SessionCodec {
  codec ??= createSessionCodec({ types: [], maxSessionBytes: 1024 * 1024 });
  return codec;
}

export interface MemberConfig {
  mode: 'backup' | 'delta';
  ack: 'sync' | 'async';
  ackTimeout: number;
  dropTime: number;
  frequency: number;
  reprotectRate: number;
  stateTransferTimeout: number;
  stateTransferBatch: number;
  /** Run the principal index (sessions by user). */
  principals: boolean;
  /** Routes whose members run the previous release (no handler for `NEWER_MESSAGES`). */
  olderRelease: readonly string[];
  /** The members' log (silent unless a replay asks for it). */
  logger?: Logger;
  /** Backup mode: backups per session (option `backups`). */
  backups?: number;
  /** The cluster's size (option `expectedMembers`). */
  expectedMembers?: number;
  /** Option `absoluteMaxAge` (the expiry profile). */
  absoluteMaxAge?: number;
  /** Option `zone` of each route (the zone nemesis). */
  zones?: Readonly<Record<string, string>>;
  /** Each route's clock error (the clock nemesis); a restart keeps its machine's clock. */
  clocks?: Readonly<Record<string, ClockSkew>>;
}

export type Phase = 'starting' | 'running' | 'stopping' | 'stopped' | 'crashed';

/** The parts of a Koa context the route binder uses. */
export class FakeContext {
  status = 404;
  body: unknown;
  readonly headers: Record<string, string> = {};
  /** Cookie the response set (a rebound id). */
  setCookie: string | undefined;
  /** Koa's `ctx.app.proxy`, `ctx.ip` and `ctx.get(header)`, which the route binder reads. */
  readonly app = { proxy: false };
  get(_header: string): string {
    return '';
  }
  readonly request: { headers: { cookie?: string } };
  readonly cookies: { get(name: string): string | undefined; set(name: string, value: string): void };
  constructor(
    readonly cookieName: string,
    id: string | undefined,
    readonly ip = '10.0.0.100',
  ) {
    this.request = { headers: id === undefined ? {} : { cookie: `${cookieName}=${id}` } };
    this.cookies = {
      get: (name) => {
        for (const part of (this.request.headers.cookie ?? '').split('; ')) {
          if (part.startsWith(`${name}=`)) return part.slice(name.length + 1);
        }
        return undefined;
      },
      set: (name, value) => {
        if (name === cookieName) this.setCookie = value;
      },
    };
  }
  set(k: string, v: string): void {
    this.headers[k] = v;
  }
}

export class SimMember {
  readonly proc: Proc;
  readonly channel: SimChannel;
  readonly manager: Replicator;
  /** Sessions by user: each client's sessions belong to principal `u` (clients revoke them). */
  readonly principals: Principals | undefined;
  /** The store koa-session calls (replaceable only to test the checker, see reference-store.ts). */
  store: KoaSessionStore;
  binder: Middleware;
  phase: Phase = 'starting';
  /** Delta mode: the state transfer finished (or there was no one to transfer from). */
  ready = false;
  /** Store calls running here now, by base (a session is not counted for convergence while busy). */
  readonly busy = new Map<string, number>();

  constructor(
    readonly route: string,
    readonly incarnation: number,
    readonly loop: SimLoop,
    readonly net: SimNetwork,
    readonly membership: Membership,
    rng: Prng,
    readonly cfg: MemberConfig,
    observer: ChannelObserver,
    peers: (id: string) => SimChannel | undefined,
  ) {
    this.proc = new Proc(`${route}#${incarnation}`);
    const clock = loop.clockFor(this.proc, cfg.clocks?.[route]);
    const zone = cfg.zones?.[route];
    this.channel = new SimChannel(
      { id: rng.token(12), route, host: '10.0.0.1', port: 4000 + incarnation, startTime: loop.now, ...(zone !== undefined ? { zone } : {}) },
      this.proc,
      net,
      clock,
      cfg.ackTimeout,
      observer,
    );
    this.channel.peer = peers;
    const codec = sharedCodec();
    const options: ReplicatorOptions & { clock: typeof clock } = {
      channel: this.channel,
      codec,
      route,
      ack: cfg.ack,
      ackTimeout: cfg.ackTimeout,
      maxSessionBytes: 1024 * 1024,
      reprotectRate: cfg.reprotectRate,
      stateTransferTimeout: cfg.stateTransferTimeout,
      stateTransferBatch: cfg.stateTransferBatch,
      dropTime: cfg.dropTime,
      logger: (cfg.logger ?? silent).child({ m: this.proc.name }),
      clock,
      ...(cfg.backups !== undefined ? { backups: cfg.backups } : {}),
      ...(cfg.expectedMembers !== undefined ? { expectedMembers: cfg.expectedMembers } : {}),
      ...(zone !== undefined ? { zone } : {}),
    };
    this.manager = cfg.mode === 'backup' ? new BackupManager(options) : new DeltaManager(options);
    if (cfg.principals) this.manager.policy = { principal: (s) => (typeof s.u === 'string' ? s.u : undefined) };
    if (cfg.absoluteMaxAge !== undefined) this.manager.policy = { ...this.manager.policy, absoluteMaxAge: cfg.absoluteMaxAge };
    this.principals = !cfg.principals ? undefined : new Principals({
      manager: this.manager,
      channel: this.channel,
      route,
      clock,
      logger: options.logger,
      handleKey: HANDLE_KEY,
      ackTimeout: cfg.ackTimeout,
      maxSessionsPerPrincipal: undefined,
      onSessionLimit: 'destroy-oldest',
      absoluteMaxAge: cfg.absoluteMaxAge,
      emit: () => undefined,
    });
    this.store = createSessionStore(this.manager, route, silent, () => this.phase === 'running' || this.phase === 'stopping', this.principals);
    this.binder = createRouteBinder(this.manager, route, silent, { signed: false });
  }

  get id(): string {
    return this.channel.id;
  }

  get alive(): boolean {
    return this.phase === 'running' || this.phase === 'starting' || this.phase === 'stopping';
  }

  /** Starts on its own process: handlers before the channel, as SessionCluster.start does. */
  start(onReady: () => void): void {
    this.loop.after(0, this.proc, () => {
      this.manager.install();
      this.principals?.install();
      if (this.cfg.olderRelease.includes(this.route)) {
        for (const type of NEWER_MESSAGES) this.channel.unhandle(type);
        this.channel.sendsDeadlines = false;
      }
      void this.channel.start().then(() => {
        this.phase = 'running';
        this.membership.joined(this.channel);
        // The managers' start hook: `started()` and `ready()` now; `noPeerToTransferFrom()` and a
        // `ready` promise on DeltaManager before the replication rewrite.
        const m = this.manager as unknown as {
          started?: () => void;
          noPeerToTransferFrom?: () => void;
          ready?: Promise<void> | (() => Promise<void>);
        };
        if (typeof m.started === 'function') m.started();
        else if (typeof m.noPeerToTransferFrom === 'function') {
          // SessionCluster: a delta member that hears no older member within 4 heartbeats starts empty.
          const first = m.noPeerToTransferFrom.bind(m);
          this.loop.after(this.cfg.frequency * 4, this.proc, first, true);
        }
        const ready = typeof m.ready === 'function' ? m.ready.call(this.manager) : (m.ready ?? Promise.resolve());
        void ready.then(() => {
          this.ready = true;
          onReady();
        });
      });
    });
  }

  /** SIGKILL: state lost, timers and deliveries dropped, peers see resets. */
  crash(): void {
    this.phase = 'crashed';
    this.loop.kill(this.proc);
    this.channel.halt();
    this.membership.crashed(this.channel);
  }

  /** Graceful stop, as SessionCluster.stop: leave, close, channel stop; then the process exits. */
  stop(onStopped: () => void): void {
    if (this.phase !== 'running') return;
    this.phase = 'stopping';
    this.loop.after(0, this.proc, () => {
      void (async () => {
        try {
          await this.manager.leave();
        } finally {
          this.manager.close();
          this.principals?.close();
          await this.channel.stop();
          this.phase = 'stopped';
          this.loop.kill(this.proc);
          this.membership.stopped(this.channel);
          onStopped();
        }
      })();
    });
  }

  busyStart(base: string): void {
    this.busy.set(base, (this.busy.get(base) ?? 0) + 1);
  }

  busyEnd(base: string): void {
    const n = (this.busy.get(base) ?? 1) - 1;
    if (n <= 0) this.busy.delete(base);
    else this.busy.set(base, n);
  }
}
