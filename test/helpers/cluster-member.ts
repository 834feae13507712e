/**
 * A cluster member process for tests: configured by the JSON in `CLUSTER_MEMBER_CONFIG`
 * (see `MemberConfig` in cluster-harness.ts), it reports membership events to the parent over
 * IPC and answers its commands. Handlers: `echo` replies with the body, `fail` throws an error
 * with code `ERR_TEST`, `note` tells the parent what arrived (a `noted` message) and replies.
 */
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { createClusterChannel } from '../../src/cluster/index.js';
import type { MemberInfo } from '../../src/cluster/index.js';
import type { MemberConfig } from './cluster-harness.js';

const config = JSON.parse(process.env.CLUSTER_MEMBER_CONFIG ?? '{}') as MemberConfig;
const send = (m: Record<string, unknown>) => process.send?.({ at: performance.timeOrigin + performance.now(), ...m });
// The parent went away (test killed or crashed): never outlive it.
process.on('disconnect', () => process.exit(0));

const logger = pino({ level: config.logLevel ?? process.env.CLUSTER_TEST_LOG ?? 'warn', base: { route: config.route } }, pino.destination(2));
const channel = createClusterChannel({
  route: config.route,
  clusterName: config.clusterName ?? 'test-cluster',
  secret: config.secret!,
  encrypt: config.encrypt ?? false,
  membership: {
    ...(config.multicast !== undefined ? { multicast: config.multicast } : {}),
    ...(config.static !== undefined ? { static: config.static } : {}),
    frequency: config.frequency ?? 500,
    dropTime: config.dropTime ?? 3000,
  },
  receiver: config.receiver ?? { host: '127.0.0.1', port: 0 },
  maxFrameBytes: config.maxFrameBytes ?? 8 * 1024 * 1024,
  requestTimeout: 5000,
  logger,
});

channel.handle('echo', (_from, body) => body);
channel.handle('note', (from, body) => {
  send({ type: 'noted', from: from.route, body: body.toString() });
  return body;
});
channel.handle('fail', () => {
  throw Object.assign(new Error('handler failed on purpose'), { code: 'ERR_TEST' });
});

for (const event of ['member-added', 'member-suspected', 'member-removed'] as const) {
  channel.on(event, (member: MemberInfo, reason?: string) => send({ type: 'event', event, member, reason }));
}

function memberByRoute(route: string): MemberInfo | undefined {
  return channel.members().find((m) => m.route === route);
}

/** `count` echo requests to `route`, `concurrency` at a time, every reply checked. */
async function load(route: string, count: number, concurrency: number, size: number) {
  const target = memberByRoute(route);
  if (target === undefined) return { ok: 0, failed: count, errors: [`no member ${route}`], elapsedMs: 0 };
  let next = 0;
  let ok = 0;
  let failed = 0;
  const errors: string[] = [];
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      next++;
      const body = randomBytes(size);
      try {
        const reply = await channel.request(target.id, 'echo', body);
        if (reply.equals(body)) ok++;
        else {
          failed++;
          errors.push('reply differs from request');
        }
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(String((err as { code?: string }).code ?? err));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ok, failed, errors, elapsedMs: performance.now() - started };
}

async function onCommand(msg: { cmd: string; seq: number; [k: string]: unknown }) {
  const reply = (m: Record<string, unknown>) => send({ type: 'reply', seq: msg.seq, ...m });
  switch (msg.cmd) {
    case 'members':
      return reply({ members: channel.members() });
    case 'metrics':
      return reply({ metrics: channel.metrics() });
    case 'request': {
      const target = memberByRoute(msg.route as string);
      try {
        if (target === undefined) throw Object.assign(new Error(`no member ${String(msg.route)}`), { code: 'NO_MEMBER' });
        const timeoutMs = typeof msg.timeoutMs === 'number' ? { timeoutMs: msg.timeoutMs } : {};
        const body = await channel.request(target.id, msg.type as string, Buffer.from(msg.body as string), timeoutMs);
        return reply({ ok: true, body: body.toString() });
      } catch (err) {
        const e = err as { code?: string; message: string; remote?: unknown };
        return reply({ ok: false, code: e.code, message: e.message, remote: e.remote });
      }
    }
    case 'load':
      return reply(await load(msg.route as string, msg.count as number, msg.concurrency as number, msg.size as number));
    case 'stop':
      await channel.stop();
      reply({ stopped: true });
      // Only the IPC channel is left: unref it, and the process must exit by itself.
      process.channel?.unref();
      return;
    default:
      return reply({ error: `unknown command ${msg.cmd}` });
  }
}

process.on('message', (msg: { cmd: string; seq: number }) => void onCommand(msg));

try {
  await channel.start();
  send({ type: 'started', member: channel.self, pid: process.pid });
} catch (err) {
  logger.error({ err }, 'could not start');
  process.exit(1);
}
