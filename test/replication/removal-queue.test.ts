import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RemovalQueue } from '../../src/replication/removal-queue.js';
import type { MemberInfo } from '../../src/cluster/types.js';
import type { RemoveMessage } from '../../src/codec/messages.js';

const member = (id: string): MemberInfo => ({ id, route: id, host: '127.0.0.1', port: 1, startTime: 0 });
const drop = (base: string): RemoveMessage => ({ base, owner: 'n1', epoch: 1, destroy: false, until: Date.now() + 60_000 });

test('a drop owed to an unreachable member waits for it; cancelling it for one session leaves the others', async () => {
  const sent: string[] = [];
  const q = new RemovalQueue((m, msg) => {
    sent.push(`${m.id}:${msg.base}`);
    return Promise.reject(new Error('unreachable'));
  });
  const gone = member('gone-member-id');
  for (let i = 0; i < 1000; i++) await q.start(drop(`s${i}`), [gone], true);
  assert.equal(q.size, 1000, 'kept until the member answers or the copy would have expired');
  q.cancelDrops('s7', gone.id);
  q.cancelDrops('s7', gone.id); // twice is harmless
  q.cancelDrops('s8', 'another-member');
  assert.equal(q.size, 999, 'only the drop of that session to that member went');
  sent.length = 0;
  q.retry([gone], Date.now());
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 999);
  assert.ok(!sent.includes(`${gone.id}:s7`), 'a cancelled drop is never sent again');
  q.retry([], Date.now() + 120_000);
  assert.equal(q.size, 0, 'expired drops are forgotten');
});
