/**
 * Separate hosts for system tests: network namespaces on a Linux bridge, made with iproute2.
 * Everything is created with names unique to this test process (and `tag`) and a random
 * <prefix>.x.0/24 subnet (10.200 unless given; with `ipv6`, also a random fd17:…::/64), and deleted
 * in `destroy()`; the machine's own interfaces and routes are never touched (the bridge has no
 * address unless `addHostAddress`, so nothing routes between it and the host).
 */
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why namespace tests cannot run here, or undefined when they can. */
export function systemTestsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'not running as root (network namespaces and bridges need CAP_NET_ADMIN)';
  try {
    ip(['-V']);
    execFileSync('bridge', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 (the `ip` and `bridge` commands) is not installed';
  }
  const probe = `kscprobe${process.pid}`.slice(0, 15);
  try {
    ip(['netns', 'add', probe]);
    ip(['netns', 'del', probe]);
  } catch (err) {
    return `cannot create a network namespace here: ${(err as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

/**
 * True when namespace tests can run. Otherwise fails the test under `REQUIRE_SYSTEM_TESTS=1` (CI,
 * where a skip would prove nothing), or marks it skipped with the reason and returns false.
 */
export function namespacesAvailable(t: TestContext, what: string): boolean {
  const why = systemTestsUnavailable();
  if (why === undefined) return true;
  if (process.env.REQUIRE_SYSTEM_TESTS === '1') throw new Error(`REQUIRE_SYSTEM_TESTS=1 but ${what} cannot run: ${why}`);
  t.skip(`needs root and iproute2: ${why}`);
  return false;
}

/** One host: a namespace with one veth into the bridge. */
export interface NetnsHost {
  /** Namespace name, for `ip netns exec`. */
  readonly ns: string;
  /** The host's IPv4 address on the bridge. */
  readonly address: string;
  /** Its IPv6 address on the bridge (networks created with `ipv6`). */
  readonly address6?: string;
  /** Bridge-side end of the host's veth: set down to cut the host off. */
  readonly bridgePort: string;
  /** Prefix that runs a command inside the namespace (it execs, so the pid is the command's). */
  readonly exec: string[];
}

/** How `BridgeNetwork.create` lays a network out. */
export interface BridgeNetworkOptions {
  /** First two octets of the IPv4 subnet: tests that may run at once use different ones. */
  prefix?: string;
  /** Also an IPv6 ULA /64 (addresses `<subnet6>::<i>`). */
  ipv6?: boolean;
  /** One character or two, for a second network in the same process (names must differ). */
  tag?: string;
}

/** A bridge with `n` namespaces on it. */
export class BridgeNetwork {
  readonly bridge: string;
  readonly hosts: NetnsHost[] = [];
  readonly subnet: string;
  /** The IPv6 /64 without its `::`, when created with `ipv6`. */
  readonly subnet6: string | undefined;

  private constructor(bridge: string, subnet: string, subnet6: string | undefined) {
    this.bridge = bridge;
    this.subnet = subnet;
    this.subnet6 = subnet6;
  }

  /** Creates the bridge and `n` hosts; on any failure, removes what was made and throws. */
  static create(n: number, options: BridgeNetworkOptions = {}): BridgeNetwork {
    const tag = `${process.pid % 100_000}${options.tag ?? ''}`;
    const subnet = `${options.prefix ?? '10.200'}.${1 + Math.floor(Math.random() * 250)}`;
    const hex4 = () => Math.floor(Math.random() * 0x10000).toString(16);
    const subnet6 = options.ipv6 === true ? `fd17:${hex4()}:${hex4()}:${hex4()}` : undefined;
    const net = new BridgeNetwork(`kscbr${tag}`, subnet, subnet6);
    try {
      ip(['link', 'add', net.bridge, 'type', 'bridge']);
      // Flood multicast to every port (no IGMP querier here), and keep host firewalls out of it.
      ip(['link', 'set', net.bridge, 'type', 'bridge', 'mcast_snooping', '0']);
      try {
        ip(['link', 'set', net.bridge, 'type', 'bridge', 'nf_call_iptables', '0']);
      } catch {
        // Older kernels lack the per-bridge switch; without br_netfilter rules it does not matter.
      }
      ip(['link', 'set', net.bridge, 'up']);
      for (let i = 1; i <= n; i++) {
        const ns = `ksc-${tag}-${i}`;
        const bridgePort = `kscv${tag}${i}`;
        const inside = `kscp${tag}${i}`;
        const address = `${subnet}.${i}`;
        const address6 = subnet6 === undefined ? undefined : `${subnet6}::${i}`;
        ip(['netns', 'add', ns]);
        net.hosts.push({ ns, address, ...(address6 !== undefined ? { address6 } : {}), bridgePort, exec: ['ip', 'netns', 'exec', ns] });
        ip(['link', 'add', bridgePort, 'type', 'veth', 'peer', 'name', inside]);
        ip(['link', 'set', bridgePort, 'master', net.bridge]);
        ip(['link', 'set', bridgePort, 'up']);
        ip(['link', 'set', inside, 'netns', ns]);
        ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', inside]);
        // nodad: usable at once, rather than after duplicate address detection (a second or two).
        if (address6 !== undefined) ip(['-n', ns, 'addr', 'add', `${address6}/64`, 'dev', inside, 'nodad']);
        ip(['-n', ns, 'link', 'set', 'lo', 'up']);
        ip(['-n', ns, 'link', 'set', inside, 'up']);
        // Multicast leaves through the bridge veth (there is no default route in the namespace).
        ip(['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', inside]);
      }
    } catch (err) {
      net.destroy();
      throw err;
    }
    return net;
  }

  /**
   * Gives the bridge an address (`<subnet>.254`), so that this test process can reach the hosts (their
   * HTTP servers) directly. The route it adds covers only this test's own subnet and goes with the
   * bridge in `destroy()`.
   */
  addHostAddress(): string {
    const address = `${this.subnet}.254`;
    ip(['addr', 'add', `${address}/24`, 'dev', this.bridge]);
    if (this.subnet6 !== undefined) ip(['addr', 'add', `${this.subnet6}::fe/64`, 'dev', this.bridge, 'nodad']);
    return address;
  }

  /** Cuts host `i` (0-based) off the bridge, or reconnects it. */
  setLink(i: number, up: boolean): void {
    ip(['link', 'set', this.hosts[i].bridgePort, up ? 'up' : 'down']);
  }

  /**
   * Stops (or restores) multicast delivery on every bridge port while unicast, TCP included,
   * still flows: the bridge no longer floods multicast frames to the hosts.
   */
  setMulticast(on: boolean): void {
    for (const h of this.hosts) execFileSync('bridge', ['link', 'set', 'dev', h.bridgePort, 'mcast_flood', on ? 'on' : 'off'], { stdio: 'ignore' });
  }

  /** Deletes the namespaces (which deletes their veths) and the bridge; ignores what is already gone. */
  destroy(): void {
    for (const h of this.hosts) {
      try {
        ip(['netns', 'del', h.ns]);
      } catch {
        // already gone
      }
      try {
        ip(['link', 'del', h.bridgePort]);
      } catch {
        // deleted with the namespace
      }
    }
    try {
      ip(['link', 'del', this.bridge]);
    } catch {
      // never made
    }
  }
}
