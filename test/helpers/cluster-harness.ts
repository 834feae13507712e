/**
 * Helpers for cluster tests: options for in-process channels, random multicast groups, and
 * member processes (test/helpers/cluster-member.ts) driven over IPC. Every wait has a timeout
 * and every process started is killed by pid when the test ends, passed or failed.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { EventEmitter } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { createClusterChannel } from '../../src/cluster/index.js';
import type { ClusterChannel, ClusterChannelOptions } from '../../src/cluster/index.js';

export const SECRET = 'test-cluster-secret-0123456789';
export const FIXTURE = fileURLToPath(new URL('./cluster-member.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Epoch ms with sub-millisecond precision, comparable across processes on one host. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/** A group and port of our own, so test files running in parallel never hear each other. */
export function randomMulticast(iface = '127.0.0.1', timing: { frequency?: number; dropTime?: number } = {}) {
  return {
    address: `239.${rand(1, 254)}.${rand(1, 254)}.${rand(1, 254)}`,
    port: rand(40000, 59999),
    interface: iface,
    frequency: timing.frequency ?? 500,
    dropTime: timing.dropTime ?? 3000,
    ttl: 1,
  };
}

/** A port free right now (for static membership lists, which need ports before start). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const addr = srv.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Makes in-process channels, and stops them when the test ends. */
export function channelHarness(t: { after(fn: () => Promise<void>): void }): (opts: ClusterChannelOptions) => ClusterChannel {
  const channels: ClusterChannel[] = [];
  t.after(async () => {
    await Promise.all(channels.map((c) => c.stop()));
  });
  return (opts) => {
    const c = createClusterChannel(opts);
    channels.push(c);
    return c;
  };
}

/** Complete channel options for an in-process member. */
export function channelOptions(route: string, membership: Partial<ClusterChannelOptions['membership']>, extra: Partial<ClusterChannelOptions> = {}): ClusterChannelOptions {
  return {
    route,
    clusterName: 'test-cluster',
    secret: SECRET,
    encrypt: false,
    membership: { frequency: 500, dropTime: 3000, ...membership },
    receiver: { host: '127.0.0.1', port: 0 },
    maxFrameBytes: 8 * 1024 * 1024,
    requestTimeout: 5000,
    logger: pino({ level: process.env.CLUSTER_TEST_LOG ?? 'silent' }),
    ...extra,
  };
}

/** Resolves with the arguments of the first `event` that passes `pred`; rejects after `timeoutMs`. */
export function waitForEvent<T extends unknown[]>(
  emitter: EventEmitter,
  event: string,
  pred: (...args: T) => boolean = () => true,
  timeoutMs = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (...args: T) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(args);
    };
    emitter.on(event, on);
  });
}

/** Polls `cond` (for state without an event, e.g. metrics) until true or `timeoutMs`. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** What the member fixture reads from `CLUSTER_MEMBER_CONFIG`. */
export interface MemberConfig {
  route: string;
  secret?: string;
  encrypt?: boolean;
  clusterName?: string;
  multicast?: ReturnType<typeof randomMulticast>;
  static?: string[];
  frequency?: number;
  dropTime?: number;
  receiver?: { host: string; port: number };
  maxFrameBytes?: number;
  logLevel?: string;
}

/** A message from a member process. */
export interface MemberMessage {
  type: 'started' | 'event' | 'reply' | 'noted';
  event?: 'member-added' | 'member-suspected' | 'member-removed';
  member?: { id: string; route: string; host: string; port: number; startTime: number };
  reason?: string;
  at: number;
  seq?: number;
  [k: string]: unknown;
}

/** A member process under test. */
export class MemberProcess {
  readonly child: ChildProcess;
  readonly route: string;
  readonly messages: MemberMessage[] = [];
  self: MemberMessage['member'];
  #stderr = '';
  #seq = 0;
  #waiters = new Set<() => void>();
  #exited = false;

