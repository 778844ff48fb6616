import { test } from 'node:test';
import assert from 'node:assert/strict';
import { histogramQuantile } from './quantile.js';
import { parsePrometheusText } from './prom-text.js';

void test('histogramQuantile interpolates inside the bucket, like Prometheus', () => {
  // 100 observations: 50 ≤ 1 ms, 40 in (1, 2], 10 in (2, 10].
  const b = new Map([
    [1, 50],
    [2, 90],
    [10, 100],
    [Infinity, 100],
  ]);
  assert.equal(histogramQuantile(0.5, b), 1);
  assert.equal(histogramQuantile(0.7, b), 1.5);
  assert.equal(histogramQuantile(0.95, b), 6);
  assert.equal(histogramQuantile(0.25, b), 0.5);
  assert.equal(
    histogramQuantile(
      0.5,
      new Map([
        [1, 0],
        [Infinity, 0],
      ]),
    ),
    undefined,
  );
  // Everything above the highest finite bound: that bound.
  assert.equal(
    histogramQuantile(
      0.99,
      new Map([
        [5, 0],
        [Infinity, 3],
      ]),
    ),
    5,
  );
});

void test('parsePrometheusText reads names, escaped labels and special values; skips comments and junk', () => {
  const text = [
    '# HELP request_total HTTP requests received',
    '# TYPE request_total counter',
    'request_total{direction="inbound",authority="a\\"b\\\\c",target_addr="10.0.0.1:80"} 42',
    'response_latency_ms_bucket{le="+Inf",direction="outbound"} 7',
    'process_resident_memory_bytes 1.5e8',
    'broken{x="1" 3',
    '',
  ].join('\n');
  const s = parsePrometheusText(text);
  assert.equal(s.length, 3);
  assert.deepEqual(s[0], {
    name: 'request_total',
    labels: { direction: 'inbound', authority: 'a"b\\c', target_addr: '10.0.0.1:80' },
    value: 42,
  });
  assert.equal(s[1]?.labels.le, '+Inf');
  assert.equal(s[2]?.value, 1.5e8);
  assert.equal(parsePrometheusText(text, (n) => n === 'request_total').length, 1);
});
