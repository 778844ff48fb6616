// The chart scales: nice ticks, zero always on a linear axis, nulls left out, and usable axes for no
// values, all zeros, one value, negatives and values orders of magnitude apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { autoScale, linearScale, logScale, niceStep, pointPositions } from './scale.js';

void test('niceStep: 1, 2, 2.5 or 5 times a power of ten', () => {
  assert.equal(niceStep(10, 5), 2);
  assert.equal(niceStep(2437, 5), 500);
  assert.equal(niceStep(0.3, 5), 0.1);
  assert.equal(niceStep(12, 5), 2.5);
  assert.equal(niceStep(0.004, 4), 0.001);
});

void test('linearScale: no values, all nulls and all zeros give an axis 0..1', () => {
  for (const values of [[], [null, null], [0, 0, null]]) {
    const s = linearScale(values);
    assert.equal(s.lo, 0);
    assert.equal(s.hi, 1);
    assert.equal(s.ticks[0], 0);
    assert.equal(s.ticks.at(-1), 1);
    assert.equal(s.map(0), 0);
  }
});

void test('linearScale: one value starts from zero and ends on a tick at or above it', () => {
  const s = linearScale([7.3]);
  assert.equal(s.lo, 0);
  assert.ok(s.hi >= 7.3 && s.hi <= 10, `hi ${s.hi}`);
  assert.equal(s.ticks[0], 0, 'no tick below zero when nothing is negative');
});

void test('linearScale: negative values (a data plane that measured faster than the baseline) are on the axis', () => {
  const s = linearScale([-0.4, 2.1]);
  assert.ok(s.lo <= -0.4 && s.lo > -1.5, `lo ${s.lo}`);
  assert.ok(s.ticks.includes(0));
  assert.ok(s.map(-0.4) >= 0 && s.map(2.1) <= 1);
});

void test('linearScale: tick labels are written without float noise and with thousands grouped', () => {
  assert.deepEqual(
    linearScale([0.3]).ticks.map((t) => linearScale([0.3]).tickLabel(t)),
    ['0', '0.1', '0.2', '0.3'],
  );
  const big = linearScale([2437.6]);
  assert.deepEqual(
    big.ticks.map((t) => big.tickLabel(t)),
    ['0', '500', '1,000', '1,500', '2,000', '2,500'],
  );
  const quarter = linearScale([12]);
  assert.ok(quarter.ticks.map((t) => quarter.tickLabel(t)).includes('2.5'));
});

void test('linearScale: for any values, the ticks cover them from a nice lo to a nice hi', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constant(null), fc.double({ min: -1e6, max: 1e6, noNaN: true })), { maxLength: 12 }),
      (values) => {
        const s = linearScale(values);
        const vs = values.filter((v): v is number => v !== null);
        assert.ok(s.lo < s.hi);
        assert.ok(s.lo <= Math.min(0, ...vs) + 1e-6 && s.hi >= Math.max(0, ...vs) - 1e-6, `${s.lo}..${s.hi}`);
        assert.ok(s.ticks.length >= 2 && s.ticks.length <= 12, `${s.ticks.length} ticks`);
        for (let i = 1; i < s.ticks.length; i++) assert.ok((s.ticks[i] ?? 0) > (s.ticks[i - 1] ?? 0));
        assert.ok(Math.abs(s.map(s.lo)) < 1e-9 && Math.abs(s.map(s.hi) - 1) < 1e-9);
        for (const v of vs) assert.ok(s.map(v) >= -1e-6 && s.map(v) <= 1 + 1e-6);
        for (const t of s.ticks) assert.doesNotMatch(s.tickLabel(t), /e|NaN|0000000/);
      },
    ),
  );
});

void test('autoScale: positive values 100 times apart get a log scale, anything with a zero stays linear', () => {
  const log = autoScale([3, 2210, null]);
  assert.equal(log.kind, 'log');
  assert.deepEqual(log.ticks, [1, 10, 100, 1000, 10000]);
  assert.deepEqual(
    log.ticks.map((t) => log.tickLabel(t)),
    ['1', '10', '100', '1,000', '10,000'],
  );
  assert.ok(log.map(3) > 0 && log.map(2210) < 1);
  assert.equal(autoScale([0, 2210]).kind, 'linear', 'zero has no place on a log axis');
  assert.equal(autoScale([3, 4]).kind, 'linear');
  assert.equal(autoScale([5]).kind, 'linear', 'one value is not a spread');
  assert.equal(autoScale([-1, 500]).kind, 'linear');
});

void test('logScale: small values get decades below one with their decimals; one decade is widened', () => {
  const s = logScale([0.002, 0.5]);
  assert.deepEqual(s.ticks, [0.001, 0.01, 0.1, 1]);
  assert.deepEqual(
    s.ticks.map((t) => s.tickLabel(t)),
    ['0.001', '0.01', '0.1', '1'],
  );
  const one = logScale([100]);
  assert.ok(one.lo < one.hi);
});

void test('pointPositions: one step in the middle, several spread evenly', () => {
  assert.deepEqual(pointPositions(0), []);
  assert.deepEqual(pointPositions(1), [0.5]);
  assert.deepEqual(pointPositions(3), [0, 0.5, 1]);
});
