/**
 * The application of docs/kubernetes.md, as a pod of its StatefulSet runs it: everything comes from
 * the environment that manifest sets (the pod's name and IP, the Secret, the peers' DNS name).
 * test/cluster/dns-netns.test.ts runs this file, in network namespaces against a real DNS server,
 * with that environment; test/docs/kubernetes-guide.test.ts checks the guide shows it as it is.
 */
import { createServer } from 'node:http';
import Koa from 'koa';
import { createSessionCluster } from '../../src/index.js'; // in an application: 'koa-session-cluster'

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} is not set; see the StatefulSet's env`);
  return value;
}

const HTTP_PORT = 8080; // containerPort "http"
const CLUSTER_PORT = 4000; // containerPort "cluster", the same on every pod

const cluster = createSessionCluster({
  route: env('POD_NAME'), // sessions-0, sessions-1, …: stable across restarts, unique in the set
  secret: env('CLUSTER_SECRET'), // from the Secret, the same on every pod
  // The peers' headless Service lists every pod, this one too (skipped), ready or not.
  membership: { dns: { name: env('PEERS_DNS'), port: CLUSTER_PORT, interval: 2000 } },
  receiver: { host: env('POD_IP'), port: CLUSTER_PORT },
  // The StatefulSet's replicas: a pod that starts cut off, or half of a partition, serves nothing.
  expectedMembers: Number(env('EXPECTED_MEMBERS')),
  // The node's zone label where the cluster copies it onto pods (Kubernetes 1.35+), else the node:
  // a session's copies then go to other zones, or at least to other nodes.
  zone: process.env.ZONE || env('NODE_NAME'),
});

const app = new Koa();
app.keys = [env('COOKIE_KEY')];
app.proxy = true; // behind ingress-nginx: the client's address from X-Forwarded-For

let ready = false;
app.use(async (ctx, next) => {
  if (ctx.path !== '/healthz') return next();
  ctx.status = ready ? 200 : 503; // the readiness probe
  ctx.body = { route: cluster.route, ready };
});
app.use(cluster.statusRouter().routes());
// Named `sid`: ingress-nginx reads it as $cookie_sid (a name with a dot would be unreadable there).
app.use(cluster.session(app, { key: 'sid', maxAge: 86_400_000, httpOnly: true, sameSite: 'lax' }));
app.use((ctx) => {
  if (ctx.path !== '/visits') return ctx.throw(404);
  if (ctx.method === 'POST') ctx.session!.visits = Number(ctx.session!.visits ?? 0) + 1;
  ctx.body = { route: cluster.route, visits: ctx.session!.visits ?? 0 };
});

// Probes are answered from the start: 503 until the cluster runs and has met its peers.
const server = createServer(app.callback()).listen(HTTP_PORT);
await cluster.start();
await cluster.ready();
ready = true;

// Kubernetes sends SIGTERM once preStop is over (the pod is out of the Service and the ingress by
// then); the hand-off must end within terminationGracePeriodSeconds, or SIGKILL cuts it short.
process.once('SIGTERM', () => {
  ready = false;
  server.close();
  server.closeIdleConnections();
  cluster.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error('leaving the cluster failed', err);
      process.exit(1);
    },
  );
});
