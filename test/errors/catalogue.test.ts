/**
 * The error codes as a checked catalogue, the way fastify's `test/internals/errors.test.js` keeps
 * `lib/errors.js` and `docs/Reference/Errors.md` in step: every code used in `src/` is declared on a
 * class in `src/errors.ts`, every declared code has one row in README.md's "Errors" table, and each
 * row's class, code and status are what that class really gives.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import * as errors from '../../src/errors.js';
import { ClusterRequestError, SessionClusterError } from '../../src/errors.js';
import { createClusterChannel } from '../../src/cluster/index.js';
import type { ClusterChannel } from '../../src/cluster/index.js';
import { channelOptions, randomMulticast } from '../helpers/cluster-harness.js';
import { waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ERRORS_TS = join(ROOT, 'src', 'errors.ts');
const CODE = /^ERR_[A-Z0-9_]+$/;

/** Code to the class of `src/errors.ts` that declares it: `super('ERR_X', ...)` or a `code` parameter's union of literals. */
function declaredCodes(): { byCode: Map<string, string>; problems: string[] } {
  const file = ts.createSourceFile(ERRORS_TS, readFileSync(ERRORS_TS, 'utf8'), ts.ScriptTarget.Latest, true);
  const byCode = new Map<string, string>();
  const problems: string[] = [];
  const literals = (node: ts.Node, found: string[] = []): string[] => {
    if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && CODE.test(node.text)) found.push(node.text);
    node.forEachChild((child) => void literals(child, found));
    return found;
  };
  for (const statement of file.statements) {
    if (!ts.isClassDeclaration(statement) || statement.name === undefined) {
      for (const code of literals(statement)) problems.push(`${code} is outside any class in src/errors.ts: declare it on an error class`);
      continue;
    }
    const name = statement.name.text;
    const codes = literals(statement);
    // The base class takes any code; every other class must name its own.
    if (codes.length === 0 && name !== SessionClusterError.name) problems.push(`class ${name} in src/errors.ts declares no ERR_ code`);
    for (const code of codes) {
      const other = byCode.get(code);
      if (other !== undefined && other !== name) problems.push(`${code} is declared by both ${other} and ${name}: one class per code`);
      byCode.set(code, name);
    }
  }
  return { byCode, problems };
}

/** Every `'ERR_...'` literal (quotes or backticks, comments included) in `src/**\/*.ts`, with where. */
function usedCodes(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
          for (const m of line.matchAll(/(['"`])(ERR_[A-Z0-9_]+)\1/g)) {
            const where = used.get(m[2]) ?? [];
            where.push(`${relative(ROOT, path)}:${i + 1}`);
            used.set(m[2], where);
          }
        });
      }
    }
  };
  walk(join(ROOT, 'src'));
  return used;
}

interface Row {
  cls: string;
  code: string;
  status: number;
  when: string;
  line: number;
}

/** The rows of the table under README.md's "## Errors": `| \`Class\` | \`ERR_X\` | status | when |`. */
function readmeRows(): Row[] {
  const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n');
  const start = lines.indexOf('## Errors');
  assert.notEqual(start, -1, 'README.md has no "## Errors" section');
  const rows: Row[] = [];
  for (let i = start + 1; i < lines.length && !lines[i].startsWith('## '); i++) {
    if (!lines[i].startsWith('| `')) continue;
    const cells = lines[i].split('|').slice(1, -1).map((c) => c.trim());
    assert.equal(cells.length, 4, `README.md:${i + 1}: expected 4 cells (class, code, status, when), got ${cells.length}`);
    const [cls, code, status, when] = cells;
    rows.push({ cls: cls.replaceAll('`', ''), code: code.replaceAll('`', ''), status: Number(status), when, line: i + 1 });
  }
  return rows;
}

type ErrorClass = new (...args: unknown[]) => SessionClusterError;

function errorClass(name: string): ErrorClass | undefined {
  const value = (errors as Record<string, unknown>)[name];
  return typeof value === 'function' && value.prototype instanceof SessionClusterError ? (value as ErrorClass) : undefined;
}

test('every error code used in src/ is declared on a class in src/errors.ts', () => {
  const { byCode, problems } = declaredCodes();
  assert.deepEqual(problems, []);
  const missing = [...usedCodes()]
    .filter(([code]) => !byCode.has(code))
    .map(([code, where]) => `${code} (${where.join(', ')}) is not in src/errors.ts: add it to an error class there`);
  assert.deepEqual(missing, []);
  // The grep really sees the sources: the codes moved out of cluster/ are among those it finds.
  const used = usedCodes();
  for (const code of ['ERR_NO_HANDLER', 'ERR_BAD_REPLY', 'ERR_REPLY_TOO_LARGE', 'ERR_HANDLER', 'ERR_SESSION_UNAVAILABLE']) {
    assert.ok(byCode.has(code) && used.has(code), `${code} should be declared in src/errors.ts and used in src/`);
  }
});

