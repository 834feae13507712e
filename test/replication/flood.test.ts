/**
 * Issue 26: a session flood cannot take the cluster down. 4 real members in backup mode, each with a
 * 128 MB heap (`--max-old-space-size=128`, as in a small container); logged-in users keep counting
 * while bounded clients create large sessions as fast as they can (bounded in count and in time), the
 * test acting as the balancer: a 503 sends the flood request to the next member. Then: no member died,
 * every user's acknowledged counter is intact, and the flood was refused (or evicted only idle
 * sessions) as configured. The second case SIGKILLs a member during the flood.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startAppCluster, type AppMember } from '../helpers/app-cluster.js';
import { CookieJar, request } from '../helpers/http-client.js';

const MEMBERS = 4;
const USERS = 20;
const FLOOD_CLIENTS = 16;

interface Capacity {
  maxSessions: number;
  plannedLevel: number;
  held: number;
  source: string;
  refusedFull: number;
  refusedOverloaded: number;
  refusedCopyHolderFull: number;
  copiesRefused: number;
  evicted: number;
  heapLimitBytes: number;
  costPerSessionBytes: number;
  /** Sessions this member took over (from /cluster/status `replication`). */
  takeovers: number;
}

async function capacityOf(m: AppMember): Promise<Capacity> {
  const res = await fetch(`${m.url}/cluster/status`, { signal: AbortSignal.timeout(10_000) });
  const s = (await res.json()) as { capacity: Capacity; replication: { takeovers: number } };
  return { ...s.capacity, takeovers: s.replication.takeovers };
}

/** Peak resident set of a process (VmHWM), bytes; 0 once it is gone. */
function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? 0 : Number(m[1]) * 1024;
  } catch {
    return 0;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (b: number) => Math.round(b / 1048576);

interface User {
  jar: CookieJar;
  home: number;
  /** The counter value of the last increment the cluster acknowledged (its response said so). */
  acked: number;
  /**
   * Increments whose outcome the user never learnt since the last acknowledged one (a timeout, a
   * member killed under the request): each may have been applied, or not.
   */
  unknown: number;
  failures: number;
}

interface FloodOutcome {
  created: number;
  refused: number;
  other: number;
}

/**
 * Creates sessions of `bytes` bytes from `FLOOD_CLIENTS` clients without cookies, until `count`
 * attempts, `ms`, or `enough()` says the flood met what the case looks for; a 503 tries the next
 * member, as a balancer does.
 */
async function flood(members: () => AppMember[], count: number, ms: number, bytes: number, enough: () => boolean): Promise<FloodOutcome> {
  const out: FloodOutcome = { created: 0, refused: 0, other: 0 };
  const blob = 'x'.repeat(bytes);
  const deadline = Date.now() + ms;
  let attempts = 0;
  await Promise.all(
    Array.from({ length: FLOOD_CLIENTS }, async (_, c) => {
      let i = c;
      while (attempts < count && Date.now() < deadline && !enough()) {
        attempts++;
        const live = members();
        const m = live[i++ % live.length];
        try {
          const res = await fetch(`${m.url}/set`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ blob }),
            signal: AbortSignal.timeout(10_000),
          });
          await res.arrayBuffer();
          if (res.status === 200) out.created++;
          else if (res.status === 503 && res.headers.get('retry-after') !== null) out.refused++;
          else out.other++;
        } catch {
          out.other++; // the member was killed under it, or it timed out
        }
      }
    }),
  );
  return out;
}

