/**
 * A TCP proxy that adds a one-way delay to every byte in each direction, preserving order: the
 * "network" of the realistic-network bench (between the app and redis-server, and between cluster
 * members). Run as its own process so its CPU time is counted apart from both sides'.
 *
 * argv[2]: JSON `{ "delayMs": 0.25, "routes": [{ "listen": "127.0.0.2:4001", "target": "127.0.0.1:4001" }, ...] }`
 * (`listen` port 0 picks a free one). Prints `{"event":"listening","ports":[...],"pid":N}` with the
 * bound port of each route, in order.
 *
 * A connection is accepted before its target is dialled; when the target refuses, the accepted
 * connection is closed (after the delay), which a member reads as "closed by the peer during the
 * handshake": a process that is gone, as a refusal would say.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { DelayLine } from './lib/delay-line.js';

interface Route {
  listen: string;
  target: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as { delayMs: number; routes: Route[] };
const line = new DelayLine(config.delayMs);

const hostPort = (s: string) => {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
};

/** Forwards what `from` sends to `to`, each chunk, its end and its failure after the delay. */
function forward(from: Socket, to: Socket): void {
  from.on('data', (chunk: Buffer) => {
    line.push(() => {
      if (to.destroyed) return;
      // Backpressure: stop reading while the other side's buffer is full.
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
  });
  from.on('end', () => line.push(() => to.end()));
  from.on('close', (hadError) => line.push(() => (hadError ? to.destroy() : to.end())));
  from.on('error', () => {
    // 'close' follows with hadError: the other side is destroyed then.
  });
}

function listen(route: Route): Promise<Server> {
  const target = hostPort(route.target);
  const server = createServer({ noDelay: true }, (client) => {
    const upstream = connect({ ...target, noDelay: true });
    forward(client, upstream);
    forward(upstream, client);
  });
  const { host, port } = hostPort(route.listen);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

const servers = await Promise.all(config.routes.map(listen));
const ports = servers.map((s) => {
  const a = s.address();
  return typeof a === 'object' && a !== null ? a.port : 0;
});
process.stdout.write(JSON.stringify({ event: 'listening', ports, pid: process.pid }) + '\n');

const exit = () => {
  line.close();
  process.exit(0);
};
process.on('SIGTERM', exit);
process.on('SIGINT', exit);