test('README.md lists every code of src/errors.ts once, with the class, code and status the class gives', () => {
  const { byCode } = declaredCodes();
  const rows = readmeRows();
  const problems: string[] = [];
  for (const [code, cls] of byCode) {
    const n = rows.filter((r) => r.code === code).length;
    if (n !== 1) problems.push(`${code} (${cls}) has ${n} rows in README.md's Errors table: give it exactly one`);
  }
  for (const row of rows) {
    const at = `README.md:${row.line}`;
    const declaredBy = byCode.get(row.code);
    if (declaredBy === undefined) {
      problems.push(`${at}: ${row.code} is not in src/errors.ts: remove the row or declare the code`);
      continue;
    }
    if (declaredBy !== row.cls) problems.push(`${at}: ${row.code} belongs to ${declaredBy}, the table says ${row.cls}`);
    if (row.when === '') problems.push(`${at}: say when ${row.code} happens`);
    const Cls = errorClass(row.cls);
    if (Cls === undefined) {
      problems.push(`${at}: ${row.cls} is not an error class exported by src/errors.ts`);
      continue;
    }
    // A class with a `code` parameter takes the row's code; any other ignores it and sets its own.
    const err = new Cls(row.code, 'catalogue test');
    if (err.code !== row.code) problems.push(`${at}: ${row.cls} has code ${err.code}, the table says ${row.code}`);
    if (err.status !== row.status) problems.push(`${at}: ${row.cls} has status ${err.status}, the table says ${row.status}`);
    if (err.name !== row.cls || err.expose) problems.push(`${at}: ${row.cls} should be named after its class and never exposed`);
  }
  assert.deepEqual(problems, []);
  // Every exported error class is in the table (a class with no row would slip past the code check only if it declared no code).
  const classes = Object.keys(errors).filter((k) => errorClass(k) !== undefined);
  assert.deepEqual(classes.filter((k) => !rows.some((r) => r.cls === k)), []);
});

test('a HandlerError code reaches the requester as ClusterRequestError ERR_REMOTE with remote.code', async (t) => {
  const channels: ClusterChannel[] = [];
  t.after(() => Promise.all(channels.map((c) => c.stop())));
  const multicast = randomMulticast();
  const extra = { maxFrameBytes: 64 * 1024 };
  const a = createClusterChannel(channelOptions('a', { multicast }, extra));
  const b = createClusterChannel(channelOptions('b', { multicast }, extra));
  channels.push(a, b);
  // Plain-JS handlers may return or throw anything: the casts stand for such callers.
  b.handle('string-reply', () => 'not a buffer' as unknown as Buffer);
  b.handle('huge-reply', () => Buffer.alloc(128 * 1024));
  b.handle('throws-uncoded', () => {
    throw new Error('plain failure');
  });
  b.handle('throws-string', () => {
    throw 'a thrown string' as unknown as Error;
  });
  await Promise.all([a.start(), b.start()]);
  const peer = await waitFor('a to see b', () => a.members().find((m) => m.route === 'b'), 5000);
  const { byCode } = declaredCodes();
  const cases: [type: string, code: string, message: RegExp][] = [
    ['no-such-type', 'ERR_NO_HANDLER', /no handler for message type "no-such-type"/],
    ['string-reply', 'ERR_BAD_REPLY', /returned string, not a Buffer/],
    ['huge-reply', 'ERR_REPLY_TOO_LARGE', /maxFrameBytes/],
    ['throws-uncoded', 'ERR_HANDLER', /^plain failure$/],
    ['throws-string', 'ERR_HANDLER', /^a thrown string$/],
  ];
  for (const [type, code, message] of cases) {
    await assert.rejects(a.request(peer.id, type, Buffer.alloc(0)), (err: unknown) => {
      assert.ok(err instanceof ClusterRequestError, `${type}: ${String(err)}`);
      assert.equal(err.code, 'ERR_REMOTE');
      assert.equal(err.remote?.code, code, type);
      assert.match(err.remote.message, message);
      assert.equal(byCode.get(code), 'HandlerError');
      return true;
    });
  }
});
