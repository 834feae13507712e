/**
 * Starts a member process (a real Node process running a real Koa app) and controls it: wait for
 * it to listen, read its log lines, kill it with any signal. Every process started is killed when
 * the test ends (`t.after`), also when it fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';

export interface MemberProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Every line the process printed (stdout and stderr). */
  readonly lines: string[];
  /** Resolves with the first line (printed so far or later) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when the process exited. */
  exited(): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
  readonly alive: boolean;
}

/** Spawns `node --import tsx <script>` with `env` added to the environment. */
export function startProcess(
  t: TestContext | undefined,
  name: string,
  script: string,
  env: Record<string, string>,
  options: { command?: string[]; echo?: boolean } = {},
): MemberProcess {
  const argv = [...(options.command ?? []), process.execPath, '--import', 'tsx', script];
  const child = spawn(argv[0], argv.slice(1), {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  let exitedFlag = false;
  const exitPromise = once(child, 'exit').then(() => {
    exitedFlag = true;
  });
  const onLine = (line: string) => {
    lines.push(line);
    if (options.echo === true || process.env.TEST_ECHO === '1') process.stderr.write(`[${name}] ${line}\n`);
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  const proc: MemberProcess = {
    name,
    pid: child.pid!,
    child,
    lines,
    get alive() {
      return !exitedFlag;
    },
    waitForLine(pattern, timeoutMs = 15_000) {
      const found = lines.find((l) => pattern.test(l));
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`));
        }, timeoutMs);
        const waiter = {
          pattern,
          resolve: (l: string) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        waiters.push(waiter);
        void exitPromise.then(() => {
          if (waiters.includes(waiter)) {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(waiter), 1);
            reject(new Error(`${name} exited before printing ${pattern}; last lines:\n${lines.slice(-15).join('\n')}`));
          }
        });
      });
    },
    exited: () => exitPromise,
    kill(signal = 'SIGKILL') {
      if (!exitedFlag) {
        try {
          process.kill(child.pid!, signal);
        } catch {
          // already gone
        }
      }
    },
  };
  t?.after(async () => {
    if (!proc.alive) return;
    proc.kill('SIGCONT');
    proc.kill('SIGKILL');
    await proc.exited();
  });
  return proc;
}
