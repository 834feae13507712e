/**
 * Every process the bench starts goes through here: spawned with a known pid, remembered, and killed
 * by that pid (never by name) when the runner finishes, fails, or is interrupted. Also reads the
 * OS accounting of a pid: CPU ticks from /proc/<pid>/stat and VmRSS from /proc/<pid>/status.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface BenchProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Lines printed so far (stdout and stderr), the last 500. */
  readonly lines: string[];
  /** Resolves with the first line (printed so far or later) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  readonly exited: Promise<void>;
  readonly alive: boolean;
  kill(signal?: NodeJS.Signals): void;
}

const live = new Set<BenchProcess>();

/** Spawns `command args` with `env` added; stdout/stderr are collected line by line. */
export function startProcess(name: string, command: string, args: string[], env: Record<string, string> = {}): BenchProcess {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${name}: could not spawn ${command}`);
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  let alive = true;
  const exited = once(child, 'exit').then(() => {
    alive = false;
    live.delete(proc);
  });
  const onLine = (line: string) => {
    lines.push(line);
    if (lines.length > 500) lines.shift();
    if (process.env.BENCH_ECHO === '1') process.stderr.write(`[${name}] ${line}\n`);
    for (const w of waiters) {
      if (w.pattern.test(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  const proc: BenchProcess = {
    name,
    pid: child.pid,
    child,
    lines,
    exited,
    get alive() {
      return alive;
    },
    waitForLine(pattern, timeoutMs = 30_000) {
      const found = lines.find((l) => pattern.test(l));
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const fail = (why: string) => {
          waiters.delete(waiter);
          clearTimeout(timer);
          reject(new Error(`${name} ${why} before printing ${pattern}; last lines:\n${lines.slice(-20).join('\n')}`));
        };
        const timer = setTimeout(() => fail(`took ${timeoutMs} ms`), timeoutMs);
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        waiters.add(waiter);
        void exited.then(() => {
          if (waiters.has(waiter)) fail('exited');
        });
      });
    },
    kill(signal = 'SIGKILL') {
      if (!alive) return;
      try {
        process.kill(child.pid!, signal);
      } catch {
        // already gone
      }
    },
  };
  live.add(proc);
  return proc;
}

/** SIGTERM, then SIGKILL after `graceMs`, for one process; resolves when it exited. */
export async function stopProcess(proc: BenchProcess, graceMs = 2000): Promise<void> {
  if (!proc.alive) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await proc.exited;
  clearTimeout(timer);
}

/** Stops every process still running (by pid). */
export async function stopAll(graceMs = 2000): Promise<void> {
  await Promise.all([...live].map((p) => stopProcess(p, graceMs)));
}

/** Synchronous last resort (process 'exit'): SIGKILL every pid still running. */
export function killAllNow(): void {
  for (const p of live) p.kill('SIGKILL');
}

/** Kills every child when the runner is interrupted or exits, also on an uncaught error. */
export function installCleanup(): void {
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping ${live.size} process(es)\n`);
      killAllNow();
      process.exit(130);
    });
  }
}

let clockTicks: number | undefined;

/** Clock ticks per second of /proc accounting (`getconf CLK_TCK`, almost always 100). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of `pid` (all its threads), in seconds, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; fields after its closing parenthesis are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / clkTck();
}

/** CPU seconds of this process's children that exited and were reaped (cutime + cstime of /proc/self/stat). */
export function reapedChildrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / clkTck();
}

/** Sum of `cpuSeconds` over `pids`; a pid that is gone counts its last reading (`last`). */
export function cpuOf(pids: number[], last = new Map<number, number>()): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      const s = cpuSeconds(pid);
      last.set(pid, s);
      sum += s;
    } catch {
      sum += last.get(pid) ?? 0;
    }
  }
  return sum;
}

/** Resident set size of `pid` in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m === null ? 0 : Number(m[1]) * 1024;
}

/** Busy CPU seconds of the whole machine so far (every process), from the first line of /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
  return busy / clkTck();
}

/** CPU seconds and command line of every process on the machine, by pid (to name a noisy neighbour). */
export function allProcessesCpu(): Map<number, { cpu: number; command: string }> {
  const out = new Map<number, { cpu: number; command: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const pid = Number(entry);
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim().slice(0, 120);
      out.set(pid, { cpu: cpuSeconds(pid), command });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The processes (other than `exclude`) that used the most CPU between two `allProcessesCpu` readings. */
export function topConsumers(
  before: Map<number, { cpu: number; command: string }>,
  after: Map<number, { cpu: number; command: string }>,
  exclude: ReadonlySet<number>,
  n = 3,
): { pid: number; cpu: number; command: string }[] {
  const rows: { pid: number; cpu: number; command: string }[] = [];
  for (const [pid, a] of after) {
    if (exclude.has(pid)) continue;
    const cpu = a.cpu - (before.get(pid)?.cpu ?? 0);
    if (cpu > 0.05) rows.push({ pid, cpu: Math.round(cpu * 100) / 100, command: a.command });
  }
  return rows.sort((x, y) => y.cpu - x.cpu).slice(0, n);
}
