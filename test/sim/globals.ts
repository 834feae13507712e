/**
 * Determinism guard: while a simulation runs, the process-wide time sources the protocol might still
 * read directly (`Date.now`, `performance.now`, global timers, `Math.random`) are routed to the
 * simulation, owned by the process whose event is running. The protocol is meant to use the injected
 * `Clock`; this catches whatever does not (yet), and counts it, so a replay stays exact either way.
 */
import type { Prng } from './prng.js';
import type { SimLoop } from './loop.js';

export interface GlobalUse {
  dateNow: number;
  timers: number;
}

interface ShimTimer {
  cancelled: boolean;
  event: unknown;
  unref(): ShimTimer;
  ref(): ShimTimer;
  hasRef(): boolean;
  refresh(): ShimTimer;
  [Symbol.toPrimitive](): number;
}

const real = {
  dateNow: Date.now,
  perfNow: performance.now.bind(performance),
  setTimeout: globalThis.setTimeout,
  setInterval: globalThis.setInterval,
  clearTimeout: globalThis.clearTimeout,
  clearInterval: globalThis.clearInterval,
  random: Math.random,
};

let installed = false;

function isShim(h: unknown): h is ShimTimer {
  return typeof h === 'object' && h !== null && 'cancelled' in h && 'event' in h;
}

/** Routes the globals to `loop` until the returned function is called. */
export function installGlobals(loop: SimLoop, rng: Prng, use: GlobalUse): () => void {
  if (installed) throw new Error('installGlobals: a simulation is already running in this process');
  installed = true;
  let ids = 0;
  const make = (fn: () => void, ms: number, repeat: boolean): ShimTimer => {
    use.timers++;
    const id = ++ids;
    const t: ShimTimer = {
      cancelled: false,
      event: undefined,
      unref: () => t,
      ref: () => t,
      hasRef: () => false,
      refresh: () => t,
      [Symbol.toPrimitive]: () => id,
    };
    const proc = loop.current;
    if (repeat) {
      const h = loop.interval(proc, fn, ms);
      t.event = h;
      Object.defineProperty(t, 'cancelled', { get: () => h.cancelled, set: (v: boolean) => (h.cancelled = v) });
    } else {
      const e = loop.after(Math.max(0, ms), proc, () => t.cancelled || fn(), true);
      t.event = e;
    }
    return t;
  };
  const clear = (h: unknown): void => {
    if (!isShim(h)) {
      real.clearTimeout(h as NodeJS.Timeout);
      return;
    }
    h.cancelled = true;
    const ev = h.event as { cancelled: boolean; event?: { cancelled: boolean } } | undefined;
    if (ev !== undefined) {
      ev.cancelled = true;
      if (ev.event !== undefined) ev.event.cancelled = true;
    }
  };
  Date.now = () => {
    use.dateNow++;
    return Math.floor(loop.now);
  };
  performance.now = () => loop.now - 1_000_000_000_000;
  const g = globalThis as unknown as Record<string, unknown>;
  g.setTimeout = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => make(() => fn(...args), ms ?? 0, false);
  g.setInterval = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => make(() => fn(...args), ms ?? 0, true);
  g.clearTimeout = clear;
  g.clearInterval = clear;
  Math.random = () => rng.float();
  return () => {
    Date.now = real.dateNow;
    performance.now = real.perfNow;
    g.setTimeout = real.setTimeout;
    g.setInterval = real.setInterval;
    g.clearTimeout = real.clearTimeout;
    g.clearInterval = real.clearInterval;
    Math.random = real.random;
    installed = false;
  };
}
