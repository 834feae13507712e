/**
 * The cluster channel: wires discovery (multicast, static or DNS), the failure detector, the
 * receiver and the outgoing connections into the `ClusterChannel` the replication layer uses.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { ClusterRequestError, ClusterStateError, HandlerError } from '../errors.js';
import { ConnectionPool } from './connection-pool.js';
import { DnsMembership } from './dns-membership.js';
import { FailureDetector, type MemberState } from './failure-detector.js';
import { LogLimiter } from './log-limiter.js';
import { deriveClusterKeys } from './keys.js';
import type { ClusterKeys } from './keys.js';
import { PROBE_TYPE, PROTOCOL_RANGE, decodeProbeReply, decodeProbeRequest, encodeProbeReply, encodeProbeRequest, shortId } from './messages.js';
import { createMetrics, recordLatency, snapshotMetrics } from './metrics.js';
import { MulticastMembership } from './multicast-membership.js';
import { PeerConnection } from './peer-connection.js';
import { Receiver } from './receiver.js';
import { StaticMembership } from './static-membership.js';
import type { VersionRange } from './messages.js';
import type { ClusterChannel, ClusterChannelOptions, ClusterEvents, ClusterMetrics, MemberInfo, MessageHandler, ProtocolStatus } from './types.js';

const EMPTY = Buffer.alloc(0);
/** Unanswered requests per inbound connection before we stop reading from it. */
const MAX_IN_FLIGHT = 256;
/** How long a graceful stop waits for peers to acknowledge the leave. */
const LEAVE_TIMEOUT_MS = 500;
/** How long a member refused for its protocol versions stays on the status page. */
const INCOMPATIBLE_KEPT_MS = 10 * 60_000;
/** Other members asked in an indirect check (SWIM uses three). */
const INDIRECT_HELPERS = 3;

type State = 'new' | 'starting' | 'started' | 'stopping' | 'stopped';

