/**
 * `npm run chaos -- --mode backup|delta --members N --duration SECONDS --seed N [--net loopback|netns] [--framework koa|express|fastify]
 * [--clients N] [--roaming SHARE] [--faults kill,pause,...] [--backups K] [--zones Z] [--expected-members N] [--clock-max SECONDS]`: one fault-injection run against real member processes
 * (`--faults` takes any of FAULT_KINDS; without it, the one-member faults and two against three). Prints one table, then the
 * first violations with the member log lines that explain them; exits 1 on any violation.
 * `--net` defaults to netns when namespaces and nftables are available (root), loopback otherwise.
 */
import { parseArgs } from 'node:util';
import { systemTestsUnavailable } from '../helpers/netns.js';
import { nftUnavailable } from './partition.js';
import { table, violationDetails } from './report.js';
import { abortRuns, runChaos } from './run.js';
import { FAULT_KINDS, type FaultKind } from './nemesis.js';

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'backup' },
    framework: { type: 'string', default: 'koa' },
    members: { type: 'string' },
    duration: { type: 'string', default: '60' },
    seed: { type: 'string' },
    net: { type: 'string' },
    clients: { type: 'string', default: '30' },
    roaming: { type: 'string', default: '0' },
    faults: { type: 'string' },
    backups: { type: 'string' },
    zones: { type: 'string' },
    'expected-members': { type: 'string' },
    'clock-max': { type: 'string' },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  process.stdout.write(`npm run chaos -- [options]: one fault-injection run against real member processes; exits 1 on any violation.
  --mode backup|delta          (backup)         --members N          (5 backup, 3 delta; 2 to 9)
  --duration SECONDS           (60)             --seed N             (random; printed, replays the run's choices)
  --net loopback|netns         (netns as root with nftables, else loopback)
  --framework koa|express|fastify (koa)         --clients N          (30)
  --roaming SHARE              (0: share of clients sending each request to any member)
  --faults a,b,...             of ${FAULT_KINDS.join(', ')}
                               (default: kill, pause, term, partition-one, partition-two)
  --backups K  --zones Z  --expected-members N  --clock-max SECONDS (clock-step's largest offset, 30)
  --quiet                      no progress lines
`);
  process.exit(0);
}

const mode = values.mode;
if (mode !== 'backup' && mode !== 'delta') fail(`--mode must be backup or delta, not ${mode}`);
const framework = values.framework;
if (framework !== 'koa' && framework !== 'express' && framework !== 'fastify') fail(`--framework must be koa, express or fastify, not ${framework}`);
const members = Number(values.members ?? (mode === 'backup' ? 5 : 3));
if (!Number.isInteger(members) || members < 2 || members > 9) fail(`--members must be an integer from 2 to 9, not ${values.members}`);
const duration = Number(values.duration);
if (!(duration > 0)) fail(`--duration must be a positive number of seconds, not ${values.duration}`);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (!Number.isInteger(seed)) fail(`--seed must be an integer, not ${values.seed}`);
const clients = Number(values.clients);
if (!Number.isInteger(clients) || clients < 1) fail(`--clients must be a positive integer, not ${values.clients}`);
// A share of the clients sends each request to any member (a balancer retrying elsewhere, an idle
// user's old cookie), not to one member until it fails.
const roaming = Number(values.roaming);
if (!(roaming >= 0 && roaming <= 1)) fail(`--roaming must be a share from 0 to 1, not ${values.roaming}`);
const faults = values.faults?.split(',').map((k) => k.trim()) as FaultKind[] | undefined;
const unknown = faults?.filter((k) => !FAULT_KINDS.includes(k));
if (unknown !== undefined && unknown.length > 0) fail(`--faults takes a comma-separated list of ${FAULT_KINDS.join(', ')}; unknown: ${unknown.join(', ')}`);
/** A positive integer option, or undefined when absent. */
function count(name: string, value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) fail(`--${name} must be an integer from 1 to ${max}, not ${value}`);
  return n;
}
const backups = count('backups', values.backups, 8);
if (backups !== undefined && mode !== 'backup') fail('--backups is for backup mode: delta mode holds every session on every member');
const zones = count('zones', values.zones, members);
// 0: none (the majority of the members seen, what a cluster without the option does).
const clockMaxS = count('clock-max', values['clock-max'], 3600);
const expectedMembers = values['expected-members'] === '0' ? 0 : count('expected-members', values['expected-members'], 1000);
const why = systemTestsUnavailable() ?? nftUnavailable();
const net = values.net ?? (why === undefined ? 'netns' : 'loopback');
if (net !== 'loopback' && net !== 'netns') fail(`--net must be loopback or netns, not ${net}`);
if (net === 'netns' && why !== undefined) fail(`--net netns cannot run here: ${why}`);
if (values.net === undefined && why !== undefined) process.stderr.write(`chaos: loopback network (no partitions): ${why}\n`);

const onSignal = (signal: NodeJS.Signals) => {
  process.stderr.write(`chaos: ${signal}: killing the members and deleting the namespaces\n`);
  abortRuns();
  process.exit(130);
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

process.stderr.write(
  `chaos: mode ${mode}, ${framework}, ${members} members, net ${net}, ${duration} s, seed ${seed}` +
    `${backups === undefined ? '' : `, backups ${backups}`}${zones === undefined ? '' : `, ${zones} zones`} (replay with --seed ${seed})\n`,
);
const result = await runChaos({
  mode,
  framework,
  members,
  net,
  duration,
  seed,
  clients,
  roaming,
  faults,
  backups,
  zones,
  expectedMembers,
  clockMaxS,
  // Absent, not undefined, when quiet: runChaos's own default (no progress) must not be overridden.
  ...(values.quiet ? {} : { log: (line: string) => process.stderr.write(`chaos: ${line}\n`) }),
});
process.stdout.write(`${table(result)}\n`);
if (result.violations.length > 0) {
  process.stdout.write(`${violationDetails(result)}\n`);
  process.exit(1);
}
process.exit(0);