  constructor(child: ChildProcess, route: string) {
    this.child = child;
    this.route = route;
    child.on('message', (m: MemberMessage) => {
      this.messages.push(m);
      for (const w of this.#waiters) w();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-20_000);
    });
    child.on('exit', () => {
      this.#exited = true;
      for (const w of this.#waiters) w();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The last lines the process wrote to stderr (its logs), for failure messages. */
  get stderr(): string {
    return this.#stderr;
  }

  /** The first message (already received or future) that passes `pred`. */
  async waitFor(pred: (m: MemberMessage) => boolean, timeoutMs: number, what = 'a message'): Promise<MemberMessage> {
    await this.waitUntil(() => this.messages.some(pred), timeoutMs, what);
    return this.messages.find(pred)!;
  }

  /** Resolves once `cond` (re-evaluated at every message) holds. */
  waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (cond()) {
          done();
          resolve();
        } else if (this.#exited) {
          done();
          reject(new Error(`${this.route} exited while waiting for ${what}\n${this.#stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.route}: no ${what} within ${timeoutMs} ms\n${this.#stderr.slice(-4000)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Waits for a membership event about `route` after index `since` of `messages`. */
  waitEvent(event: NonNullable<MemberMessage['event']>, route: string, timeoutMs: number, since = 0): Promise<MemberMessage> {
    return this.waitFor(
      (m) => this.messages.indexOf(m) >= since && m.type === 'event' && m.event === event && m.member?.route === route,
      timeoutMs,
      `${event} of ${route}`,
    );
  }

  /** Sends a command and resolves with its reply. */
  async command(cmd: Record<string, unknown>, timeoutMs = 10_000): Promise<MemberMessage> {
    const seq = ++this.#seq;
    this.child.send({ ...cmd, seq });
    return this.waitFor((m) => m.type === 'reply' && m.seq === seq, timeoutMs, `reply to ${String(cmd.cmd)}`);
  }

  /** Routes this member currently lists. */
  async memberRoutes(): Promise<string[]> {
    const r = await this.command({ cmd: 'members' });
    return (r.members as { route: string }[]).map((m) => m.route).sort();
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.#exited) process.kill(this.pid, signal);
  }

  get exited(): boolean {
    return this.#exited;
  }
}

/** Starts and tracks member processes; `cleanup()` kills all of them (by pid). */
export class MemberSet {
  readonly members: MemberProcess[] = [];

  /**
   * Spawns a member. `wrap` prefixes the command (e.g. `['ip', 'netns', 'exec', ns]`); since
   * `ip netns exec` execs, the pid is still node's.
   */
  spawn(config: MemberConfig, wrap: string[] = []): MemberProcess {
    const argv = [...wrap, process.execPath, '--import', 'tsx', FIXTURE];
    const child = spawn(argv[0], argv.slice(1), {
      cwd: ROOT,
      env: { ...process.env, CLUSTER_MEMBER_CONFIG: JSON.stringify({ secret: SECRET, ...config }) },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    const m = new MemberProcess(child, config.route);
    this.members.push(m);
    return m;
  }

  /** Spawns and waits until its channel started. */
  async start(config: MemberConfig, wrap: string[] = [], timeoutMs = 15_000): Promise<MemberProcess> {
    const m = this.spawn(config, wrap);
    const started = await m.waitFor((x) => x.type === 'started', timeoutMs, 'start');
    m.self = started.member;
    return m;
  }

  /** Kills every process still running, SIGCONT first in case one is stopped, and waits for exits. */
  async cleanup(): Promise<void> {
    await Promise.all(
      this.members.map(async (m) => {
        if (m.exited) return;
        try {
          process.kill(m.pid, 'SIGKILL');
        } catch {
          return;
        }
        if (!m.exited) await once(m.child, 'exit');
      }),
    );
  }
}

/** Waits until every member lists exactly the other members' routes. */
export async function waitForFullMesh(members: MemberProcess[], timeoutMs: number): Promise<void> {
  await Promise.all(members.flatMap((m) => members.filter((o) => o !== m).map((o) => m.waitEvent('member-added', o.route, timeoutMs))));
}
