// Unit tests for the log-linear histogram: buckets hold their values, percentiles are within 0.2% of
// the exact nearest-rank ones (never below), merging and the JSON form lose nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketOf, bucketRange, Histogram } from './histogram.js';
import { percentile } from './report.js';

/** A deterministic pseudo-random sequence (so a failure can be reproduced). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

void test('buckets: exact below 1024, each holds its values, no wider than 1/512 of them, in order', () => {
  for (const v of [0, 1, 1023]) assert.deepEqual(bucketRange(bucketOf(v)), [v, v]);
  assert.deepEqual(bucketRange(bucketOf(1024)), [1024, 1025]);
  assert.deepEqual(bucketRange(bucketOf(2047)), [2046, 2047]);
  assert.deepEqual(bucketRange(bucketOf(2048)), [2048, 2051]);
  const rnd = lcg(7);
  let last = -1;
  for (let i = 0; i < 20_000; i++) {
    const v = Math.floor(2 ** (rnd() * 43));
    const [lo, hi] = bucketRange(bucketOf(v));
    assert.ok(lo <= v && v <= hi, `${v} in [${lo}, ${hi}]`);
    assert.ok(hi - lo <= Math.max(0, lo / 512), `bucket of ${v} is [${lo}, ${hi}]`);
  }
  for (let v = 0; v < 1 << 16; v += 7) {
    const b = bucketOf(v);
    assert.ok(b >= last, 'buckets grow with values');
    last = b;
  }
  // Beyond 2^44 ns everything shares the last bucket; percentiles then fall back on the exact max.
  assert.equal(bucketOf(2 ** 50), bucketOf(2 ** 45));
});

void test('percentiles: nearest rank, never below the exact value, at most 0.2% above; min and max exact', () => {
  const rnd = lcg(42);
  const h = new Histogram();
  const values: number[] = [];
  for (let i = 0; i < 100_000; i++) {
    // Latency-like: mostly 100 us..1 ms, a tail to 200 ms.
    const v = Math.round(i % 100 === 0 ? 1e6 + rnd() * 2e8 : 1e5 + rnd() * 9e5);
    values.push(v);
    h.record(v);
  }
  values.sort((a, b) => a - b);
  for (const q of [1, 50, 90, 99, 99.9, 99.99]) {
    const exact = percentile(values, q);
    const got = h.percentile(q);
    assert.ok(got >= exact && got <= exact * (1 + 1 / 512), `p${q}: ${got} vs exact ${exact}`);
  }
  assert.equal(h.percentile(100), values[values.length - 1]);
  assert.equal(h.percentile(0), values[0]);
  assert.equal(h.count, 100_000);
  assert.ok(Math.abs(h.mean() - values.reduce((a, b) => a + b, 0) / values.length) < 1e-6 * h.mean());
  assert.ok(Number.isNaN(new Histogram().percentile(50)));
});

void test('a small set: exact values, the rank rule (p50 of 1..10 is 5, p99.9 is 10)', () => {
  const h = new Histogram();
  for (let v = 1; v <= 10; v++) h.record(v * 100);
  assert.equal(h.percentile(50), 500);
  assert.equal(h.percentile(90), 900);
  assert.equal(h.percentile(99.9), 1000);
  h.record(-5); // a clock that stepped back counts as 0, never as a negative latency
  assert.equal(h.min, 0);
});

void test('merge and JSON: the same percentiles as one histogram of everything', () => {
  const a = new Histogram();
  const b = new Histogram();
  const all = new Histogram();
  const rnd = lcg(3);
  for (let i = 0; i < 5000; i++) {
    const v = Math.round(rnd() * 5e6);
    (i % 3 === 0 ? a : b).record(v);
    all.record(v);
  }
  const merged = Histogram.fromJSON(JSON.parse(JSON.stringify(a)) as ReturnType<Histogram['toJSON']>).merge(b);
  for (const q of [50, 90, 99, 99.9, 100]) assert.equal(merged.percentile(q), all.percentile(q));
  assert.equal(merged.count, all.count);
  assert.equal(merged.max, all.max);
  assert.equal(merged.min, all.min);
  const j = all.toJSON();
  assert.ok(j.buckets.length < 5000, 'sparse');
  assert.throws(() => Histogram.fromJSON({ ...j, count: j.count + 1 }), /count says/);
  assert.throws(() => Histogram.fromJSON({ ...j, buckets: [[-1, 1]] }), /bad bucket/);
  assert.deepEqual(new Histogram().toJSON(), { count: 0, min: 0, max: 0, sum: 0, buckets: [] });
});
