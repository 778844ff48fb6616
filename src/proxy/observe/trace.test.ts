import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childContext, fieldValue, formatTraceparent, withTraceparent } from './trace.js';

void test('traceparent: a valid parent gives a child span of the same trace, keeping the sampled flag', () => {
  const c = childContext('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
  assert.equal(c.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(c.parentSpanId, '00f067aa0ba902b7');
  assert.match(c.spanId, /^[0-9a-f]{16}$/);
  assert.notEqual(c.spanId, c.parentSpanId);
  assert.equal(c.sampled, true);
  assert.equal(formatTraceparent(c), `00-4bf92f3577b34da6a3ce929d0e0e4736-${c.spanId}-01`);
  assert.equal(childContext('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00').sampled, false);
});

void test('traceparent: absent or invalid (version ff, zero ids, bad length) starts a new sampled trace', () => {
  for (const bad of [undefined, '', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`, '00-abc-def-01']) {
    const c = childContext(bad);
    assert.match(c.traceId, /^[0-9a-f]{32}$/);
    assert.equal(c.parentSpanId, '');
    assert.equal(c.sampled, true);
  }
});

void test('withTraceparent replaces the header (any case) and keeps the others, tracestate included', () => {
  const f = ['Host', 'web', 'TraceParent', 'old', 'tracestate', 'a=1'];
  const out = withTraceparent(f, 'new');
  assert.deepEqual(out, ['Host', 'web', 'tracestate', 'a=1', 'traceparent', 'new']);
  assert.equal(fieldValue(f, 'traceparent'), 'old');
  assert.equal(f[3], 'old', 'the original list is left as it is');
});
