/**
 * A short chaos run per mode (`npm run chaos` is the long one): real members under 30 clients while
 * the nemesis kills, pauses, stops and (as root, in network namespaces) partitions them; and one with
 * `backups: 2` where two members are killed at once. Any
 * violation of a promise fails the test with the table, the first violations and their log lines.
 * Namespaces need root, iproute2 and nftables: without them the run uses loopback (no partitions),
 * except under REQUIRE_SYSTEM_TESTS=1 (CI), where that is a failure. CHAOS_SEED replays a seed.
 */
import { rmSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { systemTestsUnavailable } from '../helpers/netns.js';
import { nftUnavailable } from './partition.js';
import { table, violationDetails } from './report.js';
import { runChaos, type ChaosOptions } from './run.js';

function network(t: TestContext): 'netns' | 'loopback' {
  const why = systemTestsUnavailable() ?? nftUnavailable();
  if (why === undefined) return 'netns';
  if (process.env.REQUIRE_SYSTEM_TESTS === '1') throw new Error(`REQUIRE_SYSTEM_TESTS=1 but the chaos run cannot partition members: ${why}`);
  t.diagnostic(`loopback network, so no partitions: ${why}`);
  return 'loopback';
}

interface Run {
  framework?: ChaosOptions['framework'];
  duration?: number;
  backups?: number;
  /** The faults, by the network the run got. */
  faults?: (net: 'netns' | 'loopback') => ChaosOptions['faults'];
}

async function chaos(t: TestContext, mode: ChaosOptions['mode'], members: number, run: Run = {}): Promise<void> {
  const { framework = 'koa', duration = 40, backups } = run;
  const seed = process.env.CHAOS_SEED !== undefined ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
  const net = network(t);
  const faults = run.faults?.(net);
  const result = await runChaos({ mode, framework, members, net, seed, duration: Number(process.env.CHAOS_DURATION ?? duration), backups, faults });
  const report = table(result);
  t.diagnostic(report);
  assert.ok(result.faults.length > 0, `the nemesis injected no fault:\n${report}`);
  assert.ok(result.totals.acked.incr > 0, `no write was acknowledged:\n${report}`);
  const flags = `${backups === undefined ? '' : ` --backups ${backups}`}${faults === undefined ? '' : ` --faults ${faults.join(',')}`}`;
  assert.equal(
    result.violations.length,
    0,
    `${report}\n${violationDetails(result)}\nreplay: npm run chaos -- --framework ${framework} --mode ${mode} --members ${members} --net ${net}${flags} --seed ${seed}`,
  );
  // The members' logs are kept only when the run failed (its report names the folder).
  rmSync(result.logDir, { recursive: true, force: true });
}

test('chaos, backup mode, 5 members: no promise broken under kill, pause, graceful stop and partitions', { timeout: 360_000 }, (t) => chaos(t, 'backup', 5));

test('chaos, delta mode, 3 members: no promise broken under kill, pause, graceful stop and partitions', { timeout: 360_000 }, (t) => chaos(t, 'delta', 3));

// Express members (express-session through cluster.expressSession()): shorter, to keep CI's time.
test('chaos, backup mode, 5 Express members: no promise broken under kill, pause, graceful stop and partitions', { timeout: 360_000 }, (t) =>
  chaos(t, 'backup', 5, { framework: 'express', duration: 25 }),
);

// Two members SIGKILLed at the same moment (a node drained, a host lost): with backups 2 no session is lost.
test('chaos, backup mode, 5 members, backups 2: no promise broken when two members are killed at once', { timeout: 360_000 }, (t) =>
  chaos(t, 'backup', 5, {
    duration: 30,
    backups: 2,
    // partition-two: a minority member that regains its lease lets go of copies superseded meanwhile at
    // once (before, a drop time later: 3.96 s against 3.5 s in 1 of 4 CI runs, seed 1816984344).
    faults: (net) => (net === 'netns' ? ['kill-many', 'kill', 'partition-reset', 'partition-reset-in', 'partition-two'] : ['kill-many', 'kill']),
  }),
);
