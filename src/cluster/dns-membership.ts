/**
 * DNS membership: the A (and/or AAAA) records of a name (a Kubernetes headless service) are the
 * members' addresses, re-resolved every `interval` ms and handed to static membership, which does
 * the rest. A failed resolution keeps the previous list: DNS hiccups must not evict anyone (and a
 * name that vanished from DNS evicts nobody either; only the failure detector removes members).
 */
import { Resolver } from 'node:dns/promises';
import type { Logger } from 'pino';
import type { DnsFamily, DnsLookup } from './types.js';

/** Options of DNS membership. */
export interface DnsMembershipOptions {
  name: string;
  /** Receiver port of every member. */
  port: number;
  /** Re-resolution interval, ms. */
  interval: number;
  /** Records to ask for; 4 (A) unless given. */
  family?: DnsFamily;
  /** DNS servers (`ip`, `ip:port`, `[ipv6]:port`); the system's resolver configuration when absent. */
  servers?: string[];
  /**
   * This member's own receiver: an answer naming it (every member of a headless service is in the
   * answer) is skipped rather than connected to. `hosts` empty: nothing is skipped.
   */
  self?: () => { hosts: string[]; port: number };
  /** Resolvers, replacing the DNS queries (tests inject them). */
  resolve4?: DnsLookup;
  resolve6?: DnsLookup;
  /** The resolved `host:port` list, after every successful resolution. */
  onAddresses(addresses: string[]): void;
  logger: Logger;
}

/** "The name has no records of this type", as opposed to "the server did not answer". */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

/** One spelling per address (`::1` and `0:0:0:0:0:0:0:1` are the same member). */
export function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  try {
    return new URL(`http://[${ip.replace(/^\[|\]$/g, '')}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase();
  }
}

/**
 * The `host:port` list for an answer: each address once, sorted, IPv6 in brackets, this member's own
 * receiver left out. Returns the skipped own addresses too, for the log.
 */
export function membersFromAnswer(
  ips: string[],
  port: number,
  self: { hosts: string[]; port: number } | undefined,
): { addresses: string[]; skipped: string[] } {
  const own = new Set(self !== undefined && self.port === port ? self.hosts.map(canonicalIp) : []);
  const addresses: string[] = [];
  const skipped: string[] = [];
  for (const ip of [...new Set(ips.map(canonicalIp))].sort()) {
    const address = ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
    (own.has(ip) ? skipped : addresses).push(address);
  }
  return { addresses, skipped };
}

/** Periodic resolution of the members' DNS name. */
export class DnsMembership {
  readonly #opts: DnsMembershipOptions;
  readonly #lookups: DnsLookup[];
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** A slow server must not pile queries up: one resolution at a time. */
  #resolving = false;
  #last = '';

  constructor(opts: DnsMembershipOptions) {
    this.#opts = opts;
    // A query must fail well within the interval, so the next one can try again.
    const resolver = new Resolver({ timeout: Math.max(100, Math.min(2000, Math.floor(opts.interval / 2))), tries: 2 });
    if (opts.servers !== undefined && opts.servers.length > 0) resolver.setServers(opts.servers);
    const v4 = opts.resolve4 ?? ((name: string) => resolver.resolve4(name));
    const v6 = opts.resolve6 ?? ((name: string) => resolver.resolve6(name));
    const family = opts.family ?? 4;
    this.#lookups = family === 4 ? [v4] : family === 6 ? [v6] : [v4, v6];
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
    if (this.#resolving) return;
    this.#resolving = true;
    let ips: string[] | undefined;
    try {
      ips = await this.#resolve();
    } finally {
      this.#resolving = false;
    }
    if (ips === undefined || this.#stopped) return;
    const { addresses, skipped } = membersFromAnswer(ips, this.#opts.port, this.#opts.self?.());
    const key = addresses.join(',');
    if (key !== this.#last) {
      this.#last = key;
      this.#opts.logger.info({ name: this.#opts.name, addresses, self: skipped }, 'members\' DNS name resolved');
    }
    this.#opts.onAddresses(addresses);
  }

  /**
   * Every family asked, or undefined (logged) when the answer is not to be trusted. With both
   * families, one without records is an empty half; any other failure, a timeout or a refused
   * query, keeps the previous list, since a half answer would drop the other half's members.
   */
  async #resolve(): Promise<string[] | undefined> {
    const name = this.#opts.name;
    const results = await Promise.allSettled(this.#lookups.map((lookup) => lookup(name)));
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    const empty = (err: unknown) => NO_RECORDS.has((err as { code?: string }).code ?? '');
    if (failures.length === results.length || failures.some((err) => !empty(err))) {
      const err = failures.find((e) => !empty(e)) ?? failures[0];
      this.#opts.logger.warn({ name, err: err instanceof Error ? err.message : String(err) }, 'could not resolve the members\' DNS name; keeping the previous list');
      return undefined;
    }
    return results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  }
}
