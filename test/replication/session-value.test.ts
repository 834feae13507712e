import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cloneValue, diffSession, valuesEqual } from '../../src/replication/session-value.js';

class Point {
  constructor(
    public x: number,
    public y: number,
  ) {}
}

test('diffSession replicates only the keys a request changed or removed', () => {
  const read = { user: { id: 1, roles: ['a'] }, cart: [1, 2], when: new Date(5), bytes: Buffer.from('ab') };
  const written = { user: { id: 1, roles: ['a'] }, cart: [1, 2, 3], when: new Date(5), bytes: Buffer.from('ab'), added: true };
  assert.deepEqual(diffSession(read, written), { set: { cart: [1, 2, 3], added: true }, removed: [] });
  assert.deepEqual(diffSession(read, { user: read.user }), { set: {}, removed: ['cart', 'when', 'bytes'] });
  assert.deepEqual(diffSession({ a: 1 }, { a: undefined }), { set: {}, removed: ['a'] }, 'undefined is absent, as in JSON');
});

test('valuesEqual tells Dates, bytes, classes and plain objects apart', () => {
  assert.ok(valuesEqual(new Date(1), new Date(1)));
  assert.ok(!valuesEqual(new Date(1), new Date(2)));
  assert.ok(!valuesEqual(new Date(1), 1));
  assert.ok(valuesEqual(Buffer.from('x'), Buffer.from('x')));
  assert.ok(!valuesEqual(Buffer.from('x'), new Uint8Array([120])), 'a Buffer is not a Uint8Array');
  assert.ok(valuesEqual(new Point(1, 2), new Point(1, 2)));
  assert.ok(!valuesEqual(new Point(1, 2), { x: 1, y: 2 }), 'a class instance is not a plain object');
  assert.ok(!valuesEqual({ a: 1 }, { a: 1, b: 2 }));
  assert.ok(!valuesEqual([1], [1, 2]));
});

test('cloneValue makes a deep, equal, independent copy that keeps prototypes', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const c = cloneValue(v);
      assert.ok(valuesEqual(v, c));
      assert.deepEqual(c, v);
    }),
  );
  const original = { p: new Point(1, 2), list: [{ d: new Date(3) }], b: Buffer.from('q') };
  const copy = cloneValue(original);
  assert.ok(copy.p instanceof Point);
  copy.list[0].d.setTime(9);
  copy.b[0] = 0;
  assert.equal(original.list[0].d.getTime(), 3);
  assert.equal(original.b.toString(), 'q');
});

test('diff of any value against itself is empty; against {} it sets every key', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string({ minLength: 1 }), fc.jsonValue()), (s) => {
      assert.deepEqual(diffSession(s, cloneValue(s)), { set: {}, removed: [] });
      const d = diffSession({}, s);
      assert.deepEqual(Object.keys(d.set).sort(), Object.keys(s).filter((k) => s[k] !== undefined).sort());
    }),
  );
});

test('a "__proto__" own key (JSON.parse makes them) is copied and diffed as data, never as a prototype', () => {
  const v = JSON.parse('{"a":{"__proto__":{"x":1}},"__proto__":2}') as Record<string, unknown>;
  const c = cloneValue(v);
  assert.equal(Object.getPrototypeOf(c), Object.prototype);
  assert.equal(Object.getPrototypeOf(c.a), Object.prototype);
  assert.deepEqual(Object.keys(c.a as object), ['__proto__']);
  assert.ok(valuesEqual(v, c));
  const d = diffSession({}, v);
  assert.equal(Object.getPrototypeOf(d.set), Object.prototype);
  assert.deepEqual(Object.keys(d.set).sort(), ['__proto__', 'a']);
});
