import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NO_ENTRIES, entryValues, mergeEntries, packEntries, packedBytes, packedFrom, packedValues, patchEntries, unpackEntries, type Packed } from '../../src/replication/packed-entries.js';

const e = (key: string, value: string | Buffer) => ({ key, value: typeof value === 'string' ? Buffer.from(value) : value });
const text = (p: Packed) => unpackEntries(p).map((x) => [x.key, x.value.toString('latin1')]);

test('entries round-trip in order, with long values (multi-byte lengths) and non-ASCII keys', () => {
  const long = Buffer.alloc(70_000, 7);
  const p = packEntries([e('a', '1'), e('clé ünïcode 🍪', long), e('', ''), e('b', 'two')]);
  const back = unpackEntries(p);
  assert.deepEqual(back.map((x) => x.key), ['a', 'clé ünïcode 🍪', '', 'b']);
  assert.deepEqual(back[1].value, long);
  assert.equal(back[2].value.length, 0);
  assert.equal(back.reduce((n, x) => n + x.value.length, 0), 1 + long.length + 0 + 3);
  assert.deepEqual(entryValues(p).map((v) => v.length), [1, 70_000, 0, 3]);
  assert.equal(unpackEntries(NO_ENTRIES).length, 0);
  assert.equal(packEntries([]), NO_ENTRIES);
});

test('a packed buffer is its own memory: changing the source buffers later changes nothing', () => {
  const frame = Buffer.from('xxAByy');
  const p = packEntries([{ key: 'k', value: frame.subarray(2, 4) }]);
  frame.fill(0);
  assert.deepEqual(text(p), [['k', 'AB']], 'no view into the frame it came from');
});

test('patching replaces in place, appends new keys, removes, and a key set twice keeps its last value', () => {
  const p = packEntries([e('a', '1'), e('b', '2'), e('c', '3')]);
  assert.deepEqual(text(patchEntries(p, [e('b', 'B'), e('d', 'D')], ['a'])), [['b', 'B'], ['c', '3'], ['d', 'D']]);
  assert.deepEqual(text(patchEntries(p, [e('x', '1')], ['x'])), [['a', '1'], ['b', '2'], ['c', '3']], 'a removal wins over a set of the same key');
  assert.equal(patchEntries(p, [], []), p, 'nothing to change: the same buffer');
  assert.deepEqual(
    mergeEntries(unpackEntries(p), [e('b', 'B')], ['c']).map((x) => [x.key, x.value.toString()]),
    [['a', '1'], ['b', 'B']],
    'a replaced key keeps its place, once, with its new value',
  );
  assert.deepEqual(text(packEntries([e('a', '1'), e('b', '2'), e('a', '3')])), [['a', '3'], ['b', '2']]);
  assert.deepEqual(text(p), [['a', '1'], ['b', '2'], ['c', '3']], 'the original never changes');
});

test('truncated bytes are a RangeError, never a silent short read', () => {
  const p = packEntries([e('key', 'value')]);
  for (let cut = 1; cut < p.length; cut++) assert.throws(() => unpackEntries(p.slice(0, cut)), RangeError, `cut at ${cut}`);
});

test('many entries with a repeated key: the last value, at the first place, as with few', () => {
  const many = Array.from({ length: 20 }, (_, i) => e(`k${i}`, String(i)));
  const p = packEntries([...many, e('k3', 'three'), e('ü', 'x')]);
  const back = text(p);
  assert.equal(back.length, 21);
  assert.deepEqual(back[3], ['k3', 'three']);
  assert.deepEqual(back[20], ['ü', 'x']);
});

test('packed bytes as a state transfer page carries them: checked, their values found, and kept as they are', () => {
  const p = packEntries([e('a', '1'), e('clé', 'deux')]);
  const bytes = packedBytes(p);
  assert.deepEqual(packedValues(bytes).map((v) => v.toString()), ['1', 'deux']);
  assert.equal(packedFrom(bytes), p, 'the same packed entries back');
  assert.deepEqual(packedValues(Buffer.alloc(0)), []);
  const firstEntry = 4; // 1 'a' 1 '1': a cut there leaves one whole entry
  for (let cut = 1; cut < bytes.length; cut++) {
    if (cut === firstEntry) assert.equal(packedValues(bytes.subarray(0, cut)).length, 1);
    else assert.throws(() => packedValues(bytes.subarray(0, cut)), RangeError, `cut at ${cut}`);
  }
  assert.throws(() => packedValues(Buffer.from([0x05, 0x61])), RangeError, 'a key longer than the bytes');
});
