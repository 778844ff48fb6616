// The restart backoff and the restart policy rule (pure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, shouldRestart } from './backoff.js';

void test('backoff: 1 s doubling to 30 s for quick crashes', () => {
  const b = new Backoff();
  assert.deepEqual(
    Array.from({ length: 8 }, () => b.next(100)),
    [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000],
  );
});

void test('backoff: a run of 10 s or more starts again from 1 s', () => {
  const b = new Backoff();
  b.next(0);
  b.next(0);
  assert.equal(b.next(9_999), 4000, 'just under the reset threshold keeps doubling');
  assert.equal(b.next(10_000), 1000, 'a healthy run resets');
  assert.equal(b.next(0), 2000);
});

void test('backoff: options, and nonsense refused', () => {
  const b = new Backoff({ initialMs: 50, maxMs: 120, resetAfterMs: 500 });
  assert.deepEqual([b.next(0), b.next(0), b.next(0), b.next(600)], [50, 100, 120, 50]);
  const zero = new Backoff({ initialMs: 0, maxMs: 10 });
  assert.deepEqual([zero.next(0), zero.next(0), zero.next(0)], [0, 1, 2], 'a zero start still grows');
  assert.throws(() => new Backoff({ initialMs: 100, maxMs: 50 }), RangeError);
});

void test('restart policy: Always, OnFailure, Never', () => {
  const ok = { code: 0, signal: null };
  const failed = { code: 3, signal: null };
  const killed = { code: null, signal: 'SIGKILL' as const };
  const startError = { code: null, signal: null };
  assert.deepEqual(
    [ok, failed, killed, startError].map((e) => shouldRestart('Always', e)),
    [true, true, true, true],
  );
  assert.deepEqual(
    [ok, failed, killed, startError].map((e) => shouldRestart('OnFailure', e)),
    [false, true, true, true],
  );
  assert.deepEqual(
    [ok, failed, killed, startError].map((e) => shouldRestart('Never', e)),
    [false, false, false, false],
  );
});
