import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Gcra, RateLimiter } from './gcra.js';

void test('gcra: a client at twice the rate with jitter gets the rate, plus a tenth of a second of it', () => {
  const g = new Gcra(50);
  let allowed = 0;
  // 100 rps for 10 s, each arrival up to 3 ms late.
  for (let i = 0; i < 1000; i++) if (g.take(i * 10 + Math.random() * 3) === 0) allowed++;
  assert.ok(allowed >= 500 && allowed <= 506, `allowed ${allowed}`);
});

void test('gcra: a client that stalls for less than 0.1 s and catches up loses nothing', () => {
  const g = new Gcra(50);
  let allowed = 0;
  // 100 rps for 10 s, but every second the client stalls 80 ms and then sends what it owes at once.
  for (let i = 0; i < 1000; i++) {
    const t = i * 10;
    const stalled = t % 1000 < 80 ? t - (t % 1000) + 80 : t;
    if (g.take(stalled) === 0) allowed++;
  }
  assert.ok(allowed >= 500 && allowed <= 506, `allowed ${allowed}`);
});

void test('gcra: a refusal says how long to wait', () => {
  const g = new Gcra(1);
  assert.equal(g.take(0), 0);
  assert.equal(g.take(0), 0); // one interval of tolerance
  const wait = g.take(0);
  assert.ok(wait > 0 && wait <= 1000, `wait ${wait}`);
  assert.equal(g.take(wait), 0);
});

void test('rate limiter: per identity, overrides, and the total', () => {
  const rl = new RateLimiter({
    name: 'ns/rl',
    total_rps: 100,
    identity_rps: 10,
    overrides: [{ rps: 20, identities: ['spiffe://td/ns/a/sa/fast'] }],
  });
  const counts = { slow: 0, fast: 0 };
  for (let t = 0; t < 10_000; t += 10) {
    if (rl.allow('spiffe://td/ns/a/sa/slow', true, t)) counts.slow++;
    if (rl.allow('spiffe://td/ns/a/sa/fast', true, t)) counts.fast++;
  }
  assert.ok(Math.abs(counts.slow - 100) <= 2, `slow ${counts.slow}`);
  assert.ok(counts.fast >= 200 && counts.fast <= 203, `fast ${counts.fast}`);
  const total = new RateLimiter({ name: 'ns/t', total_rps: 20, identity_rps: 0, overrides: [] });
  let n = 0;
  for (let t = 0; t < 10_000; t += 5) if (total.allow(`10.0.0.${t % 7}`, false, t)) n++;
  assert.ok(Math.abs(n - 200) <= 2, `total ${n}`);
  assert.equal(total.limitedBy, 'total');
});
