/**
 * DNS membership: the A records of a name (a Kubernetes headless service) are the members'
 * addresses, re-resolved every `interval` ms and handed to static membership, which does the
 * rest. A failed resolution keeps the previous list: DNS hiccups must not evict anyone.
 */
import { promises as dns } from 'node:dns';
import type { Logger } from 'pino';

/** Options of DNS membership. */
export interface DnsMembershipOptions {
  name: string;
  /** Receiver port of every member. */
  port: number;
  /** Re-resolution interval, ms. */
  interval: number;
  /** Resolver; `dns.promises.resolve4` by default. */
  resolve4?: (name: string) => Promise<string[]>;
  /** The resolved `host:port` list, after every successful resolution. */
  onAddresses(addresses: string[]): void;
  logger: Logger;
}

/** Periodic resolution of the members' DNS name. */
export class DnsMembership {
  readonly #opts: DnsMembershipOptions;
  readonly #resolve: (name: string) => Promise<string[]>;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #last = '';

  constructor(opts: DnsMembershipOptions) {
    this.#opts = opts;
    this.#resolve = opts.resolve4 ?? ((name) => dns.resolve4(name));
  }

  /** Resolves once (so `start()` of the channel returns with peers known when DNS works), then periodically. */
  async start(): Promise<void> {
    await this.#refresh();
    if (this.#stopped) return;
    this.#timer = setInterval(() => void this.#refresh(), this.#opts.interval);
  }

  /** Stops re-resolving. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  async #refresh(): Promise<void> {
    let ips: string[];
    try {
      ips = await this.#resolve(this.#opts.name);
    } catch (err) {
      this.#opts.logger.warn({ name: this.#opts.name, err: err instanceof Error ? err.message : String(err) }, 'could not resolve the members\' DNS name; keeping the previous list');
      return;
    }
    if (this.#stopped) return;
    const addresses = [...new Set(ips)].sort().map((ip) => `${ip}:${this.#opts.port}`);
    const key = addresses.join(',');
    if (key !== this.#last) {
      this.#last = key;
      this.#opts.logger.info({ name: this.#opts.name, addresses }, 'members\' DNS name resolved');
    }
    this.#opts.onAddresses(addresses);
  }
}
