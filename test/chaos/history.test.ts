/**
 * The chaos checker on hand-written histories: what it must flag, and the interleavings of abandoned
 * requests it must accept (a false positive would make the chaos run worthless).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { History, type Answer, type Counter, type SessionHistory } from './history.js';

const range = (h: History) => ({ min: h.liveRange().min, max: h.liveRange().max });

/** A history on a fake clock that advances 10 ms per event. */
function setup(excuse?: (member: string) => string | undefined) {
  let t = 0;
  const h = new History(
    () => (t += 10),
    (member) => excuse?.(member),
  );
  const now = () => (t += 10);
  const ok = (body: Answer['body']): Answer => ({ status: 200, body: { route: 'node1', ...body } });
  const login = (token = 'L1', req = 'r0', base = 'base1'): SessionHistory => {
    h.loginSent();
    const sent = now();
    return h.loginAcked('c1', token, req, base, sent, ok({ loggedIn: true, login: token, c: { n: 0, w: req } }));
  };
  /** An acknowledged increment that read `prev`. */
  const incr = (s: SessionHistory, req: string, prev: Counter) => {
    const before = h.incrSent(s);
    const sent = now();
    return h.answered(s, 'incr', req, sent, before, ok({ loggedIn: true, login: s.token, prev, c: { n: prev.n + 1, w: req } }));
  };
  const abandon = (s: SessionHistory, req: string) => {
    h.incrSent(s);
    h.incrAbandoned(s, req, now(), 'node1');
  };
  const read = (s: SessionHistory, req: string, c: Counter) => h.answered(s, 'get', req, now(), s.incrsSent, ok({ loggedIn: true, login: s.token, c }));
  const promises = () => h.violations.map((v) => v.promise);
  return { h, now, ok, login, incr, abandon, read, promises };
}

test('acknowledged increments read back in order: no violation', () => {
  const { login, incr, read, promises } = setup();
  const s = login();
  incr(s, 'a', { n: 0, w: 'r0' });
  incr(s, 'b', { n: 1, w: 'a' });
  read(s, 'g', { n: 2, w: 'b' });
  assert.deepEqual(promises(), []);
});

test('a read older than an acknowledged write is a lost write (promise 1)', () => {
  const { login, incr, read, promises } = setup();
  const s = login();
  incr(s, 'a', { n: 0, w: 'r0' });
  incr(s, 'b', { n: 1, w: 'a' });
  read(s, 'g', { n: 1, w: 'a' });
  assert.deepEqual(promises(), [1]);
});

test('an abandoned write may land after an acknowledged one: not a violation', () => {
  const { login, incr, abandon, read, promises } = setup();
  const s = login();
  incr(s, 'a', { n: 0, w: 'r0' });
  abandon(s, 'x'); // read n=1 from a, timed out, still running somewhere
  incr(s, 'b', { n: 1, w: 'a' }); // acknowledged n=2
  read(s, 'g', { n: 2, w: 'x' }); // x landed after b: last writer wins, allowed
  incr(s, 'c', { n: 2, w: 'x' });
  assert.deepEqual(promises(), []);
});

test('an abandoned write seen, then overwritten by an acknowledged one, never comes back', () => {
  const { login, incr, abandon, read, promises } = setup();
  const s = login();
  abandon(s, 'x');
  incr(s, 'a', { n: 1, w: 'x' }); // a read x: x precedes a
  read(s, 'g', { n: 1, w: 'x' });
  assert.deepEqual(promises(), [1]);
});

test('values nobody wrote are phantoms (promise 4)', () => {
  const { login, incr, read, promises } = setup();
  const s = login();
  incr(s, 'a', { n: 0, w: 'r0' });
  read(s, 'g1', { n: 1, w: 'zzz' }); // no such request
  read(s, 'g2', { n: 0, w: 'a' }); // a wrote 1
  assert.deepEqual(promises(), [4, 4]);
});

test('more than the increments sent is a phantom (promise 4)', () => {
  const { login, abandon, read, promises } = setup();
  const s = login();
  abandon(s, 'x');
  read(s, 'g', { n: 2, w: 'x' }); // one increment was ever sent
  assert.deepEqual(promises(), [4]);
});

test('"no session" for an untouched session breaks promise 3; after an unanswered logout it does not', () => {
  const a = setup();
  const s1 = a.login();
  assert.equal(a.h.answered(s1, 'get', 'g', a.now(), 0, a.ok({ loggedIn: false })), 'relogin');
  assert.deepEqual(a.promises(), [3]);

  const b = setup();
  const s2 = b.login();
  b.h.removalSent(s2, 'logout');
  b.h.removalAbandoned(s2);
  assert.equal(b.h.answered(s2, 'get', 'g', b.now(), 0, b.ok({ loggedIn: false })), 'relogin');
  assert.deepEqual(b.promises(), []);
});

test('"no session" during a two-against-three partition is excused and counted', () => {
  const { h, login, now, ok, promises } = setup(() => 'double failure');
  const s = login();
  h.answered(s, 'incr', 'i', now(), 0, ok({ loggedIn: false }));
  assert.deepEqual(promises(), []);
  assert.equal(h.totals.excused, 1);
});

