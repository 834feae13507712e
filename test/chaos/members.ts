/**
 * The chaos run's member processes: started, signalled and restarted at the same addresses, with
 * each one's stdout and stderr appended to `<logDir>/<route>.log` (every incarnation). Two network
 * set-ups: `loopback` (multicast on 127.0.0.1, each member its own ports) and `netns` (each member
 * in its own network namespace on a bridge, same ports everywhere, the clients on the bridge's host
 * address). `destroy()` kills every process by pid and deletes the namespaces, also after a failure.
 */
import { createWriteStream, existsSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, type MemberProcess } from '../helpers/member-process.js';
import { BridgeNetwork } from '../helpers/netns.js';
import { freePort, freeUdpPort, randomGroup } from '../helpers/ports.js';
import type { ChaosCopy } from './member-cluster.js';
import * as partition from './partition.js';

/** The member app of each framework (`--framework`): the same routes and answers. */
const MEMBERS = {
  koa: fileURLToPath(new URL('./member.ts', import.meta.url)),
  express: fileURLToPath(new URL('./member-express.ts', import.meta.url)),
  fastify: fileURLToPath(new URL('./member-fastify.ts', import.meta.url)),
};
export type Framework = keyof typeof MEMBERS;

export interface ClusterSpec {
  mode: 'backup' | 'delta';
  /** The members' web framework; default koa. */
  framework?: Framework;
  members: number;
  net: 'loopback' | 'netns';
  frequency: number;
  dropTime: number;
  logDir: string;
  /** Backup mode: option `backups` of every member (absent: the library's default, 1). */
  backups?: number;
  /** Members get option `zone` round-robin: zone-a, zone-b, ... (absent: no zones). */
  zones?: number;
  /** Option `expectedMembers` of every member (absent: none, the majority of the members seen). */
  expectedMembers?: number;
}

/** The zone of the `i`-th member (0-based) among `zones`: zone-a, zone-b, ... round-robin. */
export function zoneName(i: number, zones: number): string {
  return `zone-${String.fromCharCode(97 + (i % zones))}`;
}

/** Where libfaketime lives (Debian's faketime package), or undefined when it is not installed. */
export const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1'].find((f) =>
  existsSync(f),
);

/**
 * A member's wall clock off by `offset` (libfaketime's syntax, "+25s", "-7s"), read from a file so that
 * it can be stepped while the member runs. Only CLOCK_REALTIME is faked: an NTP step moves wall time,
 * never the monotonic clock.
 */
export interface FakeClock {
  file: string;
  offset: string;
}

/** `/cluster/status`, the part the run reads. */
export interface MemberStatus {
  route: string;
  members: { route: string; id: string }[];
  sessions: { primary: number; backup: number };
}

/** `GET /chaos/copies`: every live copy a member holds. */
export interface MemberCopies {
  route: string;
  copies: ChaosCopy[];
}

interface Slot {
  route: string;
  url: string;
  env: Record<string, string>;
  command: string[] | undefined;
  log: WriteStream;
  proc: MemberProcess | undefined;
  /** The member id of the running incarnation (new at each start). */
  id: string | undefined;
  paused: boolean;
  zone: string | undefined;
  /** The fake clock of the running incarnation, if started under libfaketime. */
  clock: FakeClock | undefined;
}

export class ChaosCluster {
  readonly spec: ClusterSpec;
  readonly #slots: Slot[] = [];
  readonly #net: BridgeNetwork | undefined;
  readonly #trim: NodeJS.Timeout;
  #destroyed = false;

