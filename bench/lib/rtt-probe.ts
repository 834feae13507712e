/**
 * Measures what the delay proxy really adds: round trips of 16 bytes to an echo server, directly and
 * through the proxy, one at a time. Sub-millisecond sleeps overshoot (futex wake-up, timer slack,
 * two thread hand-offs), so the bench reports the measured figure beside the configured delay.
 */
import { createServer, connect, type Server } from 'node:net';
import { quantile, round } from './stats.js';

/** An echo server on a free loopback port. */
export function startEcho(): Promise<{ server: Server; port: number }> {
  const server = createServer({ noDelay: true }, (s) => s.pipe(s));
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a !== null ? a.port : 0 });
    });
  });
}

/** p50 and p99 of `count` sequential round trips to the echo at `host:port`, in ms. */
export async function roundTrips(host: string, port: number, count: number): Promise<{ p50Ms: number; p99Ms: number }> {
  const socket = connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const payload = Buffer.alloc(16, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        let got = 0;
        const onData = (b: Buffer) => {
          got += b.length;
          if (got < payload.length) return;
          socket.off('data', onData);
          resolve();
        };
        socket.on('data', onData);
        socket.write(payload, (err) => (err === undefined || err === null ? undefined : reject(err)));
      });
      times.push(performance.now() - t0);
    }
  } finally {
    socket.destroy();
  }
  times.sort((a, b) => a - b);
  return { p50Ms: round(quantile(times, 0.5), 3), p99Ms: round(quantile(times, 0.99), 3) };
}