/** Each user counts on its home member until `stop()`; a failed member sends it to the next one. */
function work(users: User[], members: () => AppMember[], all: AppMember[]): { stop: () => Promise<void> } {
  let running = true;
  const loops = users.map(async (u) => {
    while (running) {
      const live = members();
      const home = all[u.home];
      const m = live.includes(home) ? home : live[u.home % live.length];
      const res = await request(u.jar, 'POST', `${m.url}/incr`, undefined, 10_000, 20_000).catch(() => undefined);
      if (res?.status === 200) {
        const n = (res.body as { session: { n: number } }).session.n;
        assert.ok(
          n > u.acked && n <= u.acked + 1 + u.unknown,
          `a user's counter went from ${u.acked} to ${n} on ${m.route} (${u.unknown} increments of unknown outcome): an acknowledged increment was lost`,
        );
        u.acked = n;
        u.unknown = 0;
      } else {
        u.failures++;
        u.unknown++;
      }
      await sleep(150);
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

interface Scenario {
  name: string;
  env: Record<string, string>;
  floodCount: number;
  /** At most this long; it stops sooner once `enough` holds of the members' capacity counters. */
  floodMs: number;
  enough: (caps: Capacity[]) => boolean;
  bytes: number;
  /** SIGKILL this member (index) this long into the flood. */
  killAt?: { member: number; afterMs: number };
}

async function run(t: TestContext, s: Scenario): Promise<void> {
  const { members: all } = await startAppCluster(t, MEMBERS, {
    env: { NODE_OPTIONS: '--max-old-space-size=128', LOG_LEVEL: 'warn', MAX_AGE: '600000', ...s.env },
  });
  const killed = new Set<AppMember>();
  const live = () => all.filter((m) => !killed.has(m));
  const users: User[] = Array.from({ length: USERS }, (_, i) => ({ jar: new CookieJar(), home: i % MEMBERS, acked: 0, unknown: 0, failures: 0 }));
  for (const [i, u] of users.entries()) {
    const res = await request(u.jar, 'POST', `${all[u.home].url}/login`, { id: i, name: `user${i}` });
    assert.equal(res.status, 200, `user ${i} logs in`);
  }
  const peaks = new Map<AppMember, number>();
  const sampler = setInterval(() => {
    for (const m of all) if (m.proc.alive) peaks.set(m, Math.max(peaks.get(m) ?? 0, peakRss(m.proc.pid)));
  }, 500);
  t.after(() => clearInterval(sampler));
  const workers = work(users, live, all);
  let before: Capacity | undefined;
  const kill = s.killAt;
  const killer =
    kill === undefined
      ? undefined
      : setTimeout(() => {
        const victim = all[kill.member];
        void capacityOf(victim).then(
          (c) => (before = c),
          () => undefined,
        );
        setTimeout(() => {
          killed.add(victim);
          victim.proc.kill('SIGKILL');
        }, 200);
      }, kill.afterMs);
  t.after(() => clearTimeout(killer));
  // The members' counters, polled: the flood goes on until it met what the case looks for (the machine
  // may be slow, or shared), within floodMs.
  let enough = false;
  const poller = setInterval(() => {
    void Promise.all(live().map(capacityOf)).then(
      (caps) => (enough = (kill === undefined || killed.size > 0) && s.enough(caps)),
      () => undefined,
    );
  }, 1000);
  t.after(() => clearInterval(poller));
  const outcome = await flood(live, s.floodCount, s.floodMs, s.bytes, () => enough);
  clearInterval(poller);
  // The users go on a while after the flood: re-protection and takeovers run under them.
  await sleep(3000);
  await workers.stop();
  clearInterval(sampler);
  for (const m of all) if (m.proc.alive) peaks.set(m, Math.max(peaks.get(m) ?? 0, peakRss(m.proc.pid)));

  const caps = await Promise.all(live().map(capacityOf));
  const refusedByMembers = caps.reduce((n, c) => n + c.refusedFull + c.refusedOverloaded + c.refusedCopyHolderFull, 0);
  const evicted = caps.reduce((n, c) => n + c.evicted, 0);
  process.stdout.write(
    `# ${s.name}: flood ${outcome.created} created, ${outcome.refused} refused (503), ${outcome.other} other; ` +
      `members refused ${refusedByMembers}, evicted ${evicted}; users acknowledged ${users.reduce((n, u) => n + u.acked, 0)} increments, ${users.reduce((n, u) => n + u.failures, 0)} retried out\n`,
  );
  for (const m of all) {
    const c = caps[live().indexOf(m)];
    const heap = c?.heapLimitBytes ?? before?.heapLimitBytes ?? 0;
    process.stdout.write(
      `#   ${m.route}${killed.has(m) ? ' (SIGKILLed)' : ''}: peak RSS ${mib(peaks.get(m) ?? 0)} MiB, heap limit ${mib(heap)} MiB` +
        (c === undefined ? '' : `; held ${c.held} of maxSessions ${c.maxSessions} (${c.source}, ${c.costPerSessionBytes} B/session), planned ${c.plannedLevel}, took over ${c.takeovers}; refused ${c.refusedFull} full, ${c.refusedOverloaded} overloaded, ${c.refusedCopyHolderFull} copy-holder-full; copies refused ${c.copiesRefused}; evicted ${c.evicted}`) +
        '\n',
    );
  }

  // No member died (but the one the test killed), none ran out of heap.
  for (const m of live()) {
    assert.ok(m.proc.alive, `${m.route} died: ${m.proc.lines.slice(-5).join('\n')}`);
    assert.ok(!m.proc.lines.some((l) => /heap out of memory/i.test(l)), `${m.route} ran out of heap`);
  }
  // Every member stayed within its bound, and the flood met it. A takeover moves a session that exists
  // to the member a request reached (the cluster holds no more for it), and is never refused: a user
  // whose member died keeps working, so a member may hold that many past maxSessions.
  for (const [i, c] of caps.entries()) {
    assert.ok(c.held <= c.maxSessions + c.takeovers, `${live()[i].route} holds ${c.held}, over its maxSessions ${c.maxSessions} and the ${c.takeovers} sessions it took over`);
  }
  assert.ok(outcome.created > 0, 'the flood created sessions while there was room');
  // Every user's acknowledged counter is there, on whichever member serves it now.
  for (const [i, u] of users.entries()) {
    const m = live().includes(all[u.home]) ? all[u.home] : live()[u.home % live().length];
    const res = await request(u.jar, 'GET', `${m.url}/get`, undefined, 10_000, 20_000);
    assert.equal(res.status, 200, `user ${i} is served`);
    const session = (res.body as { session: { n?: number; user?: unknown } }).session;
    assert.ok(session.user !== undefined, `user ${i} is still logged in`);
    const n = session.n ?? 0;
    assert.ok(n >= u.acked && n <= u.acked + u.unknown, `user ${i}'s counter is ${n}: its last acknowledged value is ${u.acked} (${u.unknown} of unknown outcome since)`);
    assert.ok(u.acked > 0, `user ${i} kept working during the flood`);
  }
  if (s.env.ON_CAPACITY === 'evict-idle') {
    assert.ok(evicted > 0, 'the flood met capacity and evicted idle sessions');
    // Only idle ones: the flood's own sessions (never touched again), never a working user's.
    const events = all.flatMap((m) => m.proc.lines.filter((l) => l.includes('"session-event"') && l.includes('"evicted"')));
    assert.ok(events.length > 0, 'each eviction fired sessionDestroyed with reason evicted');
    assert.ok(events.every((l) => !l.includes('"principal"')), 'no evicted session belonged to a user (users have a principal)');
  } else {
    assert.ok(outcome.refused > 0 && caps.some((c) => c.refusedFull > 0), 'the flood met the planned level and was refused');
    assert.equal(evicted, 0, "'refuse' drops nothing that exists");
  }
}

// maxSessions is set: on two cores shared with other work a flood creates a few dozen sessions a
// second, too few to reach the heap-derived bound (tens of thousands) within the test's time. That
// bound is checked in capacity.test.ts and status-router.test.ts.
test("'refuse': a session flood is refused at the planned level; no member dies, no user loses a write", { timeout: 120_000 }, async (t) => {
  await run(t, {
    name: 'refuse, maxSessions 200',
    env: { CAPACITY: '200' },
    floodCount: 20_000,
    floodMs: 40_000,
    bytes: 4000,
    enough: (caps) => caps.reduce((n, c) => n + c.refusedFull, 0) >= 100,
  });
});

test('evict-idle with a member SIGKILLed during the flood: only idle sessions go, every user keeps its counter', { timeout: 120_000 }, async (t) => {
  await run(t, {
    name: 'evict-idle, maxSessions 200, node4 SIGKILLed',
    env: { CAPACITY: '200', ON_CAPACITY: 'evict-idle', EVICT_IDLE_AFTER: '4000', PRINCIPAL: '1' },
    floodCount: 20_000,
    floodMs: 40_000,
    enough: (caps) => caps.reduce((n, c) => n + c.evicted, 0) >= 100,
    bytes: 4000,
    killAt: { member: 3, afterMs: 6000 },
  });
});
