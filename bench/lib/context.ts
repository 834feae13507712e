/**
 * What every scenario of a run shares: the command-line options, the settings they imply, the
 * figures of the previous run (a run of some sections keeps the others'), and the log line format.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR } from './servers.js';

/** The scenarios, in the order a full run measures them (one file each: bench/<name>.bench.ts). */
export const SECTIONS = ['throughput', 'bytes', 'codec', 'failover', 'transfer', 'memory', 'rtt', 'reprotect', 'backups', 'tombstones'] as const;
export type Section = (typeof SECTIONS)[number];

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'no-schema': { type: 'boolean', default: false },
    connections: { type: 'string' },
    variants: { type: 'string' },
    report: { type: 'boolean', default: false },
  },
  strict: true,
});
export { args };

export const quick = args.quick === true;

export const settings = {
  quick,
  sessions: 1000,
  connections: Number(args.connections ?? 32),
  warmupSeconds: quick ? 1 : 3,
  phaseSeconds: quick ? 3 : 10,
  bytesSessions: 100,
  bytesWrites: quick ? 300 : 2000,
  bytesConnections: 4,
  failoverBeforeSeconds: quick ? 2 : 5,
  failoverAfterSeconds: quick ? 3 : 5,
  transferSessions: 100_000,
  memorySessions: quick ? 50_000 : 100_000,
  /** Realistic network: delay added each way by bench/delay-proxy.ts, and the moderate load's rate. */
  rttDelayMs: 0.25,
  rttRate: 400,
  rttConnections: 8,
  rttSeconds: quick ? 4 : 10,
  /** Re-protection: sessions held by the 4 members before one is killed, and the load meanwhile. */
  reprotectSessions: quick ? 20_000 : 100_000,
  reprotectRate: 400,
  reprotectConnections: 64,
  reprotectTimeoutSeconds: 120,
  /** The price of backups: 2 next to 1, on 5 members (sessions filled for the memory figure). */
  backupsMembers: 5,
  backupsFill: quick ? 20_000 : 50_000,
  sessionSchema: args['no-schema'] !== true,
  /** A throughput phase is measured again when other processes used more cores than this. */
  noiseCores: 0.25,
  noiseRetries: quick ? 1 : 2,
};

export const only: Section[] =
  args.only === undefined
    ? [...SECTIONS]
    : args.only.split(',').map((s) => {
        if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only ${s}: expected some of ${SECTIONS.join(', ')}`);
        return s as Section;
      });

const flags = [quick ? '--quick' : '', settings.sessionSchema ? '' : '--no-schema'].filter((f) => f !== '').join(' ');
/** The command that re-measures one section with the settings of this run. */
export const commandFor = (section: Section) => `npm run bench -- ${flags.length > 0 ? `${flags} ` : ''}--only ${section}`;
export const clusterEnv: Record<string, string> = settings.sessionSchema ? { SESSION_SCHEMA: '1' } : {};

export const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

export const RESULTS = join(BENCH_DIR, 'results.json');
export const README = join(BENCH_DIR, 'README.md');

export type Results = Record<string, unknown> & { sections: Partial<Record<Section, Record<string, unknown>>> };

/** Sections of the last run; a run of some sections keeps the others' figures. */
export const previousSections: Results['sections'] = existsSync(RESULTS)
  ? ((JSON.parse(readFileSync(RESULTS, 'utf8')) as Results).sections ?? {})
  : {};
