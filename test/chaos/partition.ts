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
 * Cuts the hosts of `groups` (indexes into `hosts`) apart from each other's groups. `reset`: TCP is
 * rejected with a TCP reset both ways (a firewall that rejects: each side sees ECONNRESET or
 * ECONNREFUSED at once, as if the other had died), the rest (multicast heartbeats) dropped.
 */
export function cut(hosts: readonly NetnsHost[], groups: readonly (readonly number[])[], reset = false): void {
  const tcp = (dir: 'saddr' | 'daddr') => (reset ? `ip ${dir} @cut meta l4proto tcp reject with tcp reset; ` : '');
  for (const group of groups) {
    const others = hosts.filter((_, i) => !group.includes(i)).map((h) => h.address);
    for (const i of group) {
      nft(
        hosts[i],
        ['-f', '-'],
        `table inet ${TABLE} {
  set cut { type ipv4_addr; elements = { ${others.join(', ')} } }
  chain in { type filter hook input priority 0; policy accept; ${tcp('saddr')}ip saddr @cut drop; }
  chain out { type filter hook output priority 0; policy accept; ${tcp('daddr')}ip daddr @cut drop; }
}
`,
      );
    }
  }
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
