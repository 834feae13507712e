/**
 * Every error this library throws, in one module (as undici keeps `lib/core/errors.js`).
 * Each class has a stable `code`, like Node's own errors, so callers branch on `err.code`,
 * never on message text. Messages say what was wrong, where, and what to do.
 *
 * This module imports nothing, so every layer (cluster, codec, ring, replication, koa) may use it.
 */

/** Base class of every koa-session-cluster error. */
export class SessionClusterError extends Error {
  /** Stable machine-readable code, e.g. `ERR_CLUSTER_OPTIONS`. */
  readonly code: string;
  /** HTTP status Koa uses if this error escapes a request (Koa reads `status`). */
  readonly status: number = 500;
  /** Koa exposes the message to the client only when `expose` is true; ours never are. */
  readonly expose: boolean = false;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option given to `createSessionCluster` is missing, of the wrong type or out of range. */
export class ClusterOptionsError extends SessionClusterError {
  /** Dotted path of the offending option, e.g. `membership.multicast.address`. */
  readonly option: string;
  constructor(option: string, message: string) {
    super('ERR_CLUSTER_OPTIONS', message);
    this.option = option;
  }
}

/** A session value cannot be replicated; `path` names it, e.g. `session.user.profile`. */
export class SessionUnserializableError extends SessionClusterError {
  readonly path: string;
  constructor(path: string, message: string) {
    super('ERR_SESSION_UNSERIALIZABLE', message);
    this.path = path;
  }
}

/** An encoded session is larger than `maxSessionBytes`. */
export class SessionTooLargeError extends SessionClusterError {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number) {
    super(
      'ERR_SESSION_TOO_LARGE',
      `session is ${size} bytes encoded, over the limit of ${limit} bytes (option maxSessionBytes); ` +
        'store less in the session or raise maxSessionBytes',
    );
    this.size = size;
    this.limit = limit;
  }
}

/** Bytes received from the wire could not be decoded (truncated, random, wrong schema). */
export class CodecError extends SessionClusterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CODEC', message, options);
  }
}

/** Data was written with an Avro schema this member has not seen; fetch it by `fingerprint`. */
export class UnknownSchemaError extends SessionClusterError {
  /** Hex fingerprint of the writer schema (the codec's: first 8 bytes of SHA-256 of its canonical form). */
  readonly fingerprint: string;
  constructor(fingerprint: string) {
    super(
      'ERR_UNKNOWN_SCHEMA',
      `data was written with schema ${fingerprint.length > 16 ? `${fingerprint.slice(0, 16)}…` : fingerprint}, unknown to this member; ` +
        'fetch it from the writer and register it',
    );
    this.fingerprint = fingerprint;
  }
}

/** A TCP frame failed authentication, exceeded the size limit or was malformed. */
export class FrameError extends SessionClusterError {
  constructor(code: 'ERR_FRAME_AUTH' | 'ERR_FRAME_TOO_LARGE' | 'ERR_FRAME_MALFORMED', message: string) {
    super(code, message);
  }
}

/** A heartbeat datagram was dropped: stale, foreign cluster, no common protocol version, malformed or wrongly signed. */
export class HeartbeatError extends SessionClusterError {
  /** With `ERR_HEARTBEAT_VERSION`: the member (authenticated) and the protocol versions it speaks. */
  declare readonly peer?: { readonly id: string; readonly route: string; readonly host: string; readonly port: number; readonly min: number; readonly max: number };
  constructor(
    code: 'ERR_HEARTBEAT_STALE' | 'ERR_HEARTBEAT_FOREIGN' | 'ERR_HEARTBEAT_VERSION' | 'ERR_HEARTBEAT_MALFORMED' | 'ERR_HEARTBEAT_AUTH',
    message: string,
    peer?: HeartbeatError['peer'],
  ) {
    super(code, message);
    if (peer !== undefined) this.peer = peer;
  }
}

/** A request to another member failed: timeout, member gone, connection lost, or the peer's handler threw. */
export class ClusterRequestError extends SessionClusterError {
  /** With `ERR_REMOTE`: the `code` and `message` of the error the peer's handler threw. */
  declare readonly remote?: { readonly code: string; readonly message: string };
  constructor(
    code: 'ERR_REQUEST_TIMEOUT' | 'ERR_MEMBER_GONE' | 'ERR_NOT_CONNECTED' | 'ERR_REMOTE' | 'ERR_BACKPRESSURE' | 'ERR_STOPPED',
    message: string,
    options?: { cause?: unknown; remote?: { code: string; message: string } },
  ) {
    super(code, message, options);
    if (options?.remote !== undefined) this.remote = options.remote;
  }
}

/** A session write could not be replicated (no backup acknowledged it); nothing was committed. */
export class ReplicationError extends SessionClusterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_REPLICATION', message, options);
  }
}

