import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointInfo, manualClock, seededRandom } from '../balance/contract.js';
import { PeakEwmaBalancer } from '../balance/peak-ewma.js';
import { Breakers, isEndpointFailure, pickAvailable } from './breaker.js';

function setup(opts: { jitter?: number } = {}) {
  const clock = manualClock(0);
  const breakers = new Breakers({
    consecutiveFailures: 3,
    baseEjectionMs: 1000,
    maxEjectionMs: 8000,
    jitter: opts.jitter ?? 0,
    now: clock.now,
    random: () => 0.5,
  });
  return { clock, breakers };
}

void test('consecutive failures eject; a success in between resets the count', () => {
  const { breakers } = setup();
  const b = breakers.get('a');
  b.failure();
  b.failure();
  b.success();
  b.failure();
  b.failure();
  assert.equal(b.state(), 'closed');
  b.failure();
  assert.equal(b.state(), 'open');
  assert.equal(breakers.isAvailable('a'), false);
  assert.deepEqual(breakers.ejected(), ['a']);
  assert.equal(breakers.isAvailable('unknown'), true, 'an endpoint never seen is available');
});

void test('half-open lets exactly one probe through; its success closes, its failure doubles the ejection', () => {
  const { clock, breakers } = setup();
  const b = breakers.get('a');
  for (let i = 0; i < 3; i++) b.failure();
  clock.advance(999);
  assert.equal(b.available(), false);
  clock.advance(1);
  assert.equal(b.state(), 'half-open');
  assert.equal(b.available(), true);
  b.dispatched();
  assert.equal(b.available(), false, 'one probe at a time');
  b.failure();
  assert.equal(b.state(), 'open');
  assert.equal(b.ejectedUntil, 1000 + 2000, 'the second ejection in a row is twice as long');
  clock.advance(2000);
  b.dispatched();
  b.failure();
  assert.equal(b.ejectedUntil, 3000 + 4000);
  clock.advance(4000);
  b.dispatched();
  b.failure();
  clock.advance(8000);
  b.dispatched();
  b.failure();
  assert.equal(b.ejectedUntil - clock.now(), 8000, 'capped at maxEjectionMs');
  clock.advance(8000);
  b.dispatched();
  b.success();
  assert.equal(b.state(), 'closed');
  assert.equal(b.ejections, 0, 'backoff reset');
  // Late failures of requests sent before an ejection do not extend it.
  for (let i = 0; i < 3; i++) b.failure();
  const until = b.ejectedUntil;
  b.failure();
  assert.equal(b.ejectedUntil, until);
});

void test('jitter shortens ejections by up to its fraction', () => {
  const clock = manualClock(0);
  const breakers = new Breakers({
    consecutiveFailures: 1,
    baseEjectionMs: 1000,
    jitter: 0.5,
    now: clock.now,
    random: () => 0.999,
  });
  const b = breakers.get('a');
  b.failure();
  assert.ok(b.ejectedUntil > 500 && b.ejectedUntil < 502, String(b.ejectedUntil));
  assert.throws(() => new Breakers({ consecutiveFailures: 0 }), /circuit breaker: need/);
});

void test('the balancer skips ejected endpoints; all ejected gives undefined (fail fast with 503)', () => {
  const { clock, breakers } = setup();
  const balancer = new PeakEwmaBalancer({ now: clock.now, random: seededRandom(3) });
  balancer.update([endpointInfo(1), endpointInfo(2), endpointInfo(3)]);
  const keys = balancer.endpoints.map((e) => e.key);
  const [k1, k2, k3] = keys as [string, string, string];
  for (let i = 0; i < 3; i++) breakers.get(k1).failure();
  for (let i = 0; i < 3; i++) breakers.get(k2).failure();
  for (let i = 0; i < 50; i++) assert.equal(pickAvailable(balancer, breakers)?.key, k3);
  for (let i = 0; i < 3; i++) breakers.get(k3).failure();
  assert.equal(pickAvailable(balancer, breakers), undefined);
  assert.ok(balancer.endpoints.length > 0, 'endpoints exist: the caller answers 503 ENDPOINTS_EJECTED');
  // After the ejection, the first pick of each is its probe; the others wait for its result.
  clock.advance(1000);
  const probes = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const e = pickAvailable(balancer, breakers);
    if (e) probes.add(e.key);
  }
  assert.deepEqual([...probes].sort(), [...keys].sort(), 'each endpoint got exactly one probe');
  assert.equal(pickAvailable(balancer, breakers), undefined);
  breakers.get(k2).success();
  assert.equal(pickAvailable(balancer, breakers)?.key, k2);
  // Endpoints that leave are forgotten; if they come back they start closed.
  breakers.sync([k2]);
  assert.equal(breakers.isAvailable(k1), true);
});

void test('what counts as an endpoint failure', () => {
  assert.deepEqual(
    [200, 404, 429, 500, 503].map((s) => isEndpointFailure(s)),
    [false, false, false, true, true],
  );
  assert.deepEqual(
    [0, 5, 4, 13, 14].map((g) => isEndpointFailure(200, g)),
    [false, false, true, true, true],
  );
});
