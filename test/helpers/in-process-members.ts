/**
 * Two members of one cluster in the test process (multicast on 127.0.0.1, a group and port of the
 * test's own), started, seeing each other and past discovery; stopped when the test ends.
 */
import { pino } from 'pino';
import { createSessionCluster, type SessionCluster, type SessionClusterOptions } from '../../src/index.js';
import { freeUdpPort, randomGroup } from './ports.js';
import { waitFor } from './wait.js';

/** `extra`: options both members get besides the test's own (e.g. `unknownIds`). */
export async function twoMembers(
  t: { after(fn: () => Promise<void>): void },
  extra: Partial<SessionClusterOptions> = {},
): Promise<[SessionCluster, SessionCluster]> {
  const multicast = { address: randomGroup(), port: await freeUdpPort(), interface: '127.0.0.1', frequency: 100, dropTime: 1500 };
  const make = (route: string) =>
    createSessionCluster({
      route,
      secret: 'koa-session-test-secret-0123456789',
      clusterName: `koa-test-${process.pid}`,
      membership: { multicast },
      receiver: { host: '127.0.0.1', port: 0 },
      logger: pino({ level: process.env.CLUSTER_TEST_LOG ?? 'silent' }),
      ...extra,
    });
  const members: [SessionCluster, SessionCluster] = [make('a'), make('b')];
  t.after(async () => {
    await Promise.all(members.map((m) => m.stop()));
  });
  await Promise.all(members.map((m) => m.start()));
  await waitFor('a and b to see each other', () => members.every((m) => m.members().length === 2), 10_000);
  await Promise.all(members.map((m) => m.ready())); // discovery over: takeovers are answered, not 503
  return members;
}
