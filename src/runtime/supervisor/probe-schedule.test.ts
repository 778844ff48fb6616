// Probe scheduling and the threshold rule (pure): when probes run and when readiness flips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyProbeResult,
  INITIAL_READINESS,
  nextProbeDelay,
  probeTiming,
  type ProbeTiming,
  type ReadinessState,
} from './probe-schedule.js';

const timing = (o: Partial<ProbeTiming> = {}): ProbeTiming => ({
  initialDelayMs: 0,
  periodMs: 1000,
  timeoutMs: 1000,
  successThreshold: 1,
  failureThreshold: 3,
  ...o,
});

/** Feeds results in order and returns the changes (r = ready, u = unready, . = none). */
function run(
  results: string,
  t: ProbeTiming,
  from: ReadinessState = INITIAL_READINESS,
): { changes: string; state: ReadinessState } {
  let state = from;
  let changes = '';
  for (const ch of results) {
    const r = applyProbeResult(state, ch === '+', t);
    state = r.state;
    changes += r.change === 'ready' ? 'r' : r.change === 'unready' ? 'u' : '.';
  }
  return { changes, state };
}

void test('probe: seconds become milliseconds', () => {
  assert.deepEqual(
    probeTiming({
      initialDelaySeconds: 2,
      periodSeconds: 5,
      timeoutSeconds: 1,
      successThreshold: 2,
      failureThreshold: 4,
    }),
    {
      initialDelayMs: 2000,
      periodMs: 5000,
      timeoutMs: 1000,
      successThreshold: 2,
      failureThreshold: 4,
    },
  );
});

void test('probe: a container starts not ready; one success makes it ready with successThreshold 1', () => {
  assert.equal(INITIAL_READINESS.ready, false);
  assert.equal(run('+', timing()).changes, 'r');
  assert.equal(run('--+', timing()).changes, '..r', 'failures before the first success change nothing');
});

void test('probe: successThreshold counts consecutive successes', () => {
  assert.equal(run('++', timing({ successThreshold: 2 })).changes, '.r');
  assert.equal(run('+-+-++', timing({ successThreshold: 2 })).changes, '.....r', 'a failure starts the count again');
});

void test('probe: failureThreshold counts consecutive failures once ready', () => {
  const t = timing({ failureThreshold: 3 });
  assert.equal(run('+---', t).changes, 'r..u');
  assert.equal(run('+--+--+---', t).changes, 'r........u', 'a success in between starts the count again');
  const { state } = run('+---', t);
  assert.equal(state.ready, false);
  assert.equal(state.everReady, true);
  assert.equal(run('+', t, state).changes, 'r', 'and one success makes it ready again');
});

void test('probe: failureThreshold 1 flips at the first failure', () => {
  assert.equal(run('+-+-', timing({ failureThreshold: 1 })).changes, 'ruru');
});

void test('probe: the next probe starts one period after the last one started', () => {
  const t = timing({ periodMs: 1000 });
  assert.equal(nextProbeDelay(INITIAL_READINESS, t, 0), 1000);
  assert.equal(nextProbeDelay(INITIAL_READINESS, t, 300), 700);
  assert.equal(nextProbeDelay(INITIAL_READINESS, t, 2500), 0, 'a slow probe is followed at once, never overlapped');
  assert.equal(nextProbeDelay(INITIAL_READINESS, t, -5), 1000, 'a clock step back does not stretch the wait');
});

void test('probe: the startup period applies until the first time ready, not after', () => {
  const t = timing({ periodMs: 10_000, startupPeriodMs: 200 });
  assert.equal(nextProbeDelay(INITIAL_READINESS, t, 50), 150);
  const ready = run('+', t).state;
  assert.equal(nextProbeDelay(ready, t, 50), 9950);
  const unreadyAgain = run('---', t, ready).state;
  assert.equal(unreadyAgain.ready, false);
  assert.equal(nextProbeDelay(unreadyAgain, t, 0), 10_000, 'after the first readiness, the normal period');
});
