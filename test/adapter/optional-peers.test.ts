/**
 * Issue 29: express, express-session, fastify, @fastify/session and @fastify/cookie are optional peer
 * dependencies, and the Koa API never loads them. A child process imports the package (the sources,
 * and `dist/` when it is built, as `npm run build` leaves it), builds a Koa member with
 * `cluster.session()`, `cluster.store` and `cluster.statusRouter()`, and lists the modules loaded from
 * node_modules; then it asks for the Express and Fastify adapters, which load theirs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PeerDependencyError } from '../../src/index.js';
import { loadPeer } from '../../src/adapter/optional-peer.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PEERS = ['express', 'express-session', 'fastify', '@fastify/session', '@fastify/cookie', 'fastify-plugin', 'cookie-signature'];

/** The script the child runs: `entry` is what it imports. Prints the peers loaded before and after. */
const script = (entry: string) => `
import { createRequire } from 'node:module';
import Koa from 'koa';
const { createSessionCluster } = await import(${JSON.stringify(entry)});
const require = createRequire(import.meta.url);
const peers = ${JSON.stringify(PEERS)};
const loaded = () => peers.filter((p) => Object.keys(require.cache).some((f) => f.includes('/node_modules/' + p + '/')));
const cluster = createSessionCluster({
  route: 'n1', secret: 'optional-peers-secret-0123456789',
  membership: { static: ['127.0.0.1:9'] }, receiver: { host: '127.0.0.1', port: 0 },
  logger: (await import('pino')).pino({ level: 'silent' }),
});
const app = new Koa();
app.keys = ['k'];
app.use(cluster.session(app, {}));
app.use(cluster.routeBinder());
void cluster.store; void cluster.genid; cluster.statusRouter();
const koaOnly = loaded();
void cluster.expressStore;
const afterExpress = loaded();
void cluster.fastifySession;
console.log(JSON.stringify({ koaOnly, afterExpress, afterFastify: loaded() }));
`;

async function run(entry: string): Promise<{ koaOnly: string[]; afterExpress: string[]; afterFastify: string[] }> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(entry)], { cwd: ROOT, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as { koaOnly: string[]; afterExpress: string[]; afterFastify: string[] };
}

const entries: [string, string][] = [['the sources', `${ROOT}src/index.ts`]];
if (existsSync(`${ROOT}dist/index.js`)) entries.push(['dist/ (npm run build)', `${ROOT}dist/index.js`]);

for (const [name, entry] of entries) {
  test(`importing ${name} and using the Koa API loads no Express or Fastify module; the adapters load theirs when asked`, async () => {
    const r = await run(entry);
    assert.deepEqual(r.koaOnly, [], 'a Koa application loads none of them');
    assert.ok(r.afterExpress.includes('express-session') && r.afterExpress.includes('cookie-signature'), `cluster.expressStore loads express-session: ${r.afterExpress.join(', ')}`);
    assert.ok(!r.afterExpress.some((p) => p.includes('fastify')), 'and nothing of Fastify');
    assert.ok(r.afterFastify.includes('@fastify/session') && r.afterFastify.includes('@fastify/cookie'), `cluster.fastifySession loads @fastify/session: ${r.afterFastify.join(', ')}`);
    assert.ok(!r.afterFastify.includes('express') && !r.afterFastify.includes('fastify'), 'neither adapter loads the framework itself');
  });
}

test('a peer that is not installed is a PeerDependencyError naming it and what to run', () => {
  assert.throws(
    () => loadPeer('koa-session-cluster-no-such-peer', 'cluster.expressSession()'),
    (e: unknown) => e instanceof PeerDependencyError && e.peer === 'koa-session-cluster-no-such-peer' && e.code === 'ERR_PEER_DEPENDENCY' && /npm install koa-session-cluster-no-such-peer/.test(e.message),
  );
});