  private constructor(spec: ClusterSpec, net: BridgeNetwork | undefined) {
    this.spec = spec;
    this.#net = net;
    // startProcess keeps every line in memory; a long run keeps them in the log files only.
    this.#trim = setInterval(() => {
      for (const s of this.#slots) if (s.proc !== undefined && s.proc.lines.length > 500) s.proc.lines.splice(0, s.proc.lines.length - 100);
    }, 5000);
    this.#trim.unref();
  }

  /** Starts every member and waits until each serves HTTP. On failure, removes what it made. */
  static async start(spec: ClusterSpec): Promise<ChaosCluster> {
    const net = spec.net === 'netns' ? BridgeNetwork.create(spec.members) : undefined;
    const cluster = new ChaosCluster(spec, net);
    try {
      net?.addHostAddress();
      const group = randomGroup();
      const mcastPort = await freeUdpPort();
      for (let i = 0; i < spec.members; i++) {
        const route = `node${i + 1}`;
        const host = net?.hosts[i];
        const address = host?.address ?? '127.0.0.1';
        const port = host !== undefined ? 8080 : await freePort();
        const receiver = host !== undefined ? 4000 : await freePort();
        const zone = spec.zones === undefined ? undefined : zoneName(i, spec.zones);
        cluster.#slots.push({
          route,
          url: `http://${address}:${port}`,
          command: host?.exec,
          env: {
            ROUTE: route,
            MODE: spec.mode,
            MCAST_ADDRESS: group,
            MCAST_PORT: String(mcastPort),
            MCAST_INTERFACE: address,
            MCAST_FREQUENCY: String(spec.frequency),
            MCAST_DROP: String(spec.dropTime),
            RECEIVER_HOST: address,
            RECEIVER_PORT: String(receiver),
            HTTP_HOST: address,
            PORT: String(port),
            LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'info',
            ...(spec.backups !== undefined ? { BACKUPS: String(spec.backups) } : {}),
            ...(zone !== undefined ? { ZONE: zone } : {}),
            ...(spec.expectedMembers !== undefined ? { EXPECTED_MEMBERS: String(spec.expectedMembers) } : {}),
          },
          log: createWriteStream(join(spec.logDir, `${route}.log`), { flags: 'a' }),
          proc: undefined,
          id: undefined,
          paused: false,
          zone,
          clock: undefined,
        });
      }
      await Promise.all(cluster.#slots.map((s) => cluster.#launch(s)));
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  get routes(): string[] {
    return this.#slots.map((s) => s.route);
  }

  get urls(): Map<string, string> {
    return new Map(this.#slots.map((s) => [s.route, s.url]));
  }

  /** The zone of each member (empty without --zones). */
  get zones(): Map<string, string> {
    return new Map(this.#slots.filter((s) => s.zone !== undefined).map((s) => [s.route, s.zone!]));
  }

  logFile(route: string): string {
    return join(this.spec.logDir, `${route}.log`);
  }

  /** Running (not killed, not paused) members and their current ids. */
  /** The pids of the running members (paused ones included: a paused process does not wait for a CPU). */
  pids(): number[] {
    return this.#slots.flatMap((s) => (s.proc?.alive === true ? [s.proc.pid] : []));
  }

  live(): { route: string; id: string }[] {
    return this.#slots.filter((s) => s.proc?.alive === true && !s.paused && s.id !== undefined).map((s) => ({ route: s.route, id: s.id! }));
  }

  #slot(route: string): Slot {
    const s = this.#slots.find((x) => x.route === route);
    if (s === undefined) throw new Error(`no member ${route}`);
    return s;
  }

  async #launch(s: Slot, clock?: FakeClock): Promise<number> {
    s.log.write(`${JSON.stringify({ event: 'chaos: starting', route: s.route, time: Date.now(), clock: clock?.offset })}\n`);
    s.clock = clock;
    const env = clock === undefined ? s.env : { ...s.env, ...this.#fakeClockEnv(clock) };
    const proc = startProcess(undefined, s.route, MEMBERS[this.spec.framework ?? 'koa'], env, { command: s.command });
    proc.child.stdout?.on('data', (chunk: Buffer) => s.log.write(chunk));
    proc.child.stderr?.on('data', (chunk: Buffer) => s.log.write(chunk));
    s.proc = proc;
    s.paused = false;
    const line = await proc.waitForLine(/"event":"listening"/, 60_000);
    s.id = (JSON.parse(line) as { id: string }).id;
    return Date.now();
  }

  /**
   * Starts a stopped member again at the same addresses; resolves (wall-clock ms) once it serves.
   * With `clock`, under libfaketime: its wall clock off by `clock.offset`, steppable with `stepClock`.
   */
  async restart(route: string, clock?: FakeClock): Promise<number> {
    const s = this.#slot(route);
    if (s.proc?.alive === true) throw new Error(`${route} is still running`);
    if (clock !== undefined) writeFileSync(clock.file, `${clock.offset}\n`);
    return this.#launch(s, clock);
  }

  /** Steps the wall clock of a member started under libfaketime to `offset` (seen within ~1 s). */
  stepClock(route: string, offset: string): void {
    const s = this.#slot(route);
    if (s.clock === undefined) throw new Error(`${route} runs on the real clock`);
    s.log.write(`${JSON.stringify({ event: 'chaos: clock step', route, from: s.clock.offset, to: offset, time: Date.now() })}\n`);
    writeFileSync(s.clock.file, `${offset}\n`);
    s.clock.offset = offset;
  }

  #fakeClockEnv(clock: FakeClock): Record<string, string> {
    if (LIBFAKETIME === undefined) throw new Error('clock faults need libfaketime (Debian package faketime)');
    return {
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME_TIMESTAMP_FILE: clock.file,
      // Re-read the file at most once a second (a step is seen within a second, at little cost).
      FAKETIME_CACHE_DURATION: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    };
  }

  /** Sends `signal`; for SIGKILL and SIGTERM, resolves (wall-clock ms) when the process exited. */
  async signal(route: string, signal: 'SIGKILL' | 'SIGTERM' | 'SIGSTOP' | 'SIGCONT', exitTimeoutMs = 30_000): Promise<number> {
    const s = this.#slot(route);
    const proc = s.proc;
    if (proc === undefined || !proc.alive) throw new Error(`${route} is not running`);
    s.log.write(`${JSON.stringify({ event: `chaos: ${signal}`, route, time: Date.now() })}\n`);
    proc.kill(signal);
    if (signal === 'SIGSTOP') s.paused = true;
    if (signal === 'SIGCONT') s.paused = false;
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') return Date.now();
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      proc.exited().then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), exitTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (!exited) {
      proc.kill('SIGKILL');
      await proc.exited();
      throw new Error(`${route} did not exit within ${exitTimeoutMs} ms of ${signal}; killed`);
    }
    return Date.now();
  }

  /**
   * Cuts members apart (netns only): each group reaches only its own members; clients reach all.
   * `reset`: TCP to the other side is rejected with a reset (a firewall that rejects), not dropped;
   * `'first-rejects'`: only toward the first group (`partition.ts`).
   */
  partition(groups: string[][], reset: partition.CutReset = false): void {
    if (this.#net === undefined) throw new Error('partitions need --net netns');
    const index = (r: string) => this.routes.indexOf(r);
    for (const s of this.#slots) s.log.write(`${JSON.stringify({ event: 'chaos: partition', groups, reset, time: Date.now() })}\n`);
    partition.cut(this.#net.hosts, groups.map((g) => g.map(index)), reset);
  }

  heal(): void {
    if (this.#net === undefined) return;
    for (const s of this.#slots) s.log.write(`${JSON.stringify({ event: 'chaos: heal', time: Date.now() })}\n`);
    partition.heal(this.#net.hosts);
  }

  /** A member's `/cluster/status`, or undefined when it does not answer within `timeoutMs`. */
  async status(route: string, timeoutMs = 1000): Promise<MemberStatus | undefined> {
    return this.#getJson<MemberStatus>(route, '/cluster/status', timeoutMs);
  }

  async #getJson<T>(route: string, path: string, timeoutMs: number): Promise<T | undefined> {
    try {
      const res = await fetch(`${this.#slot(route).url}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
      return res.status === 200 ? ((await res.json()) as T) : undefined;
    } catch {
      return undefined;
    }
  }

  /** A member's copies (`GET /chaos/copies` of the chaos member app), or undefined without an answer. */
  async copies(route: string, timeoutMs = 2000): Promise<MemberCopies | undefined> {
    return this.#getJson<MemberCopies>(route, '/chaos/copies', timeoutMs);
  }

  /** Kills every process (by pid), removes partitions and namespaces. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    clearInterval(this.#trim);
    await Promise.all(
      this.#slots.map(async (s) => {
        if (s.proc?.alive === true) {
          s.proc.kill('SIGCONT');
          s.proc.kill('SIGKILL');
          await s.proc.exited();
        }
      }),
    );
    await Promise.all(this.#slots.map((s) => new Promise((r) => s.log.end(r))));
    this.#net?.destroy();
  }

  /** The same, synchronously, for a Ctrl-C: SIGKILL by pid (a paused process dies too), then the namespaces. */
  destroyNow(): void {
    this.#destroyed = true;
    clearInterval(this.#trim);
    for (const s of this.#slots) s.proc?.kill('SIGKILL');
    this.#net?.destroy();
  }
}