function isUnspecified(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/**
 * The addresses this member's receiver is reached at: the advertised and bound host, or, bound to
 * every interface, every local address (a pod's IP among them), so DNS answers naming us are skipped.
 */
function ownHosts(self: MemberInfo, bound: string): string[] {
  if (!isUnspecified(bound)) return [self.host, bound];
  const local = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
  return [self.host, ...local];
}

/**
 * Where to reach a member: the host it advertises, or, if it advertises a wildcard (it listens on
 * every interface and was given no `advertise`), the address its packets came from.
 */
function addressOf(m: MemberInfo, seenFrom: string): string {
  const host = isUnspecified(m.host) && seenFrom !== '' ? seenFrom.replace(/^::ffff:/, '') : m.host;
  return host.includes(':') ? `[${host}]:${m.port}` : `${host}:${m.port}`;
}

/** The `ClusterChannel` implementation. */
export class Channel extends EventEmitter<ClusterEvents> implements ClusterChannel {
  readonly #opts: ClusterChannelOptions;
  readonly #keys: ClusterKeys;
  readonly #metrics: ClusterMetrics = createMetrics();
  readonly #handlers = new Map<string, MessageHandler>();
  readonly #membershipLog: Logger;
  readonly #transportLog: Logger;
  readonly #frequency: number;
  readonly #dropTime: number;
  readonly #pool: ConnectionPool;
  /** Members whose last direct check was refused (process gone), until their removal is announced. */
  readonly #refused = new Set<string>();
  readonly #receiver: Receiver;
  readonly #fd: FailureDetector;
  /** One warning per peer address and reason every 10 s; the counters see every event. */
  readonly #rejectLog = new LogLimiter(10_000);
  #self: MemberInfo;
  #state: State = 'new';
  #stopping: Promise<void> | undefined;
  #multicast: MulticastMembership | undefined;
  #static: StaticMembership | undefined;
  #dns: DnsMembership | undefined;
  #tick: NodeJS.Timeout | undefined;
  #tcpHeartbeat: NodeJS.Timeout | undefined;
  /** Members with a TCP heartbeat ping in flight (one at a time each). */
  readonly #pinging = new Set<string>();
  /** Members refused for speaking none of our protocol versions, by id, with when. */
  readonly #incompatible = new Map<string, ProtocolStatus['incompatible'][number]>();

  constructor(opts: ClusterChannelOptions) {
    super();
    this.#opts = opts;
    this.#keys = deriveClusterKeys(opts.secret);
    this.#membershipLog = opts.logger.child({ component: 'membership' });
    this.#transportLog = opts.logger.child({ component: 'transport' });
    const mc = opts.membership.multicast;
    this.#frequency = mc?.frequency ?? opts.membership.frequency;
    this.#dropTime = mc?.dropTime ?? opts.membership.dropTime;
    const host = opts.receiver.advertise ?? (isUnspecified(opts.receiver.host) ? (mc?.interface ?? opts.receiver.host) : opts.receiver.host);
    this.#self = Object.freeze({
      id: randomBytes(16).toString('base64url'),
      route: opts.route,
      host,
      port: opts.receiver.port,
      startTime: Date.now(),
      ...(opts.zone !== undefined ? { zone: opts.zone } : {}),
    });
    this.#pool = new ConnectionPool((h, p) => this.#createConnection(h, p));
    this.#handlers.set(PROBE_TYPE, (_from, body) => this.#answerProbe(body));
    this.#receiver = new Receiver({
      host: opts.receiver.host,
      port: opts.receiver.port,
      keys: this.#keys,
      encrypt: opts.encrypt,
      maxFrameBytes: opts.maxFrameBytes,
      clusterName: opts.clusterName,
      self: () => this.#self,
      preauth: opts.receiver.preauth,
      maxInFlight: MAX_IN_FLIGHT,
      protocol: opts.protocol,
      packers: opts.packers,
      onIncompatible: (m, range) => this.#noteIncompatible(m, range),
      dispatch: (from, type, body) => this.#dispatch(from, type, body),
      // A new member connects to us as soon as it hears of us; its hello tells us of it just as
      // early, instead of at its next heartbeat.
      onHello: (from, remoteAddress) => this.#fd.heard(from, addressOf(from, remoteAddress)),
      onLeave: (from) => this.#fd.left(from.id),
      metrics: this.#metrics,
      logger: this.#transportLog,
      rejectLog: this.#rejectLog,
    });
    this.#fd = new FailureDetector({
      self: this.#self,
      dropTimeMs: this.#dropTime,
      // The check must fit well inside the silence budget; a second is plenty on a LAN.
      checkTimeoutMs: Math.min(1000, Math.floor(this.#dropTime / 2)),
      now: () => performance.now(),
      probe: async (member, address, timeoutMs) => {
        const c = this.#pool.get(address);
        const ok = c === undefined ? false : await c.check(member.id, timeoutMs);
        if (!ok && c?.lastAttemptRefused === true) this.#refused.add(member.id);
        return ok;
      },
      indirect: async (member, _address, timeoutMs) => {
        const verdict = await this.#askOthers(member, timeoutMs);
        // Refused only if every member asked was refused too: one refusal from here proves nothing.
        if (!verdict.refused) this.#refused.delete(member.id);
        return verdict;
      },
      lastActivity: (member, address) => {
        const c = this.#pool.get(address);
        return c !== undefined && c.remote?.id === member.id ? c.lastReceivedAt : 0;
      },
      metrics: this.#metrics,
      logger: this.#membershipLog,
    });
    this.#fd.on('discovered', (r) => {
      const c = this.#pool.acquire(r.address, r.info.id);
      if (c.ready && c.remote?.id === r.info.id) this.#fd.reachable(r.info);
      else if (c.ready) c.reset(); // an earlier process at this address: reconnect to meet the new one
      else c.connectNow();
    });
    // 'released' comes before 'member-removed': requests are rejected before listeners hear of it.
    this.#fd.on('released', (r) => this.#release(r.info, r.address));
    this.#fd.on('member-added', (m) => this.emit('member-added', m));
    this.#fd.on('member-suspected', (m) => this.emit('member-suspected', m));
    this.#fd.on('member-removed', (m, reason) => {
      const refused = this.#refused.delete(m.id);
      this.emit('member-removed', m, reason, { refused });
    });
  }

  /** This member; `port` is the bound one once started. */
  get self(): MemberInfo {
    return this.#self;
  }

  /** Listens, then starts membership. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new ClusterStateError(`cannot start a cluster channel that is ${this.#state}`);
    this.#state = 'starting';
    const o = this.#opts;
    try {
      const port = await this.#receiver.listen();
      this.#self = Object.freeze({ ...this.#self, port });
      const mc = o.membership.multicast;
      if (mc !== undefined) {
        this.#multicast = new MulticastMembership({
          ...mc,
          clusterName: o.clusterName,
          key: this.#keys.heartbeatMac,
          acceptKeys: this.#keys.accepted.map((k) => k.heartbeatMac),
          self: () => this.#self,
          protocol: o.protocol,
          metrics: this.#metrics,
          logger: this.#membershipLog,
        });
        this.#multicast.on('incompatible', (p) => this.#noteIncompatible(p, { min: p.min, max: p.max }));
        this.#multicast.on('alive', (m, from) => {
          // Its connections get members' slots on our receiver; only from the address it advertises,
          // since a heartbeat replayed from elsewhere also passes the MAC.
          if (from === m.host) this.#receiver.trustSource(from);
          // Its version-1 heartbeat may have come first and been refused: its range says otherwise.
          this.#incompatible.delete(m.id);
          this.#fd.heard(m, addressOf(m, from));
        });
        this.#multicast.on('leave', (m) => this.#fd.left(m.id));
        await this.#multicast.start();
      }
      if (o.membership.static !== undefined || o.membership.dns !== undefined) {
        this.#static = new StaticMembership({
          addresses: o.membership.static ?? [],
          selfId: this.#self.id,
          pool: this.#pool,
          onMember: (m, address) => {
            this.#fd.heard(m, address);
            this.#fd.reachable(m);
          },
          logger: this.#membershipLog,
        });
        this.#static.start();
      }
      const dns = o.membership.dns;
      if (dns !== undefined) {
        const staticMembership = this.#static!;
        this.#dns = new DnsMembership({
          ...dns,
          self: () => ({ hosts: ownHosts(this.#self, o.receiver.host), port: this.#self.port }),
          onAddresses: (addresses) => staticMembership.setAddresses(addresses),
          logger: this.#membershipLog,
          ...(o.resolve4 !== undefined ? { resolve4: o.resolve4 } : {}),
          ...(o.resolve6 !== undefined ? { resolve6: o.resolve6 } : {}),
        });
        await this.#dns.start();
      }
      const tick = Math.max(20, Math.min(100, Math.floor(this.#frequency / 2)));
      this.#tick = setInterval(() => this.#fd.tick(), tick);
      if (mc === undefined) this.#tcpHeartbeat = setInterval(() => this.#pingMembers(), this.#frequency);
      this.#state = 'started';
      this.#membershipLog.info(
        { id: shortId(this.#self.id), host: this.#self.host, port: this.#self.port },
        'cluster channel started',
      );
    } catch (err) {
      await this.#shutdown();
      this.#state = 'stopped';
      throw err;
    }
  }

  /** Graceful leave, then closes everything. */
  stop(): Promise<void> {
    if (this.#state === 'new') {
      this.#state = 'stopped';
      return Promise.resolve();
    }
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /** Admitted members other than self, in order of joining. */
  members(): MemberInfo[] {
    return this.#fd.members();
  }

  /** The failure detector's view of a member (`alive`, `suspect`, `joining`), undefined once removed. */
  stateOf(memberId: string): MemberState | undefined {
    return this.#fd.get(memberId)?.state;
  }

  /** Registers the handler of `type`; one per type. */
  handle(type: string, handler: MessageHandler): void {
    if (this.#handlers.has(type)) throw new ClusterStateError(`a handler for message type "${type}" is already registered`);
    this.#handlers.set(type, handler);
  }

  /** Sends a request to a member and resolves with its reply. */
  request(memberId: string, type: string, body: Buffer, options?: { timeoutMs?: number }): Promise<Buffer> {
    if (this.#state === 'stopping' || this.#state === 'stopped') {
      return Promise.reject(new ClusterRequestError('ERR_STOPPED', 'the cluster channel is stopped'));
    }
    const r = this.#fd.get(memberId);
    const c = r !== undefined && r.state !== 'joining' ? this.#pool.get(r.address) : undefined;
    if (c === undefined) return Promise.reject(new ClusterRequestError('ERR_MEMBER_GONE', `member ${shortId(memberId)} is not a live member`));
    const started = performance.now();
    return c.send('request', memberId, type, body, options?.timeoutMs ?? this.#opts.requestTimeout).then((reply) => {
      recordLatency(this.#metrics, performance.now() - started);
      return reply;
    });
  }

  /** Protocol versions: ours, each live connection's, and the members refused for having none in common. */
  protocolStatus(): ProtocolStatus {
    const horizon = Date.now() - INCOMPATIBLE_KEPT_MS;
    for (const [id, r] of this.#incompatible) if (r.at < horizon) this.#incompatible.delete(id);
    const peers: ProtocolStatus['peers'] = [];
    for (const r of this.#fd.admitted()) {
      const version = this.#pool.get(r.address)?.version;
      if (version !== undefined) peers.push({ route: r.info.route, id: r.info.id, version });
    }
    const v = this.#opts.protocol ?? PROTOCOL_RANGE;
    return { versions: { min: v.min, max: v.max }, peers, incompatible: [...this.#incompatible.values()] };
  }

  #noteIncompatible(m: Pick<MemberInfo, 'id' | 'route' | 'host' | 'port'>, versions: VersionRange): void {
    if (!this.#incompatible.has(m.id) && this.#incompatible.size >= 64) this.#incompatible.delete(this.#incompatible.keys().next().value!);
    this.#incompatible.set(m.id, { route: m.route, id: m.id, host: m.host, port: m.port, versions: { min: versions.min, max: versions.max }, at: Date.now() });
  }

  /** A copy of the counters. */
  metrics(): ClusterMetrics {
    return snapshotMetrics(this.#metrics);
  }

  async #stop(): Promise<void> {
    this.#state = 'stopping';
    clearInterval(this.#tick);
    // Leave over TCP first, acknowledged, so peers remove us as 'left' before our receiver closes
    // (a closed receiver alone would look like a crash).
    const leaves: Promise<Buffer>[] = [];
    for (const r of this.#fd.admitted()) {
      const c = this.#pool.get(r.address);
      if (c !== undefined) leaves.push(c.send('leave', r.info.id, '', EMPTY, LEAVE_TIMEOUT_MS));
    }
    await Promise.allSettled(leaves);
    await this.#shutdown();
    this.#state = 'stopped';
    this.#membershipLog.info({ id: shortId(this.#self.id) }, 'cluster channel stopped');
  }

  async #shutdown(): Promise<void> {
    clearInterval(this.#tick);
    clearInterval(this.#tcpHeartbeat);
    try {
      await this.#multicast?.stop();
    } catch (err) {
      this.#membershipLog.warn({ err }, 'could not send the leave heartbeat');
    }
    this.#dns?.stop();
    this.#fd.stop();
    this.#pool.closeAll(new ClusterRequestError('ERR_STOPPED', 'the cluster channel is stopped'));
    this.#static?.stop();
    await this.#receiver.close();
  }

  #createConnection(host: string, port: number): PeerConnection {
    const o = this.#opts;
    const c = new PeerConnection({
      host,
      port,
      self: () => this.#self,
      clusterName: o.clusterName,
      keys: this.#keys,
      encrypt: o.encrypt,
      maxFrameBytes: o.maxFrameBytes,
      handshakeTimeoutMs: Math.min(5000, this.#dropTime),
      backoff: { initialMs: 50, maxMs: 1000 },
      queue: {
        maxFrames: o.sendQueue?.maxFrames ?? 4096,
        maxBytes: o.sendQueue?.maxBytes ?? Math.max(16 * 1024 * 1024, 2 * o.maxFrameBytes),
      },
      metrics: this.#metrics,
      logger: this.#transportLog,
      rejectLog: this.#rejectLog,
      protocol: o.protocol,
      packers: o.packers,
      onIncompatible: (m, range) => this.#noteIncompatible(m, range),
    });
    c.on('ready', (remote) => this.#fd.reachable(remote));
    c.on('down', (remote, err) => {
      this.#transportLog.debug({ address: c.address, peer: remote.route, err: err?.message }, 'connection to peer lost');
      this.#fd.connectionLost(remote.id);
    });
    c.on('attempt-failed', (err) => this.#transportLog.debug({ address: c.address, err: err?.message }, 'could not connect to peer'));
    return c;
  }

  /**
   * The indirect check: up to three other live members (chosen at random) are asked whether they reach
   * `member` themselves. Reached by any: it stays. Refused: our attempt and every answer were refused
   * (with nobody to ask, our own verdict stands).
   */
  async #askOthers(member: MemberInfo, timeoutMs: number): Promise<{ reached: boolean; refused: boolean }> {
    const helpers = this.#fd
      .admitted()
      .filter((r) => r.info.id !== member.id && r.state === 'alive')
      .map((r) => r.info)
      .sort(() => Math.random() - 0.5)
      .slice(0, INDIRECT_HELPERS);
    if (helpers.length === 0) return { reached: false, refused: true };
    // The asked member gets most of the time; its answer needs the rest to come back.
    const body = encodeProbeRequest({ id: member.id, timeoutMs: Math.max(1, Math.floor(timeoutMs * 0.75)) });
    const answers = await Promise.all(
      helpers.map((h) => this.request(h.id, PROBE_TYPE, body, { timeoutMs }).then(decodeProbeReply, () => undefined)),
    );
    return { reached: answers.some((a) => a?.reached === true), refused: answers.every((a) => a?.refused === true) };
  }

  /** Another member asks whether we reach `id`: the direct check, from here. */
  async #answerProbe(body: Buffer): Promise<Buffer> {
    const p = decodeProbeRequest(body);
    const r = this.#fd.get(p.id);
    const c = r === undefined || r.state === 'joining' ? undefined : this.#pool.get(r.address);
    if (c === undefined) return encodeProbeReply({ reached: false, refused: false }); // not ours to tell
    const reached = await c.check(p.id, p.timeoutMs);
    return encodeProbeReply({ reached, refused: !reached && c.lastAttemptRefused });
  }

  /**
   * TCP heartbeat, where there is no multicast: a ping to every admitted member each `frequency`
   * ms; the pong is activity the failure detector counts, a missing one lets silence show.
   */
  #pingMembers(): void {
    for (const r of this.#fd.admitted()) {
      const c = this.#pool.get(r.address);
      if (c === undefined || !c.ready || this.#pinging.has(r.info.id)) continue;
      this.#pinging.add(r.info.id);
      const done = () => this.#pinging.delete(r.info.id);
      void c.send('ping', r.info.id, '', EMPTY, this.#dropTime).then(done, done);
    }
  }

  /** Rejects requests for a member that is gone, and lets go of its connection. */
  #release(member: MemberInfo, address: string): void {
    const c = this.#pool.get(address);
    if (c === undefined) return;
    c.rejectFor(member.id, new ClusterRequestError('ERR_MEMBER_GONE', `member ${member.route} (${shortId(member.id)}) is gone`));
    this.#pool.release(address, member.id);
    // Still held (the static list): start afresh, so the next handshake tells who is there now.
    if (this.#pool.get(address) === c && (c.remote === undefined || c.remote.id === member.id)) c.reset();
  }

  async #dispatch(from: MemberInfo, type: string, body: Buffer): Promise<Buffer | void> {
    const handler = this.#handlers.get(type);
    if (handler === undefined) {
      throw new HandlerError('ERR_NO_HANDLER', `member ${this.#self.route} has no handler for message type "${type}"`);
    }
    // Typed as Buffer | void, but plain-JS callers may return anything: check before it hits the wire.
    const reply: unknown = await handler(from, body);
    if (reply === undefined || Buffer.isBuffer(reply)) return reply;
    if (reply instanceof Uint8Array) return Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength);
    throw new HandlerError('ERR_BAD_REPLY', `the handler of "${type}" on member ${this.#self.route} returned ${typeof reply}, not a Buffer`);
  }
}
