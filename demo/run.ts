/**
 * `npm run demo`: starts N demo members (demo/app.ts) and the sticky load balancer in front of them,
 * prints what to open and how to kill a member, and stops everything on Ctrl-C.
 *
 *   npm run demo                               4 members on 8081-8084 (node1..node4, backup mode), balancer on 8080
 *   npm run demo -- --nodes 2 --mode delta     the seed's two-instance setup
 *   npm run demo -- --no-balancer              members only, e.g. behind nginx (demo/nginx.conf)
 *   npm run demo -- --framework express        the same demo as Express (express-app.ts) or Fastify (fastify-app.ts) members
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBalancer, type Balancer } from './balancer.js';

const USAGE = `usage: npm run demo -- [options]

  --nodes N            members to start (default 4)
  --mode backup|delta  replication mode (default backup)
  --framework F        koa (default), express or fastify: the members' web framework
  --base-port P        first member's HTTP port; members use P..P+N-1 (default 8081; 0: any free ports)
  --lb-port P          the balancer's port (default 8080; 0: any free port)
  --no-balancer        start the members only (put nginx or HAProxy in front)
  --mcast-address A    heartbeat group (default: a random group in 239.0.0.0/8, on 127.0.0.1)
  --mcast-port P       heartbeat UDP port (default 45564)
  --verbose            print the members' raw JSON logs
`;

/** Settings from the command line, checked. */
interface DemoOptions {
  nodes: number;
  mode: 'backup' | 'delta';
  framework: Framework;
  basePort: number;
  lbPort: number;
  balancer: boolean;
  mcastAddress: string;
  mcastPort: number;
  verbose: boolean;
}

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function integer(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) fail(`--${name}: expected an integer from ${min} to ${max}, got "${text}"`);
  return n;
}

function parseOptions(argv: string[]): DemoOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        nodes: { type: 'string', default: '4' },
        mode: { type: 'string', default: 'backup' },
        framework: { type: 'string', default: 'koa' },
        'base-port': { type: 'string', default: '8081' },
        'lb-port': { type: 'string', default: '8080' },
        'no-balancer': { type: 'boolean', default: false },
        'mcast-address': { type: 'string' },
        'mcast-port': { type: 'string', default: '45564' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    fail((err as Error).message);
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const mode = parsed.mode;
  if (mode !== 'backup' && mode !== 'delta') fail(`--mode: expected backup or delta, got "${mode}"`);
  const framework = parsed.framework as Framework;
  if (!Object.hasOwn(APPS, framework)) fail(`--framework: expected koa, express or fastify, got "${parsed.framework}"`);
  const nodes = integer('nodes', parsed.nodes, 1, 32);
  const basePort = integer('base-port', parsed['base-port'], 0, 65535 - nodes);
  const r = () => 1 + Math.floor(Math.random() * 250);
  return {
    nodes,
    mode,
    framework,
    basePort,
    lbPort: integer('lb-port', parsed['lb-port'], 0, 65535),
    balancer: !parsed['no-balancer'],
    // A group of this run's own: two demos on one machine never meet (and a random secret below
    // would make them ignore each other's heartbeats anyway).
    mcastAddress: parsed['mcast-address'] ?? `239.${r()}.${r()}.${r()}`,
    mcastPort: integer('mcast-port', parsed['mcast-port'], 1, 65535),
    verbose: parsed.verbose,
  };
}

/** A started member process. */
interface Member {
  route: string;
  child: ChildProcess;
  port: number;
  exited: Promise<void>;
  /** Resolves with the HTTP port from the member's listening line; rejects if it exits first. */
  listening: Promise<number>;
  alive: boolean;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The member script of each framework: the same demo, the same pages. */
const APPS = {
  koa: fileURLToPath(new URL('./app.ts', import.meta.url)),
  express: fileURLToPath(new URL('./express-app.ts', import.meta.url)),
  fastify: fileURLToPath(new URL('./fastify-app.ts', import.meta.url)),
};
type Framework = keyof typeof APPS;
const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const PINO_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'member', 'route', 'name', 'component']);

/** A serialized error as its code and message (the stack is in --verbose). */
function errorText(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || !('message' in value) || typeof value.message !== 'string') return undefined;
  const code = 'code' in value && typeof value.code === 'string' ? `${value.code}: ` : '';
  return JSON.stringify(code + value.message);
}