test('a destroyed id served again breaks promise 2; "no session" is the answer it must get', () => {
  const { h, login, now, ok, promises } = setup();
  const s = login();
  h.removalSent(s, 'logout');
  assert.equal(h.loggedOut(s, 'out', now(), ok({ loggedIn: true, login: 'L1', destroyed: 'L1' })), true);
  h.replayed('c1', 'base1', 'L1', 'p1', 'out', now(), ok({ loggedIn: false }));
  h.replayed('c1', 'base1', 'L1', 'p2', 'out', now(), ok({ loggedIn: true, login: 'L1', c: { n: 0, w: 'r0' } }));
  assert.deepEqual(promises(), [2]);
});

test('live sessions are a range: definite ones, plus those whose login or logout went unanswered', () => {
  const { h, login } = setup();
  h.loginSent(); // never answered
  assert.deepEqual(range(h), { min: 0, max: 1 });
  const s = login('L2', 'r1', 'base2');
  assert.deepEqual(range(h), { min: 1, max: 2 });
  h.removalSent(s, 'logout');
  assert.deepEqual(range(h), { min: 0, max: 2 });
  h.loggedOut(s, 'out', 0, { status: 200, body: { route: 'node1', loggedIn: true, login: 'L2', destroyed: 'L2' } });
  assert.deepEqual(range(h), { min: 0, max: 1 });
});

test('a regenerate moves the session to a new id and destroys the old one', () => {
  const { h, login, now, ok, incr, promises } = setup();
  const s = login();
  incr(s, 'a', { n: 0, w: 'r0' });
  h.removalSent(s, 'regenerate');
  const next = h.regenerated(s, 'g', now(), 1, 'base2', ok({ loggedIn: true, login: 'L1', prev: { n: 1, w: 'a' }, c: { n: 1, w: 'g' } }));
  assert.equal(next, 'ok');
  assert.equal(s.base, 'base2');
  assert.deepEqual(range(h), { min: 1, max: 1 });
  incr(s, 'b', { n: 1, w: 'g' });
  assert.deepEqual(promises(), []);
});

test('a second device revoked from the first: counted live until a revocation is answered, then gone, and one that had no effect changes nothing', () => {
  const { h, login } = setup();
  login();
  h.loginSent();
  h.deviceLoggedIn('dev1', 'D1');
  assert.deepEqual(range(h), { min: 2, max: 2 });
  const first = h.revokeSent(['dev1']);
  assert.deepEqual(range(h), { min: 1, max: 2 }, 'unanswered: maybe gone');
  h.revokeUnsent(first);
  assert.deepEqual(range(h), { min: 2, max: 2 }, 'refused: live again');
  // An unanswered revocation leaves dev1 in doubt; the next answered one ends dev1 and dev2.
  h.revokeSent(['dev1']);
  h.loginSent();
  h.deviceLoggedIn('dev2', 'D2');
  const second = h.revokeSent(['dev1', 'dev2']);
  assert.equal(h.revoked(['dev1', 'dev2'], second, null), false, 'the revoking session was not found: nothing revoked');
  assert.deepEqual(range(h), { min: 2, max: 3 }, 'dev1 still in doubt, dev2 live');
  const third = h.revokeSent(['dev1', 'dev2']);
  assert.equal(h.revoked(['dev1', 'dev2'], third, 2), true);
  assert.deepEqual(range(h), { min: 1, max: 1 });
  assert.deepEqual(h.violations, []);
});

test('a device logged in while a revocation of the user ran (a concurrent flow) may have been ended by it: in doubt, not live', () => {
  const { h, login } = setup();
  login();
  h.loginSent();
  h.deviceLoggedIn('dev1', 'D1');
  const first = h.revokeSent(['dev1']);
  // Meanwhile another flow logs a second device in, and its own revocation is refused.
  h.loginSent();
  h.deviceLoggedIn('dev2', 'D2');
  const second = h.revokeSent(['dev1', 'dev2']);
  h.revokeUnsent(second);
  assert.deepEqual(range(h), { min: 2, max: 3 }, 'dev1 in doubt (the first revocation runs), dev2 live');
  assert.equal(h.revoked(['dev1'], first, 2), true);
  h.mayBeRevoked(['dev2']);
  assert.deepEqual(range(h), { min: 1, max: 2 }, 'dev1 gone; dev2 may have been found by the revocation');
  assert.deepEqual(h.violations, []);
});

test('"no session" while a revocation the client gave up on may still run is excused; after that window it is a violation', () => {
  const { h, login, now, ok, promises } = setup();
  const s = login();
  h.revocationAbandoned('c1', now() + 1000);
  h.answered(s, 'incr', 'i1', now(), 0, ok({ loggedIn: false }));
  assert.deepEqual(promises(), [], 'the revocation may have ended the session');
  assert.equal(h.totals.excused, 1);
  const later = login('L2', 'r9', 'base2');
  const after = now() + 5000;
  h.answered(later, 'incr', 'i2', after, 0, ok({ loggedIn: false }));
  assert.deepEqual(promises(), [3], 'sent after the window: the session was lost');
});

test('the copy check is not asked to find a session made while a revocation its client gave up on may have run', () => {
  const { h, login, now } = setup();
  const s = login();
  assert.deepEqual(h.definiteBases(), [s.base]);
  h.revocationAbandoned('c1', now() + 1000);
  assert.deepEqual(h.definiteBases(), [], 'it may have ended it: "held by no member" is no violation');
});
