/**
 * Partitions between members in network namespaces, with nftables: each member drops what comes
 * from, and what goes to, the addresses of the members on the other side. Multicast heartbeats
 * carry the sender's address, so the input rule cuts them too. The bridge's host address (where the
 * clients are) is never in a cut set: clients still reach every member. Heal deletes the tables.
 */
import { execFileSync } from 'node:child_process';
import type { NetnsHost } from '../helpers/netns.js';

const TABLE = 'kscchaos';

/** Why nftables cannot be used here, or undefined. */
export function nftUnavailable(): string | undefined {
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'nft (Debian package nftables) is not installed';
  }
}

function nft(host: NetnsHost, args: string[], input?: string): void {
  execFileSync(host.exec[0], [...host.exec.slice(1), 'nft', ...args], { input, stdio: ['pipe', 'ignore', 'pipe'] });
}

/**
 * How a cut answers TCP. `false`: dropped (each side meets silence). `true`: rejected with a TCP reset
 * both ways (a firewall that rejects: each side sees ECONNRESET or ECONNREFUSED at once, as if the
 * other had died). `'first-rejects'`: the first group's firewall rejects what comes in, so the other
 * groups see resets at once while the first meets silence, and the two sides remove each other
 * seconds apart (the `partition-reset-in` fault; the simulator's `lease-race`). The rest (multicast
 * heartbeats) is always dropped.
 */
export type CutReset = boolean | 'first-rejects';

/** Cuts the hosts of `groups` (indexes into `hosts`) apart from each other's groups. */
export function cut(hosts: readonly NetnsHost[], groups: readonly (readonly number[])[], reset: CutReset = false): void {
  // A reject in the output hook answers the local socket with a reset (nothing crosses the wire);
  // in 'first-rejects' only the other groups reject, toward the first, and drop what comes from it.
  const tcp = (dir: 'saddr' | 'daddr', g: number) => {
    const rejects = reset === true || (reset === 'first-rejects' && g > 0 && dir === 'daddr');
    return rejects ? `ip ${dir} @cut meta l4proto tcp reject with tcp reset; ` : '';
  };
  for (const [g, group] of groups.entries()) {
    // In 'first-rejects', the other groups are cut only from the first (they are one side).
    const apart = reset === 'first-rejects' && g > 0 ? groups[0] : hosts.map((_, i) => i).filter((i) => !group.includes(i));
    const others = apart.map((i) => hosts[i].address);
    for (const i of group) {
      nft(
        hosts[i],
        ['-f', '-'],
        `table inet ${TABLE} {
  set cut { type ipv4_addr; elements = { ${others.join(', ')} } }
  chain in { type filter hook input priority 0; policy accept; ${tcp('saddr', g)}ip saddr @cut drop; }
  chain out { type filter hook output priority 0; policy accept; ${tcp('daddr', g)}ip daddr @cut drop; }
}
`,
      );
    }
  }
}

/**
 * A one-way cut of TCP alone: `to` drops the segments that come from `from` (multicast still passes,
 * so nobody is removed, and `from`'s kernel retransmits what it wrote). `heal` removes it.
 */
export function dropTcpFrom(to: NetnsHost, from: NetnsHost): void {
  nft(to, ['-f', '-'], `table inet ${TABLE} {\n  chain in { type filter hook input priority 0; policy accept; ip saddr ${from.address} meta l4proto tcp drop; }\n}\n`);
}

/** Removes every cut; ignores hosts that have none. */
export function heal(hosts: readonly NetnsHost[]): void {
  for (const h of hosts) {
    try {
      nft(h, ['delete', 'table', 'inet', TABLE]);
    } catch {
      // no cut on this host
    }
  }
}
