/**
 * docs/kubernetes.md shows what test/cluster/dns-netns.test.ts runs: the app and the manifest
 * verbatim, and in its explanations the same values, option by option.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MANIFEST_PATH, SERVER_PATH, readManifest } from '../helpers/k8s-manifest.js';

const guide = readFileSync(fileURLToPath(new URL('../../docs/kubernetes.md', import.meta.url)), 'utf8');
const server = readFileSync(SERVER_PATH, 'utf8');
const manifest = readFileSync(MANIFEST_PATH, 'utf8');

/** The code blocks of the guide in `language`. */
function blocks(language: string): string[] {
  return [...guide.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)\\n```', 'g'))].map((m) => m[1]);
}

function number(text: string, pattern: RegExp, what: string): number {
  const m = pattern.exec(text);
  assert.ok(m !== null, `${what} not found (${pattern})`);
  return Number(m[1]);
}

test('the guide shows demo/kubernetes/server.ts as it is, importing the package instead of the sources', () => {
  const body = server.slice(server.indexOf('*/\n') + 3).trimEnd();
  const asPublished = body.replace(
    "import { createSessionCluster } from '../../src/index.js'; // in an application: 'koa-session-cluster'",
    "import { createSessionCluster } from 'koa-session-cluster';",
  );
  assert.notEqual(asPublished, body, 'server.ts imports the sources with the comment the guide replaces');
  assert.deepEqual(blocks('ts'), [asPublished]);
});

test('the guide shows demo/kubernetes/sessions.yaml as it is', () => {
  assert.deepEqual(blocks('yaml'), [manifest.trimEnd()]);
});

test('the guide\'s explanations give the values the app and the manifest use', () => {
  const k8s = readManifest();
  const interval = number(server, /interval: (\d+)/, 'the interval in server.ts');
  assert.equal(number(guide, /\| `membership\.dns\.port` \| `(\d+)` \|/, 'the port row'), k8s.clusterPort);
  assert.equal(number(server, /const CLUSTER_PORT = (\d+);/, 'CLUSTER_PORT in server.ts'), k8s.clusterPort);
  assert.equal(number(server, /const HTTP_PORT = (\d+);/, 'HTTP_PORT in server.ts'), k8s.httpPort);
  assert.equal(number(guide, /\| `membership\.dns\.interval` \| `(\d+)` ms \|/, 'the interval row'), interval);
  assert.equal(number(guide, /\*\*`preStop: sleep: seconds: (\d+)`\*\*/, 'the preStop bullet'), k8s.preStopSeconds);
  assert.equal(number(guide, /\*\*`terminationGracePeriodSeconds: (\d+)`\*\*/, 'the grace period bullet'), k8s.terminationGracePeriodSeconds);
  const budget = /(\d+) − (\d+) = (\d+) s/.exec(guide);
  assert.ok(budget !== null, 'the hand-off budget sentence');
  assert.deepEqual(budget.slice(1).map(Number), [
    k8s.terminationGracePeriodSeconds,
    k8s.preStopSeconds,
    k8s.terminationGracePeriodSeconds - k8s.preStopSeconds,
  ]);
  assert.equal(k8s.expectedMembers, k8s.replicas, 'EXPECTED_MEMBERS is the StatefulSet\'s replicas');
  assert.ok(guide.includes(`\`EXPECTED_MEMBERS\`: \`${k8s.replicas}\`, the StatefulSet's \`replicas\``), 'the expectedMembers row');
  assert.ok(guide.includes(`**\`EXPECTED_MEMBERS\` equals \`replicas\`** (${k8s.replicas})`), 'the scaling bullet');
  assert.ok(server.includes("expectedMembers: Number(env('EXPECTED_MEMBERS'))") && server.includes("zone: process.env.ZONE || env('NODE_NAME')"), 'server.ts reads both');
  assert.ok(guide.includes(`\`GET ${k8s.readinessPath}\``), 'the readiness path');
  assert.ok(guide.includes(`${k8s.peersService}.<namespace>.svc.cluster.local`), 'the peers name');
  assert.equal(k8s.peersDns('default'), `${k8s.peersService}.default.svc.cluster.local`, 'PEERS_DNS names the peers Service');
  assert.ok(server.includes("key: 'sid'") && k8s.configurationSnippet.includes('$cookie_sid'), 'the cookie nginx reads is the one the app sets');
});
