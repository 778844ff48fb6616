import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint } from './balancer.js';
import { balancerContract, endpointInfo, manualClock, seededRandom } from './contract.js';
import { PeakEwmaBalancer } from './peak-ewma.js';

balancerContract('peak-ewma', (env) => new PeakEwmaBalancer(env));

void test('peak-ewma: a slower sample replaces the estimate at once, a faster one is blended in over time', () => {
  const clock = manualClock();
  const b = new PeakEwmaBalancer({ now: clock.now, random: seededRandom(1), defaultRttMs: 30, decayMs: 10_000 });
  b.update([endpointInfo(1)]);
  const e = b.pick() as Endpoint & { estimate(): number };
  let s = e.begin();
  clock.advance(200);
  e.end(s, true);
  assert.equal(e.estimate(), 200);
  // 10 ms later a 1 ms answer barely moves it (10 ms of a 10 s time constant)...
  clock.advance(9);
  s = e.begin();
  clock.advance(1);
  e.end(s, true);
  assert.ok(e.estimate() > 199 && e.estimate() < 200, String(e.estimate()));
  // ...and a fast failure never lowers it.
  s = e.begin();
  clock.advance(1);
  e.end(s, false);
  assert.ok(e.estimate() > 199, String(e.estimate()));
  // Idle, it decays toward zero with the time constant: e^-1 after 10 s.
  const before = e.estimate();
  clock.advance(10_000);
  assert.ok(Math.abs(e.estimate() - before / Math.E) < 0.01, String(e.estimate()));
});

void test('peak-ewma: refuses impossible settings', () => {
  assert.throws(() => new PeakEwmaBalancer({ decayMs: 0 }), /decayMs must be > 0/);
});

interface SimEndpoint {
  readonly latencyMs: (t: number) => number;
}

/**
 * A discrete-event simulation: requests arrive every `intervalMs` of simulated time, each goes to the
 * balancer's pick and completes after that endpoint's latency. Returns the picks per endpoint in each
 * `windowMs` window and the largest pending count seen per endpoint.
 */
function simulate(o: {
  endpoints: SimEndpoint[];
  intervalMs: number;
  durationMs: number;
  windowMs: number;
  seed: number;
  add?: { atMs: number; endpoint: SimEndpoint };
}) {
  const clock = manualClock(0);
  const b = new PeakEwmaBalancer({ now: clock.now, random: seededRandom(o.seed) });
  const all = o.add ? [...o.endpoints, o.add.endpoint] : o.endpoints;
  const infos = all.map((_, i) => endpointInfo(i + 1));
  b.update(infos.slice(0, o.endpoints.length));
  const index = new Map(infos.map((info, i) => [info.key, i]));
  const windows: number[][] = [];
  const maxPending = all.map(() => 0);
  // Completions, kept sorted by time (descending, so the next one pops off the end).
  const done: { at: number; e: Endpoint; start: number }[] = [];
  let added = false;
  for (let t = 0; t < o.durationMs; t += o.intervalMs) {
    while (done.length > 0 && (done[done.length - 1] as { at: number }).at <= t) {
      const d = done.pop() as { at: number; e: Endpoint; start: number };
      clock.advance(d.at - clock.now());
      d.e.end(d.start, true);
    }
    clock.advance(t - clock.now());
    if (o.add && !added && t >= o.add.atMs) {
      b.update(infos);
      added = true;
    }
    const e = b.pick();
    assert.ok(e);
    const i = index.get(e.key) as number;
    const w = Math.floor(t / o.windowMs);
    windows[w] ??= all.map(() => 0);
    (windows[w] as number[])[i]!++;
    const start = e.begin();
    maxPending[i] = Math.max(maxPending[i] as number, e.pending);
    const at = t + (all[i] as SimEndpoint).latencyMs(t);
    let k = done.length;
    while (k > 0 && (done[k - 1] as { at: number }).at < at) k--;
    done.splice(k, 0, { at, e, start });
  }
  return { windows, maxPending };
}

const share = (w: number[], i: number) => (w[i] as number) / w.reduce((a, c) => a + c, 0);
const fast: SimEndpoint = { latencyMs: () => 1 };

void test('simulation: a replica 200 ms slower than its two peers gets under 10% of requests within seconds', (t) => {
  const slow: SimEndpoint = { latencyMs: () => 201 };
  // 500 requests per second for 10 s, counted per second.
  const { windows, maxPending } = simulate({
    endpoints: [fast, slow, fast],
    intervalMs: 2,
    durationMs: 10_000,
    windowMs: 1000,
    seed: 42,
  });
  const shares = windows.map((w) => share(w, 1));
  t.diagnostic(`slow replica's share per second: ${shares.map((s) => `${(s * 100).toFixed(1)}%`).join(' ')}`);
  t.diagnostic(`largest pending per endpoint: ${maxPending.join(', ')}`);
  for (const s of shares.slice(2)) assert.ok(s < 0.1, `slow share ${s}`);
  const fastPicks = windows.slice(2).reduce((acc, w) => [acc[0]! + w[0]!, acc[1]! + w[2]!], [0, 0]);
  const ratio = fastPicks[0]! / fastPicks[1]!;
  assert.ok(ratio > 0.8 && ratio < 1.25, `the two fast replicas share the rest evenly: ${fastPicks.join(' vs ')}`);
});

void test('simulation: under load, outstanding requests are spread over equal replicas', (t) => {
  const busy: SimEndpoint = { latencyMs: () => 50 };
  // 2000 requests per second at 50 ms: about 100 in flight over 4 replicas.
  const { windows, maxPending } = simulate({
    endpoints: [busy, busy, busy, busy],
    intervalMs: 0.5,
    durationMs: 5000,
    windowMs: 5000,
    seed: 7,
  });
  t.diagnostic(`picks: ${windows[0]?.join(', ')}; largest pending: ${maxPending.join(', ')}`);
  assert.ok(Math.max(...maxPending) <= 40, `largest pending ${Math.max(...maxPending)} (about 25 each is even)`);
  for (let i = 0; i < 4; i++) assert.ok(share(windows[0] as number[], i) > 0.2, `replica ${i}`);
});

void test('simulation: a slow replica that recovers wins traffic back; a new replica warms up', (t) => {
  let slowUntil = 10_000;
  const flaky: SimEndpoint = { latencyMs: (now) => (now < slowUntil ? 201 : 1) };
  const r = simulate({ endpoints: [fast, flaky, fast], intervalMs: 2, durationMs: 120_000, windowMs: 10_000, seed: 3 });
  const shares = r.windows.map((w) => share(w, 1));
  t.diagnostic(`recovering replica's share per 10 s: ${shares.map((s) => `${(s * 100).toFixed(1)}%`).join(' ')}`);
  assert.ok((shares[shares.length - 1] as number) > 0.2, 'it is back to about a third');

  slowUntil = 0;
  const w = simulate({
    endpoints: [fast, fast],
    intervalMs: 2,
    durationMs: 30_000,
    windowMs: 1000,
    seed: 5,
    add: { atMs: 10_000, endpoint: fast },
  });
  const newShares = w.windows.map((x) => share(x, 2));
  t.diagnostic(`new replica's share per second: ${newShares.map((s) => `${(s * 100).toFixed(1)}%`).join(' ')}`);
  assert.ok((newShares[10] as number) > 0, 'not starved in its first second');
  assert.ok((newShares[10] as number) < 0.5, 'not flooded in its first second');
  assert.ok((newShares[29] as number) > 0.2, 'a fair share after it warmed up');
});
