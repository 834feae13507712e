/**
 * How long a process's main thread waited for a CPU while it could run (Linux's schedstat
 * `run_delay`). Promise 5's bound (dropTime + 2 s) is time the members spend working; on a machine
 * whose cores are shared with other runs, a member may wait seconds for a core, and the convergence
 * check adds that wait to its limit (and says so) instead of calling the machine's load a broken promise.
 */
import { readFileSync } from 'node:fs';

/** Ms the process `pid` (its main thread) has waited on a run queue since it started; undefined if unknown. */
export function runQueueWaitMs(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
    const ns = Number(fields[1]);
    return Number.isFinite(ns) ? ns / 1e6 : undefined;
  } catch {
    return undefined; // not Linux, or the process is gone
  }
}

/** Snapshots of several processes' waits; `since` gives the longest wait of any of them since the snapshot. */
export class CpuWait {
  readonly #at = new Map<number, number>();

  constructor(pids: readonly number[]) {
    for (const pid of pids) {
      const ms = runQueueWaitMs(pid);
      if (ms !== undefined) this.#at.set(pid, ms);
    }
  }

  /** The longest wait, in ms, of a process of the snapshot since it was taken (0 if none is known). */
  longest(): number {
    let worst = 0;
    for (const [pid, before] of this.#at) {
      const now = runQueueWaitMs(pid);
      if (now !== undefined) worst = Math.max(worst, now - before);
    }
    return Math.round(worst);
  }
}
