/**
 * DNS membership where Node apps run: pods of a StatefulSet behind a headless Service. Each pod is a
 * network namespace on a bridge, with its own address and the same ports, running
 * demo/kubernetes/server.ts with the environment demo/kubernetes/sessions.yaml gives it (the values
 * are read from that manifest). Pods resolve through the system resolver: `ip netns exec` puts
 * /etc/netns/<ns>/resolv.conf in place of /etc/resolv.conf, as kubelet writes a pod's. It names a
 * real DNS server, dnsmasq, in a namespace of its own, playing the cluster DNS: its records follow
 * the pods as the Services' would (peers: every pod; the service and pod names: ready pods). The
 * ingress is real nginx running the manifest's ingress-nginx snippets.
 *
 * Steps: 3 pods meet through DNS alone; a 4th added to the records joins; one removed from the
 * records and SIGKILLed is dropped and its sessions protected again; nginx routes by the cookie's
 * route suffix, and a dead pod's cookie falls back; the DNS server stopped and killed for a while
 * evicts nobody; a pod terminated as kubelet does (records, preStop, SIGTERM) hands off within its
 * grace period while requests keep being answered. Every session written before a step is read
 * after it, over HTTP on the pods' addresses.
 *
 * A second test runs two members on IPv6 only, finding each other by AAAA records from a DNS
 * server given in `servers`. Needs root, iproute2, dnsmasq and nginx; with REQUIRE_SYSTEM_TESTS=1
 * (CI) their absence is a failure, otherwise the tests are skipped and say why.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Dnsmasq, hasDnsmasq, type DnsRecords } from '../helpers/dnsmasq.js';
import { CookieJar, request } from '../helpers/http-client.js';
import { readManifest, SERVER_PATH } from '../helpers/k8s-manifest.js';
import { startProcess, type MemberProcess } from '../helpers/member-process.js';
import { BridgeNetwork, namespacesAvailable, type NetnsHost } from '../helpers/netns.js';
import { hasNginx, startNginx } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const NAMESPACE = 'default';
const DOMAIN = 'cluster.local';
/** The library's default: server.ts leaves membership.dropTime alone. */
const DROP_TIME = 3000;
const SECRET = 'dns-netns-test-secret-0123456789';

/** A pod's resolv.conf, as kubelet writes it (Node's resolver does not use the search list). */
function useResolver(host: NetnsHost, server: string): void {
  mkdirSync(`/etc/netns/${host.ns}`, { recursive: true });
  writeFileSync(
    `/etc/netns/${host.ns}/resolv.conf`,
    `nameserver ${server}\nsearch ${NAMESPACE}.svc.${DOMAIN} svc.${DOMAIN} ${DOMAIN}\noptions ndots:5\n`,
  );
}

function forgetResolvers(hosts: NetnsHost[]): void {
  for (const h of hosts) rmSync(`/etc/netns/${h.ns}`, { recursive: true, force: true });
  try {
    rmdirSync('/etc/netns'); // only when no other namespace has files there
  } catch {
    // not empty, or already gone
  }
}

interface LogLine {
  msg?: string;
  peer?: string;
  addresses?: string[];
  self?: string[];
}

/** The library's pino lines a process printed since line `from` whose message is `msg`. */
function logs(p: MemberProcess, msg: string, from = 0): LogLine[] {
  return p.lines
    .slice(from)
    .filter((l) => l.startsWith('{') && l.includes(msg))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.msg === msg);
}

/**
 * Waits until `p` logged a resolution of the members' name that passes `pred` (logged when the
 * answer changes: a pod may meet the others, by their connections, before its next lookup).
 */
async function resolution(p: MemberProcess, pred: (l: LogLine) => boolean, what: string): Promise<void> {
  const msg = 'members\' DNS name resolved';
  await waitFor(what, () => logs(p, msg).some(pred), 5000, 100).catch((err: Error) => {
    throw new Error(`${err.message}; ${p.name} logged ${JSON.stringify(logs(p, msg).map((l) => ({ addresses: l.addresses, self: l.self })))}`);
  });
}

