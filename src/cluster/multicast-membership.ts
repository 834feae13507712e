/**
 * Multicast discovery (Tomcat's McastService): sends a signed heartbeat every `frequency` ms and
 * reports every valid heartbeat it receives. All traffic stays on the configured interface: the
 * group is joined on it and sent through it, never on the machine's default interface.
 */
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { ClusterOptionsError, HeartbeatError } from '../errors.js';
import { decodeHeartbeat, encodeHeartbeat, heartbeatDropReason } from './heartbeat.js';
import type { Heartbeat, HeartbeatKind } from './heartbeat.js';
import { PROTOCOL_VERSION, shortId } from './messages.js';
import { LogLimiter } from './log-limiter.js';
import { countReason } from './metrics.js';
import type { ClusterMetrics, MemberInfo } from './types.js';

/** Options of multicast discovery. */
export interface MulticastMembershipOptions {
  /** Group address, e.g. `228.0.0.4`. */
  address: string;
  port: number;
  /** IPv4 address of the local interface to join, send and receive on. */
  interface: string;
  ttl: number;
  frequency: number;
  dropTime: number;
  clusterName: string;
  /** Heartbeat MAC key. */
  key: Buffer;
  self(): MemberInfo;
  metrics: ClusterMetrics;
  logger: Logger;
  /** Wall clock, epoch ms (heartbeat timestamps). */
  now?: () => number;
}

/** Events of multicast discovery. */
export interface MulticastMembershipEvents {
  /** A valid `alive` heartbeat from another member; `from` is the datagram's source address. */
  alive: [member: MemberInfo, from: string];
  /** A valid `leave` heartbeat from another member. */
  leave: [member: MemberInfo];
}

/**
 * How far apart members' wall clocks may be for their heartbeats to count (a heartbeat is stamped with
 * its sender's wall clock). Replays are stopped by "older than the newest one accepted from that
 * member", not by this window, so it can be wide: an NTP step of seconds, or a host a minute off, never
 * costs a member its membership. (TCP traffic, which carries no wall time, is life too.)
 */
export const MAX_CLOCK_SKEW_MS = 60_000;

/** Heartbeats over UDP multicast. */
export class MulticastMembership extends EventEmitter<MulticastMembershipEvents> {
  readonly #opts: MulticastMembershipOptions;
  readonly #now: () => number;
  #socket: Socket | undefined;
  #timer: NodeJS.Timeout | undefined;
  /**
   * Per member id: the newest heartbeat timestamp accepted (its clock) and when it came (ours,
   * monotonic). An older (replayed or reordered) heartbeat is stale.
   */
  readonly #newest = new Map<string, { ts: number; at: number }>();
  #lastPrune = 0;
  /** Drops are counted always, logged at most once a minute per reason: a foreign cluster on the group must not flood the log. */
  readonly #dropLog = new LogLimiter(60_000);

