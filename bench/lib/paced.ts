/**
 * A paced load for the latency comparisons at a moderate rate: requests leave evenly spaced at `rate`
 * per second whether or not earlier ones were answered (an open loop), over at most `connections`
 * keep-alive sockets. autocannon's `overallRate` sends each second's quota as fast as it can at the
 * start of the second, a burst that queues in the app and hides the network; and a closed loop would
 * not send while waiting, so a slow answer would not delay the ones behind it (coordinated omission).
 * The latency runs from the moment a request is handed to Node's HTTP client (the timer tick that
 * sends it, within about a millisecond of when it was due) to its response's end: the timer's lag
 * is the same for every variant and would only blur their difference.
 */
import { Agent, request } from 'node:http';

export interface PacedOptions {
  url: string;
  method: 'GET' | 'POST';
  path: string;
  rate: number;
  connections: number;
  durationS: number;
  timeoutMs: number;
  /** The Cookie header of the `i`-th request. */
  cookie: (i: number) => string;
}

export interface PacedHooks {
  /** A response arrived (`status`) or the request failed (`status` 0). */
  done(i: number, latencyMs: number, status: number, setCookie: string[] | undefined): void;
  /** Resolves when the load should end before its duration (the runner's SIGTERM). */
  stop: Promise<void>;
}

/** Runs the load; resolves with its length in seconds once every request sent has settled. */
export async function paced(o: PacedOptions, hooks: PacedHooks): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: o.connections });
  const { hostname, port } = new URL(o.url);
  const t0 = performance.now();
  const endAt = t0 + o.durationS * 1000;
  let sent = 0;
  let inFlight = 0;
  let stopped = false;
  void hooks.stop.then(() => (stopped = true));
  const send = (i: number) => {
    const sentAt = performance.now();
    inFlight++;
    let settled = false;
    const settle = (status: number, setCookie?: string[]) => {
      if (settled) return;
      settled = true;
      inFlight--;
      hooks.done(i, performance.now() - sentAt, status, setCookie);
    };
    const req = request(
      { host: hostname, port, method: o.method, path: o.path, agent, headers: { cookie: o.cookie(i), 'content-length': 0 }, timeout: o.timeoutMs },
      (res) => {
        res.resume();
        res.on('end', () => settle(res.statusCode ?? 0, res.headers['set-cookie']));
        res.on('error', () => settle(0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => settle(0));
    req.end();
  };
  await new Promise<void>((resolve) => {
    // Timers tick every millisecond or so; each tick sends every request due by now.
    const timer = setInterval(() => {
      const now = performance.now();
      const until = Math.min(now, endAt);
      while (!stopped && t0 + (sent * 1000) / o.rate <= until) send(sent++);
      if (stopped || now >= endAt) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  const sendingEnded = performance.now();
  // Bounded: what has not settled within the timeout counts as failed when the caller reads it.
  const drainDeadline = performance.now() + o.timeoutMs;
  while (inFlight > 0 && performance.now() < drainDeadline) await new Promise((r) => setTimeout(r, 5));
  agent.destroy();
  return (sendingEnded - t0) / 1000;
}
