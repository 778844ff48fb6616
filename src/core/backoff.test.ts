import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JitteredBackoff } from './backoff.js';

void test('doubles up to the maximum, each delay shortened by at most the jitter', () => {
  let r = 0;
  const b = new JitteredBackoff({ initialMs: 100, maxMs: 1000, jitter: 0.5, random: () => r });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000]);
  r = 0.999999;
  const low = b.next();
  assert.ok(low > 500 && low <= 1000, String(low));
  b.reset();
  r = 0;
  assert.equal(b.next(), 100);
});

void test('refuses impossible settings', () => {
  assert.throws(() => new JitteredBackoff({ initialMs: 0 }), /initialMs/);
  assert.throws(() => new JitteredBackoff({ initialMs: 10, maxMs: 5 }), /maxMs/);
  assert.throws(() => new JitteredBackoff({ jitter: 2 }), /jitter/);
});