interface User {
  name: string;
  jar: CookieJar;
  visits: number;
}

/** The route in a user's session cookie: `<base>.<route>`. */
function routeOf(u: { jar: CookieJar }): string | undefined {
  return u.jar.get('sid')?.split('.').pop();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

test('pods of a StatefulSet meet through a real DNS server, follow its records, survive its outage, and hand off within their grace period', async (t) => {
  if (!namespacesAvailable(t, 'the DNS namespace test')) return;
  if (!hasDnsmasq(t) || !hasNginx(t)) return;
  const k8s = readManifest();
  const service = `${k8s.service}.${NAMESPACE}.svc.${DOMAIN}`;
  const peersName = k8s.peersDns(NAMESPACE);
  const podName = (i: number) => `${k8s.statefulSet}-${i}`;

  // Hosts 0-3 are pods, host 4 the cluster DNS. 10.201/16: apart from netns.test.ts and the chaos run.
  const net = BridgeNetwork.create(5, { prefix: '10.201' });
  const procs: MemberProcess[] = [];
  t.after(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited()));
    forgetResolvers(net.hosts);
    net.destroy();
  });
  net.addHostAddress(); // this process reaches the pods (HTTP) and nginx the DNS server, over the bridge
  const dnsHost = net.hosts[4];

  interface Pod {
    i: number;
    name: string;
    host: NetnsHost;
    url: string;
    proc: MemberProcess;
  }
  const pods = new Map<number, Pod>();
  const peers = new Set<number>();
  const ready = new Set<number>();
  const records = (): DnsRecords => {
    const r: DnsRecords = {
      [peersName]: [...peers].map((i) => net.hosts[i].address),
      [service]: [...ready].map((i) => net.hosts[i].address),
    };
    for (const i of ready) r[`${podName(i)}.${service}`] = [net.hosts[i].address];
    return r;
  };
  const dns = await Dnsmasq.start(t, dnsHost, DOMAIN, records()); // killed by its own t.after
  const live = () => [...pods.values()].filter((p) => p.proc.alive);

  /** Starts pod `i` (its peers record first, as for a pod that got its IP), then marks it ready. */
  async function startPod(i: number): Promise<Pod> {
    const host = net.hosts[i];
    useResolver(host, dnsHost.address);
    peers.add(i);
    await dns.setRecords(records());
    const proc = startProcess(
      t,
      podName(i),
      SERVER_PATH,
      {
        POD_NAME: podName(i),
        POD_NAMESPACE: NAMESPACE,
        POD_IP: host.address,
        PEERS_DNS: peersName,
        EXPECTED_MEMBERS: String(k8s.expectedMembers),
        NODE_NAME: `node-${i}`, // a node per pod; no zone label (ZONE empty), as before Kubernetes 1.35
        ZONE: '',
        CLUSTER_SECRET: SECRET,
        COOKIE_KEY: 'dns-netns-cookie-key',
        LOG_LEVEL: 'info',
      },
      { command: host.exec },
    );
    procs.push(proc);
    const pod: Pod = { i, name: podName(i), host, url: `http://${host.address}:${k8s.httpPort}`, proc };
    pods.set(i, pod);
    // The readiness probe, as kubelet runs it.
    await waitFor(`${pod.name} to be ready (GET ${k8s.readinessPath} answers 200)`, async () => {
      if (!proc.alive) throw new Error(`${pod.name} exited:\n${proc.lines.slice(-20).join('\n')}`);
      const res = await fetch(`${pod.url}${k8s.readinessPath}`, { signal: AbortSignal.timeout(2000) });
      return res.status === 200;
    }, 30_000, 100);
    ready.add(i);
    await dns.setRecords(records());
    return pod;
  }

  async function routesSeenBy(p: Pod): Promise<string[]> {
    const res = await fetch(`${p.url}/cluster/status`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { members: { route: string }[] };
    return body.members.map((m) => m.route).sort();
  }

  async function everyoneSees(expected: Pod[]): Promise<void> {
    const want = expected.map((p) => p.name).sort().join();
    await waitFor(`${want} to see exactly ${want}`, async () => {
      const seen = await Promise.all(expected.map(routesSeenBy));
      return seen.every((s) => s.join() === want);
    }, 15_000, 100);
  }

  /** Waits until the live pods hold every session twice: once as primary, once as backup. */
  async function protectedTwice(n: number, what: string): Promise<void> {
    let last = '';
    await waitFor(`${what}: ${n} sessions as primary and ${n} as backup (last: ${last})`, async () => {
      const all = await Promise.all(
        live().map(async (p) => {
          const res = await fetch(`${p.url}/cluster/status`, { signal: AbortSignal.timeout(5000) });
          return ((await res.json()) as { sessions: { primary: number; backup: number } }).sessions;
        }),
      );
      const primary = all.reduce((s, x) => s + x.primary, 0);
      const backup = all.reduce((s, x) => s + x.backup, 0);
      last = `${primary} primary, ${backup} backup`;
      return primary === n && backup === n;
    }, 20_000, 200);
  }

  const users: User[] = [];
  async function visit(u: User, url: string, method: 'GET' | 'POST', what: string): Promise<{ route: string }> {
    const res = await request(u.jar, method, `${url}/visits`);
    assert.equal(res.status, 200, `${what}: ${u.name} ${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
    if (method === 'POST') u.visits++;
    assert.equal(res.body.visits, u.visits, `${what}: ${u.name} sees ${res.body.visits} visits, wrote ${u.visits}`);
    return res.body as { route: string };
  }
  async function newUsers(n: number, on: Pod[], what: string): Promise<void> {
    for (let k = 0; k < n; k++) {
      const u: User = { name: `user${users.length}`, jar: new CookieJar(), visits: 0 };
      users.push(u);
      const p = on[k % on.length];
      await visit(u, p.url, 'POST', what);
      await visit(u, p.url, 'POST', what);
      assert.equal(routeOf(u), p.name, `${u.name}'s session belongs to the pod that made it`);
    }
  }
  /**
   * Every session is read and written once more, on the pod its cookie names, or (that pod gone) on
   * another: which takes it over, as a pod behind the ingress would.
   */
  async function everySessionIntact(what: string): Promise<void> {
    const alive = live();
    for (const [k, u] of users.entries()) {
      const p = alive.find((x) => x.name === routeOf(u)) ?? alive[k % alive.length];
      await visit(u, p.url, 'GET', what);
      await visit(u, p.url, 'POST', what);
    }
  }

  await t.test('three pods find each other through DNS alone, each skipping its own address in the answer', async () => {
    const first = await Promise.all([0, 1, 2].map(startPod));
    await everyoneSees(first);
    for (const p of first) {
      const own = `${p.host.address}:${k8s.clusterPort}`;
      const others = first.filter((o) => o !== p).map((o) => `${o.host.address}:${k8s.clusterPort}`).sort();
      await resolution(p.proc, (l) => l.self?.join() === own && l.addresses?.join() === others.join(), `${p.name} to resolve ${others.join()} and skip itself (${own})`);
      assert.ok(dns.queriesFrom(p.host.address, peersName) > 0, `${p.name} asked the DNS server for ${peersName}`);
    }
    await newUsers(6, first, 'written on three pods');
    await protectedTwice(users.length, 'three pods');
  });

  await t.test('a fourth pod added to the records joins, and every session is still there', async () => {
    const fourth = await startPod(3);
    await everyoneSees(live());
    await resolution(fourth.proc, (l) => l.addresses?.length === 3 && l.self?.length === 1, 'the new pod to find the three others by DNS');
    await everySessionIntact('after the fourth pod joined');
    await newUsers(2, [fourth], 'written on the fourth pod');
    await protectedTwice(users.length, 'four pods');
  });

  let stale: User | undefined;
  await t.test('a pod removed from the records and SIGKILLed is dropped, and its sessions are protected again', async () => {
    const victim = pods.get(1)!;
    const owned = users.find((u) => routeOf(u) === victim.name);
    assert.ok(owned !== undefined, `a session of ${victim.name} to follow (the earlier steps made them)`);
    // A browser that keeps the dead pod's cookie, for the ingress step.
    stale = { name: `${owned.name} (old cookie)`, jar: owned.jar.copy(), visits: owned.visits };
    const since = live().map((p) => [p, p.proc.lines.length] as const);
    peers.delete(1);
    ready.delete(1);
    await dns.setRecords(records());
    victim.proc.kill('SIGKILL');
    await victim.proc.exited();
    await everyoneSees(live());
    for (const [p, from] of since) {
      if (p === victim) continue;
      // The status changes in the same turn as the log line is written, but the line reaches this
      // process through a pipe, maybe later than the status answer did.
      await waitFor(
        `${p.name} to log the removal of ${victim.name}`,
        () => logs(p.proc, 'member failed and was removed', from).some((l) => l.peer === victim.name),
        5000,
      );
    }
    await protectedTwice(users.length, 're-protected on the three left');
    await everySessionIntact('after a pod was killed');
  });

  let ingress = '';
  await t.test('the manifest\'s ingress-nginx snippets route by the cookie\'s route suffix; a dead pod\'s cookie goes to another', async () => {
    const port = await freePort();
    const nginx = await startNginx(t, ingressNginxShape(port, dnsHost.address, service, k8s), port);
    assert.ok(nginx !== undefined);
    ingress = `http://127.0.0.1:${port}`;
    for (const u of users) {
      const before = routeOf(u);
      const served = await visit(u, ingress, 'POST', 'through the ingress');
      assert.equal(served.route, before, `${u.name}: the ingress sent the request to the pod in its cookie`);
      assert.equal(routeOf(u), before, `${u.name}: no takeover, so the cookie is unchanged`);
    }
    // The stale cookie names sessions-1, whose name no longer resolves: nginx's 502 goes to any pod.
    const owner = users.find((u) => u.jar.get('sid')?.split('.')[0] === stale!.jar.get('sid')?.split('.')[0])!;
    stale!.visits = owner.visits;
    const served = await visit(stale!, ingress, 'GET', 'a dead pod\'s cookie through the ingress');
    assert.notEqual(served.route, podName(1));
    assert.equal(routeOf(stale!), served.route, 'the pod that answered took the session over and rebound the cookie');
    owner.jar = stale!.jar; // the same session, now bound to that pod
    const fresh: User = { name: 'ingress user', jar: new CookieJar(), visits: 0 };
    users.push(fresh);
    const first = await visit(fresh, ingress, 'POST', 'a new session through the ingress');
    for (let k = 0; k < 3; k++) assert.equal((await visit(fresh, ingress, 'POST', 'sticky')).route, first.route);
  });

  await t.test('the DNS server stopped, then gone, for a while evicts nobody', async () => {
    const alive = live();
    const since = alive.map((p) => p.proc.lines.length);
    const failedSince = (marks: number[]) =>
      waitFor('every pod to see its DNS queries fail', () =>
        alive.every((p, k) => logs(p.proc, 'could not resolve the members\' DNS name; keeping the previous list', marks[k]).length > 0),
      15_000, 100);
    dns.signal('SIGSTOP'); // no answers: queries time out
    await failedSince(since);
    await sleep(DROP_TIME + 1000);
    const killedAt = alive.map((p) => p.proc.lines.length);
    await dns.kill(); // no server: queries are refused
    await failedSince(killedAt);
    await sleep(DROP_TIME + 1000);
    for (const [k, p] of alive.entries()) {
      for (const msg of ['member failed and was removed', 'member left', 'member suspected; checking it directly']) {
        assert.deepEqual(logs(p.proc, msg, since[k]), [], `${p.name}: "${msg}" while DNS was down`);
      }
    }
    await everyoneSees(alive);
    await dns.restart();
    const back = dns.lines.length;
    await waitFor('every pod to query the DNS server again', () =>
      alive.every((p) => dns.lines.slice(back).some((l) => l.includes('query[') && l.includes(`from ${p.host.address}`))),
    15_000, 100);
    await everySessionIntact('after the DNS outage');
  });

  await t.test('a pod terminated as kubelet does hands its sessions off within its grace period; requests keep being answered', async (st) => {
    const leaving = pods.get(2)!;
    const stay = live().filter((p) => p !== leaving);
    const since = stay.map((p) => p.proc.lines.length);
    // Deletion: the pod leaves the Services' records, preStop runs, then SIGTERM.
    peers.delete(2);
    ready.delete(2);
    await dns.setRecords(records());
    let answered = 0;
    let running = true;
    // Settles with the first failure (held, not thrown, until the load is awaited). Without
    // sessions the loop would never yield, and the test would hang instead of failing.
    assert.ok(users.length > 0, 'sessions to read while the pod terminates (the earlier steps made them)');
    const load = (async () => {
      while (running) {
        for (const u of users) {
          if (!running) break;
          await visit(u, ingress, 'GET', 'while the pod terminates');
          answered++;
        }
      }
    })().then(
      () => undefined,
      (err: unknown) => err,
    );
    try {
      await sleep(k8s.preStopSeconds * 1000);
      leaving.proc.kill('SIGTERM');
      const termAt = Date.now();
      const budget = (k8s.terminationGracePeriodSeconds - k8s.preStopSeconds) * 1000;
      await waitFor(`${leaving.name} to hand off and exit within the grace period left after preStop (${budget} ms)`, () => !leaving.proc.alive, budget, 50);
      st.diagnostic(`${leaving.name} (${users.length} sessions in the cluster) handed off, left and exited ${Date.now() - termAt} ms after SIGTERM`);
      assert.equal(leaving.proc.child.exitCode, 0, `${leaving.name} exited cleanly:\n${leaving.proc.lines.slice(-10).join('\n')}`);
    } finally {
      running = false;
    }
    const failed = await load;
    if (failed !== undefined) throw failed instanceof Error ? failed : new Error(JSON.stringify(failed));
    assert.ok(answered > users.length, `requests answered during the termination: ${answered}`);
    for (const [k, p] of stay.entries()) {
      assert.ok(logs(p.proc, 'member left', since[k]).some((l) => l.peer === leaving.name), `${p.name} logged ${leaving.name} as left`);
    }
    await everyoneSees(stay);
    await protectedTwice(users.length, 'after the hand-off');
    await everySessionIntact('after a pod terminated');
  });
});

