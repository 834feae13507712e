/**
 * The event trace of one schedule: hashed as it grows (two runs of a seed must give the same hash),
 * with the last lines kept for a violation report, or every line when replaying one seed.
 */
import { createHash, type Hash } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { SIM_EPOCH } from './loop.js';

const TAIL = 200;

export class Trace {
  readonly #hash: Hash = createHash('sha256');
  readonly #tail: string[] = [];
  readonly all: string[] | undefined;
  lines = 0;

  constructor(
    readonly now: () => number,
    keepAll: boolean,
    readonly echo?: (line: string) => void,
  ) {
    this.all = keepAll ? [] : undefined;
  }

  add(what: string): void {
    const line = `${(this.now() - SIM_EPOCH).toFixed(3).padStart(10)} ${what}`;
    this.#hash.update(line);
    this.#hash.update('\n');
    this.lines++;
    this.#tail.push(line);
    if (this.#tail.length > TAIL * 2) this.#tail.splice(0, TAIL);
    this.all?.push(line);
    this.echo?.(line);
  }

  tail(n = 60): string[] {
    return this.#tail.slice(-n);
  }

  digest(): string {
    return this.#hash.copy().digest('hex').slice(0, 16);
  }
}

/** A logger writing the members' own log lines (debug and up) into the trace of a replayed seed. */
export function traceLogger(trace: Trace): Logger {
  return pino(
    { level: 'debug', base: undefined, timestamp: false },
    {
      write(json: string): void {
        const { level: _level, m, msg, ...rest } = JSON.parse(json) as Record<string, unknown>;
        const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
        trace.add(`  ${String(m)} log: ${String(msg)} ${fields.join(' ')}`);
      },
    },
  );
}
