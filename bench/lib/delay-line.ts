/**
 * A delay line with sub-millisecond precision and no busy loop: callbacks run `delayMs` after they
 * were pushed, in the order pushed. Node's timers have a 1 ms granularity (libuv), and polling with
 * setImmediate would spin a core while anything is queued; so a worker thread sleeps in
 * `Atomics.wait` (a futex with a fractional-millisecond timeout) until the head is due, then wakes
 * this thread with a message, and this thread runs everything due.
 *
 *   main thread                          timer thread
 *   push() on an empty line ──due, gen++──▶ wait(gen, until due)
 *   on 'message': run the due ones ◀─────── post when due, then wait(gen)
 *            └──next due (or 0), gen++────▶
 *
 * With one constant delay, due times are in push order: one FIFO serves every connection.
 */
import { Worker } from 'node:worker_threads';

/** The timer thread's body, as plain JavaScript (a string-evaluated worker is CommonJS). */
const TIMER_THREAD = `
const { workerData } = require('node:worker_threads');
const { parentPort } = require('node:worker_threads');
const gen = new Int32Array(workerData, 0, 1);
const due = new BigInt64Array(workerData, 8, 1);
for (;;) {
  const g = Atomics.load(gen, 0);
  if (g < 0) break;
  const d = Atomics.load(due, 0);
  if (d === 0n) { Atomics.wait(gen, 0, g); continue; }
  const left = d - process.hrtime.bigint();
  if (left > 0n) { Atomics.wait(gen, 0, g, Number(left) / 1e6); continue; }
  parentPort.postMessage(0);
  Atomics.wait(gen, 0, g);
}
`;

export class DelayLine {
  readonly #delayNs: bigint;
  readonly #gen: Int32Array;
  readonly #due: BigInt64Array;
  readonly #worker: Worker;
  /** Pending callbacks, oldest first from `#head` (a queue that compacts itself now and then). */
  #queue: { due: bigint; run: () => void }[] = [];
  #head = 0;

  constructor(delayMs: number) {
    this.#delayNs = BigInt(Math.round(delayMs * 1e6));
    const shared = new SharedArrayBuffer(16);
    this.#gen = new Int32Array(shared, 0, 1);
    this.#due = new BigInt64Array(shared, 8, 1);
    this.#worker = new Worker(TIMER_THREAD, { eval: true, workerData: shared });
    this.#worker.on('message', () => this.#drain());
    this.#worker.unref();
  }

  /** Runs `run` after the delay, after everything pushed before it. */
  push(run: () => void): void {
    const due = process.hrtime.bigint() + this.#delayNs;
    const wasEmpty = this.#head === this.#queue.length;
    this.#queue.push({ due, run });
    if (wasEmpty) this.#next(due);
  }

  /** Stops the timer thread; what is still queued never runs. */
  close(): void {
    Atomics.store(this.#gen, 0, -1);
    Atomics.notify(this.#gen, 0);
  }

  #drain(): void {
    const now = process.hrtime.bigint();
    while (this.#head < this.#queue.length && this.#queue[this.#head].due <= now) {
      const item = this.#queue[this.#head++];
      item.run();
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    this.#next(this.#head < this.#queue.length ? this.#queue[this.#head].due : 0n);
  }

  /** Tells the timer thread the next due time (0: nothing queued) and wakes it. */
  #next(due: bigint): void {
    Atomics.store(this.#due, 0, due);
    Atomics.add(this.#gen, 0, 1);
    Atomics.notify(this.#gen, 0);
  }
}
