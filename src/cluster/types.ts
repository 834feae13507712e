/**
 * The cluster layer's public contract: who is alive, and typed messages between members.
 * It knows nothing of sessions: message bodies are opaque bytes that the layer above encodes.
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { PreauthLimits } from './admission.js';
import type { MemberState } from './failure-detector.js';
import type { BodyPackers } from './envelope-codec.js';
import type { VersionRange } from './messages.js';

/** Which records of `membership.dns` hold the members: A (4), AAAA (6), or both ('any', a dual-stack Service). */
export type DnsFamily = 4 | 6 | 'any';

/** Resolves a name to addresses of one family; rejects with a `code` (`ENODATA`, …) as `dns.promises` does. */
export type DnsLookup = (name: string) => Promise<string[]>;

/** One member of the cluster, as its heartbeats and handshakes describe it. */
export interface MemberInfo {
  /** Random id, new each start: a restarted member is a new member with the same route. */
  readonly id: string;
  /** Stable name (Tomcat's jvmRoute); the suffix of the session ids this member owns. */
  readonly route: string;
  /** Receiver address peers connect to. */
  readonly host: string;
  readonly port: number;
  /** Epoch ms when the member started. */
  readonly startTime: number;
  /** Its failure domain (option `zone`), when it names one and its protocol version carries it. */
  readonly zone?: string;
}

/** Why a member was removed. */
export type RemovalReason = 'left' | 'failed';

/** What the failure detector learned about a removed member. */
export interface RemovalDetail {
  /**
   * The direct check's connection was refused (ECONNREFUSED): the member's process is gone. A member
   * removed for silence (a pause, a partition) may still be alive and serving on the other side.
   */
  readonly refused: boolean;
}

/** Events a `ClusterChannel` emits. */
export interface ClusterEvents {
  /** A member is alive and its receiver accepted our authenticated handshake. */
  'member-added': [member: MemberInfo];
  /** Heartbeats stopped or the connection broke; a direct TCP check is under way. */
  'member-suspected': [member: MemberInfo];
  /** The member left (graceful) or failed the direct check; pending requests to it were rejected. */
  'member-removed': [member: MemberInfo, reason: RemovalReason, detail?: RemovalDetail];
}

/**
 * Handles one message type. The returned bytes are the reply to a `request`; throwing makes the
 * request reject with `ClusterRequestError` code `ERR_REMOTE` carrying the error's code and message.
 */
export type MessageHandler = (from: MemberInfo, body: Buffer) => Promise<Buffer | void> | Buffer | void;

/** Counters for `/cluster/metrics`. */
export interface ClusterMetrics {
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  heartbeatsSent: number;
  heartbeatsReceived: number;
  /** Heartbeats dropped, by reason (`stale`, `foreign`, `malformed`, `auth`). */
  heartbeatsDropped: Record<string, number>;
  /** Frames and connections rejected, by reason (`FRAME_REJECT_REASONS` in `metrics.ts`). */
  framesRejected: Record<string, number>;
  requestsTimedOut: number;
  /**
   * Requests from members refused unread because they arrived after their sender's deadline
   * (protocol version 3; `late-requests.ts`): a partition held them, or this process stalled.
   */
  requestsRefusedLate: number;
  /** Requests refused at once because the bounded send queue to their member was full. */
  requestsRejectedBackpressure: number;
  /** Sum and count of request round-trip times, milliseconds, for a mean; plus a small histogram. */
  requestLatencyMs: { sum: number; count: number; buckets: Record<string, number> };
  membersAdded: number;
  /** Times a member was suspected (silence or broken connection); most are cleared by the direct check. */
  membersSuspected: number;
  membersRemoved: number;
}

/** Options the channel needs (already validated by `parseOptions`). */
export interface ClusterChannelOptions {
  route: string;
  /** This member's failure domain (option `zone`), told to the others in hellos and heartbeats. */
  zone?: string;
  clusterName: string;
  /** The secret, or the secrets of a rotation: sends with the first, accepts every one. */
  secret: string | Buffer | readonly (string | Buffer)[];
  encrypt: boolean;
  membership: {
    multicast?: { address: string; port: number; interface: string; frequency: number; dropTime: number; ttl: number };
    static?: string[];
    /** `family`: 4 (A records) unless given; `servers`: the system's resolver configuration unless given. */
    dns?: { name: string; port: number; interval: number; family?: DnsFamily; servers?: string[] };
    frequency: number;
    dropTime: number;
  };
  /** `preauth`: limits on connections that have not authenticated yet (defaults in `admission.ts`). */
  receiver: { host: string; port: number; advertise?: string; preauth?: Partial<PreauthLimits> };
  maxFrameBytes: number;
  /** Default timeout of `request`, ms. */
  requestTimeout: number;
  logger: Logger;
  /**
   * Bound of the queue of frames waiting for one peer's connection (not yet connected, or the
   * socket's buffer is full); beyond it `request` rejects with `ERR_BACKPRESSURE`.
   * Defaults: 4096 frames, and the larger of 16 MiB and 2 × maxFrameBytes.
   */
  sendQueue?: { maxFrames?: number; maxBytes?: number };
  /**
   * Resolve the DNS name of `membership.dns` to IPv4 and IPv6 addresses; DNS queries unless given
   * (tests inject them).
   */
  resolve4?: DnsLookup;
  resolve6?: DnsLookup;
  /** Protocol versions this member speaks: `PROTOCOL_RANGE` unless given (tests give others). */
  protocol?: VersionRange;
  /** Rewrites of message bodies in protocol version 2, by message type (`envelope-codec.ts`). */
  packers?: BodyPackers;
}

/** What a member knows of protocol versions: its own, each connection's, and who was refused. */
export interface ProtocolStatus {
  /** The versions this member speaks. */
  versions: VersionRange;
  /** The version of each outgoing connection to a live member. */
  peers: { route: string; id: string; version: number }[];
  /**
   * Members refused (in the last 10 minutes) because they speak none of our versions, as their
   * authenticated heartbeat or handshake said: `at` is when, epoch ms.
   */
  incompatible: { route: string; id: string; host: string; port: number; versions: VersionRange; at: number }[];
}

/** The cluster layer as the replication layer sees it. */
export interface ClusterChannel extends EventEmitter<ClusterEvents> {
  /** This member; `port` is the bound port once `start()` resolved (port 0 picks a free one). */
  readonly self: MemberInfo;
  /** Resolves when the receiver listens and membership runs. */
  start(): Promise<void>;
  /** Sends a leave message so peers drop us at once, then closes sockets and timers. */
  stop(): Promise<void>;
  /** Live members other than self, in order of joining. */
  members(): MemberInfo[];
  /**
   * What the failure detector thinks of a member now: `alive`, `suspect` (a direct check is under
   * way; still listed by `members()`), `joining` (heard of, not yet handshaken), or undefined (unknown
   * or removed). Read-only, for status pages.
   */
  stateOf(memberId: string): MemberState | undefined;
  /** Registers the handler of a message type (one handler per type). */
  handle(type: string, handler: MessageHandler): void;
  /**
   * Sends `body` to member `memberId` and resolves with its handler's reply. Rejects with
   * `ClusterRequestError` on timeout, on the member's removal, on a lost connection, or when the
   * peer's handler threw.
   */
  request(memberId: string, type: string, body: Buffer, options?: { timeoutMs?: number }): Promise<Buffer>;
  /** Protocol versions: ours, each connection's, and the members refused for having none in common. */
  protocolStatus?(): ProtocolStatus;
  /** Counters for metrics. */
  metrics(): ClusterMetrics;
}
