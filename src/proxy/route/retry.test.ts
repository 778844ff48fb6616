import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualClock } from '../balance/contract.js';
import {
  compileRetry,
  decideRetry,
  isIdempotent,
  retryableFailure,
  retryableResponse,
  retryDelayMs,
  RetryBudget,
  type RetryQuestion,
} from './retry.js';

const http = compileRetry({
  attempts: 2,
  statuses: [
    { from: 502, to: 504 },
    { from: 429, to: 429 },
  ],
  grpc_codes: [],
  connect_failure: true,
  reset: true,
  timeout: false,
});
const grpc = compileRetry({
  attempts: 1,
  statuses: [],
  grpc_codes: [14, 4],
  connect_failure: true,
  reset: false,
  timeout: true,
});

void test('classification: statuses by range, gRPC codes by grpc-status, failures by kind', () => {
  assert.deepEqual(
    [429, 500, 502, 503, 504, 505, 200].map((s) => retryableResponse(http, s)),
    [true, false, true, true, true, false, false],
  );
  assert.equal(retryableResponse(grpc, 200, 14), true, 'a trailers-only UNAVAILABLE');
  assert.equal(retryableResponse(grpc, 200, 4), true);
  assert.equal(retryableResponse(grpc, 200, 13), false);
  assert.equal(retryableResponse(grpc, 200, 0), false, 'OK is never retried');
  assert.equal(retryableResponse(http, 503, 14), false, 'a gRPC status decides for a gRPC response');
  assert.deepEqual(
    (['connect-failure', 'reset', 'timeout'] as const).map((k) => retryableFailure(http, k)),
    [true, true, false],
  );
  assert.deepEqual(
    (['connect-failure', 'reset', 'timeout'] as const).map((k) => retryableFailure(grpc, k)),
    [true, false, true],
  );
  assert.deepEqual(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'POST', 'PATCH'].map(isIdempotent), [
    true,
    true,
    true,
    true,
    true,
    true,
    false,
    false,
  ]);
});

void test('decisions: every reason not to retry, checked before the budget is touched', () => {
  const budget = new RetryBudget({ now: () => 0, minPerSecond: 0.1, ttlMs: 10_000 }); // reserve: 1 retry
  const q: RetryQuestion = {
    policy: http,
    retries: 0,
    outcome: { status: 503 },
    replayable: true,
    idempotent: true,
    clientGone: false,
    remainingMs: Infinity,
  };
  assert.equal(decideRetry({ ...q, policy: undefined }, budget), 'no-policy');
  assert.equal(decideRetry({ ...q, outcome: { status: 500 } }, budget), 'not-retryable');
  assert.equal(decideRetry({ ...q, outcome: 'timeout' }, budget), 'not-retryable');
  assert.equal(decideRetry({ ...q, outcome: 'reset', idempotent: false }, budget), 'not-idempotent');
  assert.equal(decideRetry({ ...q, clientGone: true }, budget), 'client-gone');
  assert.equal(decideRetry({ ...q, retries: 2 }, budget), 'attempts-exhausted');
  assert.equal(decideRetry({ ...q, replayable: false }, budget), 'not-replayable');
  assert.equal(decideRetry({ ...q, remainingMs: 0 }, budget), 'deadline');
  assert.equal(budget.available(), 1, 'none of those spent the budget');
  assert.equal(
    decideRetry({ ...q, outcome: 'connect-failure', idempotent: false }, budget),
    'retry',
    'nothing was sent: safe for a POST',
  );
  assert.equal(decideRetry(q, budget), 'budget-exhausted');
});

void test('budget: 20% of the requests of the last 10 s, plus 10 per second of reserve', () => {
  const clock = manualClock(0);
  const budget = new RetryBudget({ now: clock.now });
  assert.equal(budget.available(), 100, 'the reserve: 10/s over 10 s');
  // 1,000 requests in one second add 200 retries.
  for (let i = 0; i < 1000; i++) budget.deposit();
  assert.equal(budget.available(), 300);
  let retries = 0;
  while (budget.tryWithdraw()) retries++;
  assert.equal(retries, 300);
  assert.equal(budget.tryWithdraw(), false);
  // Once the window has passed, the deposits and withdrawals are forgotten: back to the reserve.
  clock.advance(10_000);
  assert.equal(budget.available(), 100);
});

void test('budget: a backend failing every request gets at most ~1.2x the client rate (a retry storm stopped)', () => {
  const clock = manualClock(0);
  const budget = new RetryBudget({ now: clock.now });
  const rate = 500; // requests per second, each failing, each wanting 2 retries
  let sent = 0;
  for (let ms = 0; ms < 60_000; ms += 2) {
    clock.advance(2);
    budget.deposit();
    sent++;
    for (let r = 0; r < 2 && budget.tryWithdraw(); r++) sent++;
  }
  const requests = 60 * rate;
  const ratio = sent / requests;
  // 20% plus the reserve (100 per 10 s against 5,000 requests: +2%), a little more in the first window.
  assert.ok(ratio > 1.2 && ratio < 1.25, String(ratio));
});

void test('budget: ratio 0 leaves only the reserve; impossible settings are refused', () => {
  const budget = new RetryBudget({ now: () => 0, ratio: 0, minPerSecond: 1, ttlMs: 10_000 });
  for (let i = 0; i < 100; i++) budget.deposit();
  assert.equal(budget.available(), 10);
  assert.throws(() => new RetryBudget({ ratio: -1 }), /retry budget: need/);
  assert.throws(() => new RetryBudget({ ttlMs: 1 }), /ttlMs >= 10/);
});

void test('retry delay: 25 ms doubling to 250 ms, fully jittered', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 9].map((n) => retryDelayMs(n, () => 0.999999)).map(Math.round),
    [25, 50, 100, 200, 250, 250],
  );
  assert.equal(
    retryDelayMs(3, () => 0),
    0,
  );
});
