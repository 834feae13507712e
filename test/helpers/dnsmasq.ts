/**
 * A real DNS server for system tests: Debian's dnsmasq, run inside a network namespace the test
 * made, listening only on that namespace's addresses (never the host's port 53), with no system
 * configuration (`--conf-file=/dev/null`, `--no-resolv`, `--no-hosts`) and authoritative for the
 * given domain only. Its records are a hosts file of its own, rewritten and re-read on SIGHUP, the
 * way a cluster's DNS follows pods coming and going. Killed (by pid) and its files removed when the
 * test ends, also when it fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import type { NetnsHost } from './netns.js';
import { hasSystemTool } from './system-tool.js';
import { waitFor } from './wait.js';

/** Where Debian's dnsmasq-base puts the binary. */
export const DNSMASQ = '/usr/sbin/dnsmasq';

/** Names and the addresses each resolves to (A and AAAA alike). */
export type DnsRecords = Record<string, string[]>;

/**
 * True when dnsmasq is installed. Otherwise the test is skipped (false), or fails under
 * `REQUIRE_SYSTEM_TESTS=1`.
 */
export function hasDnsmasq(t: TestContext): boolean {
  return hasSystemTool(t, DNSMASQ, `needs ${DNSMASQ} (apt-get install dnsmasq-base)`);
}

function hostsFile(records: DnsRecords): string {
  return Object.entries(records)
    .flatMap(([name, ips]) => ips.map((ip) => `${ip} ${name}\n`))
    .join('');
}

/** One dnsmasq process in a namespace; `restart()` starts it again on the same files. */
export class Dnsmasq {
  /** Every line dnsmasq printed (its log, queries included), across restarts. */
  readonly lines: string[] = [];
  readonly #host: NetnsHost;
  readonly #dir: string;
  readonly #domain: string;
  #child: ChildProcess | undefined;
  #exit: Promise<unknown> = Promise.resolve();
  #reloads = 0;
  #updates: Promise<void> = Promise.resolve();

  private constructor(host: NetnsHost, dir: string, domain: string) {
    this.#host = host;
    this.#dir = dir;
    this.#domain = domain;
  }

  /** Starts dnsmasq on `host`'s addresses (port 53) answering `records` for names under `domain`. */
  static async start(t: TestContext, host: NetnsHost, domain: string, records: DnsRecords): Promise<Dnsmasq> {
    const dir = await mkdtemp(join(tmpdir(), 'ksc-dnsmasq-'));
    const d = new Dnsmasq(host, dir, domain);
    t.after(async () => {
      await d.kill();
      await rm(dir, { recursive: true, force: true });
    });
    // dnsmasq re-reads the hosts file after dropping root: it must be readable by its own user.
    await chmod(dir, 0o755);
    await d.setRecords(records, false);
    await d.restart();
    return d;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the process (again); resolves once it has read its records. */
  async restart(): Promise<void> {
    if (this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null) throw new Error('dnsmasq is running');
    const listen = [this.#host.address, this.#host.address6].filter((a) => a !== undefined).join(',');
    const args = [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      `--addn-hosts=${join(this.#dir, 'hosts')}`,
      // Every name under the domain is answered here, NXDOMAIN when absent; nothing is forwarded.
      `--local=/${this.#domain}/`,
      `--listen-address=${listen}`,
      '--bind-interfaces',
      '--port=53',
      '--local-ttl=0',
      `--pid-file=${join(this.#dir, 'dnsmasq.pid')}`,
      '--log-facility=-',
      '--log-queries',
    ];
    const from = this.lines.length;
    // `ip netns exec` execs, so the pid held is dnsmasq's own.
    const child = spawn('ip', ['netns', 'exec', this.#host.ns, DNSMASQ, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#exit = once(child, 'exit');
    const onLine = (line: string) => {
      this.lines.push(line);
      if (process.env.TEST_ECHO === '1') process.stderr.write(`[dnsmasq] ${line}\n`);
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    await waitFor('dnsmasq to read its records', () => {
      if (child.exitCode !== null) throw new Error(`dnsmasq exited ${child.exitCode}:\n${this.lines.slice(from).join('\n')}`);
      return this.lines.slice(from).some((l) => l.includes('read ') && l.includes(this.#dir));
    }, 10_000);
  }

  /**
   * Replaces the records; with `reload`, tells the running dnsmasq (SIGHUP) and waits until it re-read
   * them. Calls run one after another, so dnsmasq never reads a file another call is rewriting.
   */
  setRecords(records: DnsRecords, reload = true): Promise<void> {
    const next = this.#updates.then(() => this.#setRecords(records, reload));
    this.#updates = next.catch(() => undefined);
    return next;
  }

  async #setRecords(records: DnsRecords, reload: boolean): Promise<void> {
    await writeFile(join(this.#dir, 'hosts'), hostsFile(records), { mode: 0o644 });
    if (!reload) return;
    const from = this.lines.length;
    this.#reloads++;
    this.#child!.kill('SIGHUP');
    await waitFor(`dnsmasq to re-read its records (reload ${this.#reloads})`, () =>
      this.lines.slice(from).some((l) => l.includes('read ') && l.includes(this.#dir)),
    5000);
  }

  /** Sends a signal to dnsmasq (SIGSTOP: it stops answering; SIGCONT: it answers again). */
  signal(signal: NodeJS.Signals): void {
    this.#child?.kill(signal);
  }

  /** Kills the process (if running) and waits for its exit. */
  async kill(): Promise<void> {
    const c = this.#child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGKILL');
    await this.#exit;
  }

  /** Queries for `name` received from `from` (dnsmasq's `--log-queries` lines). */
  queriesFrom(from: string, name: string): number {
    return this.lines.filter((l) => l.includes('query[') && l.includes(` ${name} from ${from}`)).length;
  }
}