/** One pino JSON line as a short human line; other lines as they are. */
function formatLog(route: string, line: string, verbose: boolean): string | undefined {
  if (verbose || !line.startsWith('{')) return `[${route}] ${line}`;
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return `[${route}] ${line}`;
  }
  if (entry.event !== undefined) return undefined; // the listening/stopped lines: the runner reports those
  const level = LEVELS[Number(entry.level)] ?? '';
  const extra = Object.entries(entry)
    .filter(([k]) => !PINO_FIELDS.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : errorText(v) ?? JSON.stringify(v)}`)
    .join(' ');
  return `[${route}] ${level === 'info' ? '' : `${level} `}${typeof entry.msg === 'string' ? entry.msg : ''}${extra.length > 0 ? `  ${extra}` : ''}`;
}

function startMember(route: string, port: number, options: DemoOptions, secret: string): Member {
  const child = spawn(process.execPath, ['--import', 'tsx', APPS[options.framework]], {
    cwd: ROOT,
    env: {
      ...process.env,
      ROUTE: route,
      PORT: String(port),
      MODE: options.mode,
      // The cluster's size is known here: a member then serves as soon as it meets a majority of it
      // (without it, a member that met nobody waits forgetAfter; a one-member demo would answer 503).
      EXPECTED_MEMBERS: String(options.nodes),
      CLUSTER_SECRET: secret,
      MCAST_ADDRESS: options.mcastAddress,
      MCAST_PORT: String(options.mcastPort),
      MCAST_INTERFACE: '127.0.0.1',
      RECEIVER_PORT: '0',
      DEMO_EXIT_WITH_PARENT: '1',
    },
    // stdin stays an open pipe: when this runner dies, however, the members see its end and leave.
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let onListening: (port: number) => void = () => undefined;
  const member: Member = {
    route,
    child,
    port: 0,
    alive: true,
    exited: Promise.resolve(),
    listening: new Promise((resolve) => (onListening = resolve)),
  };
  member.exited = once(child, 'exit').then(([code, signal]) => {
    member.alive = false;
    if (!shuttingDown) {
      const how = signal !== null ? `killed by ${String(signal)}` : `exited with code ${String(code)}`;
      const after = ready ? '; the members left take over its sessions as requests for them arrive' : '';
      console.log(`[${route}] ${how}${after}`);
    }
  });
  member.listening = Promise.race([
    member.listening,
    member.exited.then(() => Promise.reject(new Error(`${route} exited before it served (see its log above)`))),
  ]);
  const onLine = (line: string) => {
    if (line.includes('"event":"listening"')) onListening((JSON.parse(line) as { port: number }).port);
    const text = formatLog(route, line, options.verbose);
    if (text !== undefined) console.log(text);
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  return member;
}

/** Waits until every member sees all of them, or says why it may not. */
async function waitForMembership(members: Member[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const counts = await Promise.all(
      members.map(async (m) => {
        try {
          const res = await fetch(`http://127.0.0.1:${m.port}/cluster/status`, { signal: AbortSignal.timeout(2000) });
          return ((await res.json()) as { members: unknown[] }).members.length;
        } catch {
          return 0;
        }
      }),
    );
    if (counts.every((c) => c === members.length)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

let ready = false;
let shuttingDown = false;
let members: Member[] = [];
let balancer: Balancer | undefined;

/** Ctrl-C: stop the balancer, SIGTERM the members (they leave gracefully), wait for them, exit. */
async function shutdown(code: number): Promise<void> {
  if (shuttingDown) {
    // A second Ctrl-C: no more waiting.
    for (const m of members) if (m.alive) m.child.kill('SIGKILL');
    return;
  }
  shuttingDown = true;
  console.log('\ndemo: stopping (Ctrl-C again to kill at once)');
  await balancer?.close();
  for (const m of members) if (m.alive) m.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const m of members) if (m.alive) m.child.kill('SIGKILL');
  }, 20_000);
  await Promise.all(members.map((m) => m.exited));
  clearTimeout(timer);
  console.log('demo: stopped');
  process.exit(code);
}

process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

const options = parseOptions(process.argv.slice(2));
const secret = randomBytes(24).toString('base64url');
const port = (i: number) => (options.basePort === 0 ? 0 : options.basePort + i);
members = Array.from({ length: options.nodes }, (_, i) => startMember(`node${i + 1}`, port(i), options, secret));

try {
  const ports = await Promise.all(members.map((m) => m.listening));
  members.forEach((m, i) => (m.port = ports[i]!));
  if (!(await waitForMembership(members, 15_000))) {
    console.log(
      'demo: the members do not all see each other yet. Multicast on the loopback interface may be off:\n' +
        '      try `sudo ip link set lo multicast on` (heartbeats stay on 127.0.0.1).',
    );
  }
  if (options.balancer) {
    balancer = await startBalancer({
      members: members.map((m) => ({ route: m.route, host: '127.0.0.1', port: m.port })),
      port: options.lbPort,
      log: (line) => console.log(`[balancer] ${line}`),
    });
  }
} catch (err) {
  console.error(`demo: ${(err as Error).message}`);
  await shutdown(1);
}

ready = true;
const width = Math.max(...members.map((m) => m.route.length));
const table = members
  .map((m) => `  ${m.route.padEnd(width)}  http://127.0.0.1:${m.port}/  pid ${m.child.pid}   kill -9 ${m.child.pid}`)
  .join('\n');
console.log(`
koa-session-cluster demo: ${options.nodes} member${options.nodes === 1 ? '' : 's'}, ${options.mode} mode, ${options.framework}, heartbeats on ${options.mcastAddress}:${options.mcastPort} via 127.0.0.1
${
  balancer === undefined
    ? '\n  no balancer: put nginx in front (demo/nginx.conf, see demo/README.md), or open the members directly\n'
    : `\n  open ${balancer.url}/   (sticky load balancer: follows the session cookie's .nodeX suffix)
  status ${balancer.url}/cluster/dashboard   (members, sessions, replication, events: watch it while you kill a member)\n`
}
${table}

Log in, add something to the cart, and note which member served you (top right). Kill that member
with its kill -9 command above and reload: another member takes the session over, you are still
logged in, the cart is intact, and the cookie now ends in that member's route.
Or the seed's test: log in on one member's URL, then open another's (cookies are per host, not per
port, so http://127.0.0.1:<port> addresses share the session cookie; do not mix with localhost).

Ctrl-C stops everything.
`);
