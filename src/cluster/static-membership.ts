/**
 * Static membership (Tomcat's StaticMembershipService): peers are a list of receiver addresses,
 * and who is there is learned from the handshake (liveness is the channel's TCP heartbeat). Our
 * own address may be in the list (one list for every member, as in a Kubernetes manifest): the
 * handshake reveals it and it is skipped from then on.
 */
import type { Logger } from 'pino';
import type { ConnectionPool } from './connection-pool.js';
import { shortId } from './messages.js';
import type { PeerConnection } from './peer-connection.js';
import type { MemberInfo } from './types.js';

/** Holder name of the static list in the connection pool. */
export const STATIC_HOLDER = 'static';

/** Options of static membership. */
export interface StaticMembershipOptions {
  addresses: string[];
  selfId: string;
  pool: ConnectionPool;
  /** A member answered the handshake at `address`. */
  onMember(member: MemberInfo, address: string): void;
  logger: Logger;
}

/** A fixed (or, through DNS, periodically replaced) list of peer addresses. */
export class StaticMembership {
  readonly #opts: StaticMembershipOptions;
  readonly #wanted = new Map<string, { connection: PeerConnection; onReady: (m: MemberInfo) => void }>();
  /** Addresses where we found ourselves. */
  readonly #self = new Set<string>();
  #addresses: string[];

  constructor(opts: StaticMembershipOptions) {
    this.#opts = opts;
    this.#addresses = [...new Set(opts.addresses)];
  }

  /** Connects to every address. */
  start(): void {
    this.setAddresses(this.#addresses);
  }

  /** Replaces the list (DNS re-resolution): new addresses are connected, vanished ones released. */
  setAddresses(addresses: string[]): void {
    const next = new Set(addresses);
    this.#addresses = [...next];
    for (const [address, w] of this.#wanted) {
      if (next.has(address)) continue;
      w.connection.off('ready', w.onReady);
      this.#wanted.delete(address);
      this.#opts.pool.release(address, STATIC_HOLDER);
    }
    for (const address of next) {
      if (this.#wanted.has(address) || this.#self.has(address)) continue;
      const connection = this.#opts.pool.acquire(address, STATIC_HOLDER);
      const onReady = (m: MemberInfo) => this.#onReady(address, m);
      connection.on('ready', onReady);
      this.#wanted.set(address, { connection, onReady });
      if (connection.ready && connection.remote !== undefined) this.#onReady(address, connection.remote);
      else connection.connectNow();
    }
  }

  /** Releases every address. */
  stop(): void {
    this.setAddresses([]);
  }

  #onReady(address: string, member: MemberInfo): void {
    if (member.id === this.#opts.selfId) {
      this.#opts.logger.debug({ address }, 'static member address is this member; skipping it');
      this.#self.add(address);
      const w = this.#wanted.get(address);
      if (w !== undefined) w.connection.off('ready', w.onReady);
      this.#wanted.delete(address);
      this.#opts.pool.release(address, STATIC_HOLDER);
      return;
    }
    this.#opts.logger.debug({ address, peer: member.route, id: shortId(member.id) }, 'static peer answered');
    this.#opts.onMember(member, address);
  }
}