  constructor(opts: MulticastMembershipOptions) {
    super();
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Binds, joins the group on the configured interface, and starts heartbeating. */
  async start(): Promise<void> {
    const o = this.#opts;
    this.#socket = await bindGroupSocket(o.address, o.port);
    const s = this.#socket;
    s.on('error', (err) => o.logger.warn({ err: err.message }, 'multicast socket error'));
    s.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo.address));
    try {
      s.addMembership(o.address, o.interface);
      s.setMulticastInterface(o.interface);
      s.setMulticastTTL(o.ttl);
      // Members on the same host hear each other only through the loopback of multicast.
      s.setMulticastLoopback(true);
    } catch (err) {
      this.#socket = undefined;
      s.close();
      throw new ClusterOptionsError(
        'membership.multicast.interface',
        `cannot join multicast group ${o.address} on interface ${o.interface}: ${(err as Error).message}; ` +
          'the interface must be an IPv4 address of this host',
      );
    }
    this.#send('alive');
    this.#timer = setInterval(() => this.#send('alive'), o.frequency);
    o.logger.info({ group: o.address, port: o.port, interface: o.interface }, 'multicast membership started');
  }

  /** Sends a `leave` heartbeat (peers drop us at once), then closes the socket. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    const s = this.#socket;
    this.#socket = undefined;
    if (s === undefined) return;
    await new Promise<void>((resolve) => {
      try {
        s.send(this.#datagram('leave'), this.#opts.port, this.#opts.address, () => resolve());
      } catch {
        resolve();
      }
    });
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  #datagram(kind: HeartbeatKind): Buffer {
    const hb: Heartbeat = { clusterName: this.#opts.clusterName, member: this.#opts.self(), protocolVersion: PROTOCOL_VERSION, timestamp: this.#now(), kind };
    return encodeHeartbeat(hb, this.#opts.key);
  }

  #send(kind: HeartbeatKind): void {
    const s = this.#socket;
    if (s === undefined) return;
    const onSent = (err: Error | null) => {
      if (err) this.#warnOnce('send', { err: err.message }, 'could not send a heartbeat');
      else this.#opts.metrics.heartbeatsSent += 1;
    };
    try {
      s.send(this.#datagram(kind), this.#opts.port, this.#opts.address, onSent);
    } catch (err) {
      onSent(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #onMessage(msg: Buffer, from: string): void {
    const o = this.#opts;
    const now = this.#now();
    let hb: Heartbeat;
    try {
      hb = decodeHeartbeat(msg, { key: o.key, clusterName: o.clusterName, protocolVersion: PROTOCOL_VERSION, now, maxAgeMs: Math.max(o.dropTime, MAX_CLOCK_SKEW_MS) });
      if (hb.member.id === o.self().id) return;
      const newest = this.#newest.get(hb.member.id);
      if (newest !== undefined && hb.timestamp < newest.ts) throw new HeartbeatError('ERR_HEARTBEAT_STALE', 'heartbeat older than one already received');
      // Only a member heard alive here can be replayed against: a leave of one never heard (known by
      // its TCP hello alone) may be a recording, and its real leave also comes over TCP, authenticated.
      if (newest === undefined && hb.kind === 'leave') throw new HeartbeatError('ERR_HEARTBEAT_STALE', 'leave from a member never heard alive here');
    } catch (err) {
      // Never throw out of a socket handler: anything unexpected is a malformed datagram.
      const reason = err instanceof HeartbeatError ? heartbeatDropReason(err) : 'malformed';
      countReason(o.metrics.heartbeatsDropped, reason);
      this.#warnOnce(reason, { from, reason, detail: err instanceof Error ? err.message : String(err) }, 'dropped a heartbeat');
      return;
    }
    o.metrics.heartbeatsReceived += 1;
    this.#newest.set(hb.member.id, { ts: hb.timestamp, at: performance.now() });
    const heardAt = performance.now();
    if (heardAt - this.#lastPrune > o.dropTime) this.#prune(heardAt);
    if (hb.kind === 'leave') {
      o.logger.debug({ peer: hb.member.route, id: shortId(hb.member.id) }, 'leave heartbeat');
      this.emit('leave', hb.member);
    } else {
      this.emit('alive', hb.member, from);
    }
  }

  /**
   * Forgets members not heard for longer than any of their heartbeats can stay acceptable (by when each
   * was heard here, not by its clock): a record forgotten sooner would let a replay from within the
   * skew window through (a recorded "leave" removing a live member after a few seconds of lost datagrams).
   */
  #prune(heardAt: number): void {
    this.#lastPrune = heardAt;
    const keep = 2 * Math.max(this.#opts.dropTime, MAX_CLOCK_SKEW_MS) + 2 * this.#opts.dropTime;
    for (const [id, n] of this.#newest) if (heardAt - n.at > keep) this.#newest.delete(id);
  }

  #warnOnce(key: string, fields: object, msg: string): void {
    const suppressed = this.#dropLog.allow(key);
    if (suppressed !== false) this.#opts.logger.warn({ ...fields, suppressed }, msg);
  }
}

/**
 * A UDP socket that receives the group's datagrams only. On Linux, binding to the group address
 * filters out unicast and other groups that share the port; where the platform refuses that
 * (Windows), bind to the wildcard address instead.
 */
async function bindGroupSocket(group: string, port: number): Promise<Socket> {
  try {
    return await bindUdp(port, group);
  } catch {
    return bindUdp(port, '0.0.0.0');
  }
}

function bindUdp(port: number, address: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type: 'udp4', reuseAddr: true });
    const onError = (err: Error) => {
      s.close();
      reject(err);
    };
    s.once('error', onError);
    s.bind({ port, address, exclusive: false }, () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}