/** A write from a member that no longer owns the session (stale ownership epoch) was refused. */
export class StaleOwnerError extends SessionClusterError {
  /** The newer owner a copy holder named, when it did. */
  readonly owner: string | undefined;
  /** Its ownership epoch. */
  readonly epoch: number | undefined;
  constructor(message: string, newer?: { owner: string; epoch: number }) {
    super('ERR_STALE_OWNER', message);
    this.owner = newer?.owner;
    this.epoch = newer?.epoch;
  }
}

/** The cluster is not started, or already stopped. */
export class ClusterStateError extends SessionClusterError {
  constructor(message: string) {
    super('ERR_CLUSTER_STATE', message);
  }
}

/** Joining delta member: no existing member completed the state transfer in time. */
export class StateTransferError extends SessionClusterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STATE_TRANSFER', message, options);
  }
}

/**
 * This member cannot tell right now whether the session exists (it is moving, its owner is suspected,
 * a look-up timed out, this member is stopping). Never "no session": koa-session would hand out a new
 * cookie and log the user out for good. The route binder answers 503 with `Retry-After: 1`.
 */
export class SessionUnavailableError extends SessionClusterError {
  override readonly status: number = 503;
  /**
   * Response headers for whichever error handler answers: Koa's, Express's final handler and
   * Fastify's default error handler all send an error's `headers`, so a retry is asked for everywhere.
   */
  readonly headers: Readonly<Record<string, string>> = Object.freeze({ 'Retry-After': '1' });
  /** `code`: a subclass's own (`SessionCapacityError`); every adapter answers them all alike. */
  constructor(message: string, options?: { cause?: unknown }, code = 'ERR_SESSION_UNAVAILABLE') {
    super(code, message, options);
  }
}

/** Why a new session was refused: see `SessionCapacityError.reason`. */
export type CapacityReason = 'full' | 'overloaded' | 'copy-holder-full';

/**
 * A new session was refused for capacity (options `maxSessions`, `onCapacity`, `maxEventLoopDelay`):
 * this member is at its planned level, a member that would hold its copy is at its `maxSessions`, or
 * the event loop is saturated. A `SessionUnavailableError`, so every adapter answers it the same way:
 * 503 with `Retry-After: 1`, and the balancer tries another member. Sessions that exist are never
 * refused with it.
 */
export class SessionCapacityError extends SessionUnavailableError {
  /** The code, for callers that look for it on the wire (`err.remote.code`). */
  static readonly CODE = 'ERR_SESSION_CAPACITY';
  /** `full`, `overloaded` or `copy-holder-full`. */
  readonly reason: CapacityReason;
  constructor(reason: CapacityReason, message: string) {
    super(message, undefined, SessionCapacityError.CODE);
    this.reason = reason;
  }
}

/**
 * A member could not run or answer a peer's request: no handler for the message type, a handler
 * that returned something other than a Buffer, a reply over `maxFrameBytes`, or a handler that threw
 * an error without a `code` (`ERR_HANDLER`), or a request that arrived after its sender's deadline
 * and was refused unrun (`ERR_REQUEST_LATE`). The requester sees it as `ClusterRequestError`
 * `ERR_REMOTE` with this code in `err.remote.code`.
 */
export class HandlerError extends SessionClusterError {
  constructor(code: 'ERR_NO_HANDLER' | 'ERR_BAD_REPLY' | 'ERR_REPLY_TOO_LARGE' | 'ERR_HANDLER' | 'ERR_REQUEST_LATE', message: string) {
    super(code, message);
  }
}

/**
 * A login would give its principal more sessions than `maxSessionsPerPrincipal`, and `onSessionLimit`
 * is `'refuse'`: the request that set the principal fails with 409 and its write is not committed.
 */
export class SessionLimitError extends SessionClusterError {
  override readonly status: number = 409;
  /** The cap (`maxSessionsPerPrincipal`). */
  readonly limit: number;
  constructor(limit: number) {
    super('ERR_SESSION_LIMIT', `this user already has ${limit} sessions, the most allowed (maxSessionsPerPrincipal); log out elsewhere first`);
    this.limit = limit;
  }
}

/**
 * A framework adapter was asked for (`cluster.expressSession()`, `cluster.expressStore`,
 * `cluster.fastifySession`) while its framework's session package, an optional peer dependency, is
 * not installed; `err.peer` names the package to install.
 */
export class PeerDependencyError extends SessionClusterError {
  /** The npm package that is missing, e.g. `express-session`. */
  readonly peer: string;
  constructor(peer: string, usedBy: string, options?: { cause?: unknown }) {
    super('ERR_PEER_DEPENDENCY', `${usedBy} needs ${peer}, an optional peer dependency that is not installed: npm install ${peer}`, options);
    this.peer = peer;
  }
}
