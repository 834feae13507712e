/**
 * Our outgoing connections, one per peer address, kept while something holds the address: a
 * discovered member (by its id) or the static/DNS list (`static`). The last release closes it.
 */
import { ClusterRequestError } from '../errors.js';
import type { PeerConnection } from './peer-connection.js';

/** Splits `host:port` (or `[v6]:port`). */
export function parseAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(i + 1)) };
}

/** Outgoing connections by address, with their holders. */
export class ConnectionPool {
  readonly #create: (host: string, port: number) => PeerConnection;
  readonly #entries = new Map<string, { connection: PeerConnection; holders: Set<string> }>();

  /** @param create makes (but does not connect) the connection to an address. */
  constructor(create: (host: string, port: number) => PeerConnection) {
    this.#create = create;
  }

  /** The connection to `address`, made on first use; `holder` keeps it open. */
  acquire(address: string, holder: string): PeerConnection {
    let e = this.#entries.get(address);
    if (e === undefined) {
      const { host, port } = parseAddress(address);
      e = { connection: this.#create(host, port), holders: new Set() };
      this.#entries.set(address, e);
    }
    e.holders.add(holder);
    return e.connection;
  }

  /** Drops `holder`'s hold; closes the connection (rejecting its requests) when nobody holds it. */
  release(address: string, holder: string, error?: ClusterRequestError): void {
    const e = this.#entries.get(address);
    if (e === undefined) return;
    e.holders.delete(holder);
    if (e.holders.size > 0) return;
    this.#entries.delete(address);
    e.connection.close(error ?? new ClusterRequestError('ERR_MEMBER_GONE', `no member at ${address} any more`));
  }

  /** The connection to `address`, if held. */
  get(address: string): PeerConnection | undefined {
    return this.#entries.get(address)?.connection;
  }

  /** Every held connection. */
  connections(): PeerConnection[] {
    return [...this.#entries.values()].map((e) => e.connection);
  }

  /** Closes everything (this member is stopping). */
  closeAll(error: ClusterRequestError): void {
    for (const e of this.#entries.values()) e.connection.close(error);
    this.#entries.clear();
  }
}
