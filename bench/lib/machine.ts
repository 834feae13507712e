/** What the figures were measured on: the machine, Node, and the versions of everything involved. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { BENCH_DIR } from './servers.js';

const require = createRequire(join(BENCH_DIR, 'app.ts'));

function versionOf(pkg: string, from = BENCH_DIR): string {
  try {
    const r = createRequire(join(from, 'x.js'));
    const main = r.resolve(pkg);
    // Walk up from the resolved entry to the package's own package.json.
    const root = main.slice(0, main.lastIndexOf(`/node_modules/${pkg}/`) + `/node_modules/${pkg}/`.length);
    return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export interface Machine {
  os: string;
  kernel: string;
  arch: string;
  cpuModel: string;
  cpus: number;
  memoryBytes: number;
  node: string;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()}`,
    kernel: os.version(),
    arch: os.arch(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    memoryBytes: os.totalmem(),
    node: process.version,
  };
}

export function versions(): Record<string, string> {
  let redis = 'unknown';
  try {
    redis = /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch {
    // not installed: the redis variant will say so
  }
  const own = JSON.parse(readFileSync(join(BENCH_DIR, '..', 'package.json'), 'utf8')) as { version: string };
  // ioredis is koa-redis's own dependency: resolved from there (the bench's root when it is missing).
  let koaRedisDir = BENCH_DIR;
  try {
    koaRedisDir = join(require.resolve('koa-redis'), '..');
  } catch {
    // not installed: the redis variant will say so, the versions say 'unknown'
  }
  return {
    'koa-session-cluster': own.version,
    koa: versionOf('koa'),
    'koa-session': versionOf('koa-session'),
    'koa-redis': versionOf('koa-redis'),
    ioredis: versionOf('ioredis', koaRedisDir),
    avsc: versionOf('avsc'),
    autocannon: versionOf('autocannon'),
    'redis-server': redis,
  };
}
