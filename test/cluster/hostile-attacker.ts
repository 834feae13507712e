/**
 * The attacker of hostile-load.test.ts, a process of its own: opens many connections to one
 * member's receiver from several loopback source addresses (127.0.0.x; all of 127/8 is loopback)
 * and sends what an outsider without the secret can: huge length prefixes, slow bytes, garbage,
 * valid preambles followed by the first 512 KiB of an 8 MiB frame, idle connections, and replays
 * of real member traffic. Bounded in count, rate, concurrency and time; prints one JSON summary.
 *
 * Two phases: a flood of FLOOD idle connections at once from every source (to fill the strangers'
 * budget), then CONNECTIONS of every kind at RATE per second, half of them from one source (to
 * hit the per-source cap).
 *
 * Env: TARGET_PORT, FLOOD, CONNECTIONS, RATE (per second), CONCURRENCY, DEADLINE_MS, SOURCES
 * (count of source addresses from 127.0.0.10), REPLAY_FILE (captured client-to-server bytes).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';

const env = process.env;
const port = Number(env.TARGET_PORT);
const flood = Number(env.FLOOD ?? 512);
const total = Number(env.CONNECTIONS ?? 3000);
const rate = Number(env.RATE ?? 300);
const concurrency = Number(env.CONCURRENCY ?? 300);
const deadline = Date.now() + Number(env.DEADLINE_MS ?? 25_000);
const sources = Array.from({ length: Number(env.SOURCES ?? 32) }, (_, i) => `127.0.0.${10 + i}`);
const replay = env.REPLAY_FILE !== undefined ? readFileSync(env.REPLAY_FILE) : Buffer.alloc(0);
/** A wire-valid preamble: magic, version 1, no encryption, a nonce. */
const preamble = () => Buffer.concat([Buffer.from('KSC'), Buffer.from([1, 0]), randomBytes(16)]);
const prefix = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
};
const HALF_MIB = randomBytes(512 * 1024);

type Kind = 'huge_prefix' | 'slow_bytes' | 'garbage' | 'partial_8mib' | 'replay' | 'idle';
const KINDS: Kind[] = ['huge_prefix', 'slow_bytes', 'garbage', 'partial_8mib', 'replay', 'idle'];

/** The attacker gives up on a connection the member has not closed after this long (env GIVE_UP_MS). */
const GIVE_UP_MS = Number(process.env.GIVE_UP_MS ?? 15_000);

const summary = {
  event: 'done',
  opened: 0,
  /** Connections that reached the member (TCP connect succeeded). */
  established: 0,
  /** Of those, closed by the member (what the test expects of every one). */
  closedByMember: 0,
  /**
   * Still open after GIVE_UP_MS: the attacker gave up on them (the member should never let that
   * happen). On a loaded machine a connection can wait seconds in the kernel's accept queue before the
   * member's 1 s pre-authentication timer for it even starts: the test judges `longestHoldMs`.
   */
  heldTooLong: 0,
  /** The longest a connection the member closed stayed open (ms): what the machine's load cost. */
  longestHoldMs: 0,
  connectFailed: 0,
  byKind: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>,
  bytesSent: 0,
  durationMs: 0,
};

function attack(i: number, kind: Kind, source: string): Promise<void> {
  summary.byKind[kind] += 1;
  summary.opened += 1;
  return new Promise((resolve) => {
    const s: Socket = connect({ host: '127.0.0.1', port, localAddress: source });
    let connected = false;
    let drip: NodeJS.Timeout | undefined;
    let gaveUp = false;
    const opened = Date.now();
    const giveUp = setTimeout(() => {
      gaveUp = true;
      summary.heldTooLong += 1;
      s.destroy();
    }, GIVE_UP_MS);
    const write = (b: Buffer) => {
      if (!s.writable) return;
      summary.bytesSent += b.length;
      s.write(b);
    };
    s.on('error', () => {}); // resets by the member are the point
    s.resume();
    s.once('connect', () => {
      connected = true;
      summary.established += 1;
      switch (kind) {
        case 'huge_prefix':
          write(Buffer.concat([preamble(), prefix(0x7fff_ffff)]));
          break;
        case 'slow_bytes': {
          const bytes = Buffer.concat([preamble(), prefix(200), randomBytes(200)]);
          let at = 0;
          drip = setInterval(() => (at < bytes.length ? write(bytes.subarray(at, ++at)) : clearInterval(drip)), 150);
          break;
        }
        case 'garbage':
          write(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: member\r\n\r\n'), randomBytes(1024 + (i % 3000))]));
          break;
        case 'partial_8mib':
          write(Buffer.concat([preamble(), prefix(8 * 1024 * 1024 - 16)]));
          write(HALF_MIB);
          break;
        case 'replay':
          write(replay);
          break;
        case 'idle':
          break;
      }
    });
    s.once('close', () => {
      clearTimeout(giveUp);
      clearInterval(drip);
      // The attacker itself closes only when giving up; any other close is the member's doing.
      if (!connected) summary.connectFailed += 1;
      else if (!gaveUp) {
        summary.closedByMember += 1;
        summary.longestHoldMs = Math.max(summary.longestHoldMs, Date.now() - opened);
      }
      resolve();
    });
  });
}

const started = Date.now();
const inFlight = new Set<Promise<void>>();
const launch = (i: number, kind: Kind, source: string) => {
  const p = attack(i, kind, source).finally(() => inFlight.delete(p));
  inFlight.add(p);
};
for (let i = 0; i < flood; i++) launch(i, 'idle', sources[i % sources.length]);
const paced = Date.now();
for (let i = 0; i < total && Date.now() < deadline; i++) {
  while (inFlight.size >= concurrency) await Promise.race(inFlight);
  // Paced: connection i starts no earlier than i / rate seconds into the second phase.
  const due = paced + (i * 1000) / rate;
  if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
  // Alternate blocks of all six kinds between the one heavy source and the others.
  const heavy = Math.floor(i / KINDS.length) % 2 === 0;
  launch(flood + i, KINDS[i % KINDS.length], heavy ? sources[0] : sources[1 + (i % (sources.length - 1))]);
}
await Promise.all(inFlight);
summary.durationMs = Date.now() - started;
process.stdout.write(JSON.stringify(summary) + '\n');
