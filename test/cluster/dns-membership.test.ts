/**
 * DNS membership's answer handling, with the resolvers injected: which addresses become peers
 * (both families, this member's own left out) and which failures keep the previous list. The same
 * code against a real DNS server, in network namespaces, is test/cluster/dns-netns.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { DnsMembership, canonicalIp, membersFromAnswer } from '../../src/cluster/dns-membership.js';
import type { DnsFamily, DnsLookup } from '../../src/cluster/types.js';

const logger = pino({ level: 'silent' });

function dnsError(code: string): Error {
  return Object.assign(new Error(`query failed: ${code}`), { code });
}

test('an answer becomes a sorted host:port list, IPv6 bracketed and written one way, each address once', () => {
  assert.equal(canonicalIp('FD00:0:0:0:0:0:0:A'), 'fd00::a');
  assert.equal(canonicalIp('10.1.2.3'), '10.1.2.3');
  const { addresses, skipped } = membersFromAnswer(['10.0.0.2', 'fd00::a', '10.0.0.1', 'fd00:0::a', '10.0.0.2'], 4000, undefined);
  assert.deepEqual(addresses, ['10.0.0.1:4000', '10.0.0.2:4000', '[fd00::a]:4000']);
  assert.deepEqual(skipped, []);
});

test('this member\'s own address is skipped, in either spelling, but only on its own port', () => {
  const self = { hosts: ['10.0.0.2', 'FD00::0:B'], port: 4000 };
  const r = membersFromAnswer(['10.0.0.1', '10.0.0.2', 'fd00::b', 'fd00::c'], 4000, self);
  assert.deepEqual(r.addresses, ['10.0.0.1:4000', '[fd00::c]:4000']);
  assert.deepEqual(r.skipped, ['10.0.0.2:4000', '[fd00::b]:4000']);
  // Another port at our address is another member (several members on one host).
  assert.deepEqual(membersFromAnswer(['10.0.0.2'], 4001, self).addresses, ['10.0.0.2:4001']);
});

/** A DnsMembership with scripted resolvers; returns every list it handed on. */
async function resolveWith(family: DnsFamily, resolve4: DnsLookup, resolve6: DnsLookup): Promise<string[][]> {
  const lists: string[][] = [];
  const m = new DnsMembership({ name: 'members.test', port: 4000, interval: 60_000, family, resolve4, resolve6, onAddresses: (a) => lists.push(a), logger });
  await m.start();
  m.stop();
  return lists;
}

test('family chooses the records asked for: A, AAAA, or both', async () => {
  const v4: DnsLookup = () => Promise.resolve(['10.0.0.1']);
  const v6: DnsLookup = () => Promise.resolve(['fd00::1']);
  assert.deepEqual(await resolveWith(4, v4, v6), [['10.0.0.1:4000']]);
  assert.deepEqual(await resolveWith(6, v4, v6), [['[fd00::1]:4000']]);
  assert.deepEqual(await resolveWith('any', v4, v6), [['10.0.0.1:4000', '[fd00::1]:4000']]);
});

test('both families: one without records is an empty half; a failed query or no records at all keeps the list', async () => {
  const v4: DnsLookup = () => Promise.resolve(['10.0.0.1']);
  for (const code of ['ENODATA', 'ENOTFOUND']) {
    assert.deepEqual(await resolveWith('any', v4, () => Promise.reject(dnsError(code))), [['10.0.0.1:4000']], code);
  }
  for (const code of ['ETIMEOUT', 'ECONNREFUSED', 'ESERVFAIL']) {
    // A half answer would drop the other family's members: nothing is handed on.
    assert.deepEqual(await resolveWith('any', v4, () => Promise.reject(dnsError(code))), [], code);
  }
  const none: DnsLookup = () => Promise.reject(dnsError('ENOTFOUND'));
  assert.deepEqual(await resolveWith('any', none, none), []);
  assert.deepEqual(await resolveWith(4, none, none), []);
});

test('one resolution at a time: a server that does not answer does not pile queries up', async () => {
  let calls = 0;
  let answer: (ips: string[]) => void = () => undefined;
  const slow: DnsLookup = () => {
    calls++;
    return new Promise((resolve) => (answer = resolve));
  };
  const lists: string[][] = [];
  const m = new DnsMembership({ name: 'members.test', port: 4000, interval: 20, resolve4: slow, onAddresses: (a) => lists.push(a), logger });
  const started = m.start();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(calls, 1);
  answer(['10.0.0.1']);
  await started;
  // The periodic resolution now runs; while it hangs, further ticks add nothing.
  await new Promise((r) => setTimeout(r, 100));
  m.stop();
  assert.equal(calls, 2);
  assert.deepEqual(lists, [['10.0.0.1:4000']]);
});