/**
 * The server and location ingress-nginx generates for the manifest's Ingress, reduced to what the
 * snippets rely on: a resolver (ingress-nginx sets one to the cluster DNS), the server-snippet at
 * server level, the configuration-snippet in the path's location, and that location's own
 * proxy_pass to the Service's ready pods (ingress-nginx's balancer; here the Service's name).
 */
function ingressNginxShape(port: number, dnsServer: string, service: string, k8s: ReturnType<typeof readManifest>): string {
  const indent = (text: string, n: number) => text.split('\n').map((l) => ' '.repeat(n) + l).join('\n');
  return `worker_processes 1;
pid nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
  client_body_temp_path client_body_temp;
  proxy_temp_path proxy_temp;
  fastcgi_temp_path fastcgi_temp;
  uwsgi_temp_path uwsgi_temp;
  scgi_temp_path scgi_temp;
  access_log off;
  resolver ${dnsServer} valid=1s ipv6=off;
  server {
    listen 127.0.0.1:${port};
${indent(k8s.serverSnippet, 4)}
    location / {
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
${indent(k8s.configurationSnippet, 6)}
      set $ingress_service ${service};
      proxy_pass http://$ingress_service:${k8s.httpPort};
    }
  }
}
`;
}

test('IPv6: AAAA records (family 6), both families on a dual-stack listener (any), from the DNS server given in servers', async (t: TestContext) => {
  if (!namespacesAvailable(t, 'the IPv6 DNS namespace test')) return;
  if (!hasDnsmasq(t)) return;
  const net = BridgeNetwork.create(3, { prefix: '10.202', ipv6: true, tag: 'b' });
  const procs: MemberProcess[] = [];
  t.after(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited()));
    net.destroy();
  });
  net.addHostAddress();
  const [h1, h2, dnsHost] = net.hosts as [NetnsHost, NetnsHost, NetnsHost];
  const v6 = (h: NetnsHost) => h.address6!;
  const name = 'members.ksc.test';
  // Both families' records of both hosts: which ones a member asks for is its family's business.
  const dns = await Dnsmasq.start(t, dnsHost, 'ksc.test', { [name]: [h1.address, h2.address, v6(h1), v6(h2)] });
  const script = fileURLToPath(new URL('../helpers/app-member.ts', import.meta.url));
  const start = (route: string, h: NetnsHost, env: Record<string, string>) => {
    const proc = startProcess(t, route, script, {
      ROUTE: route,
      DNS_NAME: name,
      DNS_PORT: '4000',
      DNS_SERVERS: `[${v6(dnsHost)}]:53`,
      RECEIVER_PORT: '4000',
      HTTP_HOST: v6(h),
      PORT: '8080',
      LOG_LEVEL: 'info',
      ...env,
    }, { command: h.exec });
    procs.push(proc);
    return proc;
  };
  // v6a listens on its IPv6 address only and asks for AAAA; v6b listens on both families ('::')
  // and asks for both, so its own two addresses are skipped as local ones.
  const p1 = start('v6a', h1, { DNS_FAMILY: '6', RECEIVER_HOST: v6(h1) });
  const p2 = start('v6b', h2, { DNS_FAMILY: 'any', RECEIVER_HOST: '::', RECEIVER_ADVERTISE: v6(h2) });
  await Promise.all([p1.waitForLine(/"event":"listening"/, 30_000), p2.waitForLine(/"event":"listening"/, 30_000)]);
  const url = (h: NetnsHost) => `http://[${v6(h)}]:8080`;
  const expected = [
    { p: p1, h: h1, other: h2, addresses: [`[${v6(h2)}]:4000`], self: [`[${v6(h1)}]:4000`] },
    { p: p2, h: h2, other: h1, addresses: [`${h1.address}:4000`, `[${v6(h1)}]:4000`], self: [`${h2.address}:4000`, `[${v6(h2)}]:4000`] },
  ];
  for (const { p, h, other, addresses, self } of expected) {
    await waitFor(`${p.name} to see the other member at its IPv6 address`, async () => {
      const res = await fetch(`${url(h)}/cluster/status`, { signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as { members: { route: string; host: string }[] };
      return body.members.some((m) => m.host === v6(other));
    }, 15_000, 100);
    await resolution(p, (l) => l.addresses?.join() === addresses.join() && l.self?.join() === self.join(), `${p.name} to resolve ${addresses.join()} and skip ${self.join()}`);
  }
  const asked = (type: string, h: NetnsHost) => dns.lines.some((l) => l.includes(`query[${type}] ${name} from ${v6(h)}`));
  assert.deepEqual([asked('AAAA', h1), asked('A', h1), asked('AAAA', h2), asked('A', h2)], [true, false, true, true], 'AAAA, A: family 6 and any, over IPv6');
  const jar = new CookieJar();
  assert.equal((await request(jar, 'POST', `${url(h1)}/incr`)).body.session.n, 1);
  const read = await request(jar, 'GET', `${url(h2)}/get`);
  assert.equal(read.status, 200);
  assert.equal(read.body.session.n, 1, 'the session written on one member is read on the other, over IPv6');
});
