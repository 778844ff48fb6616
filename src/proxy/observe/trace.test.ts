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
  for (const bad of [
    undefined,
    '',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
    `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`,
    '00-abc-def-01',
  ]) {
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

void test('the span queue is bounded: beyond it spans are dropped and counted, as are those of a failed export', async () => {
  const { Tracer } = await import('./trace.js');
  const { createLogger } = await import('../../core/log.js');
  const { NO_DST } = await import('../metrics.js');
  // Nothing listens on port 9 of loopback (discard): the export fails.
  const tr = new Tracer({
    collector: 'http://127.0.0.1:9',
    resource: { 'service.name': 'x' },
    log: createLogger('test', 'silent'),
    maxQueue: 2,
    maxBatch: 100,
    flushMs: 60_000,
  });
  const ev = {
    startMs: Date.now(),
    direction: 'outbound' as const,
    src: 'a:1',
    dst: 'b:2',
    tls: false,
    clientId: '',
    serverId: '',
    method: 'GET',
    authority: 'web',
    path: '/',
    status: 200,
    grpcStatus: undefined,
    failure: undefined,
    latencyMs: 1,
    route: 'default',
    dstMeta: NO_DST,
    fields: [],
    trace: childContext(undefined),
  };
  for (let i = 0; i < 5; i++) tr.emit(ev);
  tr.emit({ ...ev, trace: childContext('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00') }); // unsampled: never queued
  assert.equal(tr.stats.dropped, 3);
  tr.flush();
  const end = Date.now() + 5000;
  while (tr.stats.exportFailures === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  assert.equal(tr.stats.exportFailures, 1);
  assert.equal(tr.stats.dropped, 5);
  assert.equal(tr.stats.exported, 0);
  tr.close();
});

void test("sampling: a started trace is sampled with the ratio; a parent's flag always wins", () => {
  let n = 0;
  for (let i = 0; i < 2000; i++) if (childContext(undefined, 0.25).sampled) n++;
  assert.ok(n > 400 && n < 600, `${n} of 2000 sampled at 0.25`);
  assert.equal(childContext(undefined, 0).sampled, false);
  assert.equal(childContext('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 0).sampled, true);
});

void test('a span of an answer cut after a 200 head is an error span that says why', async () => {
  const { Tracer } = await import('./trace.js');
  const { createLogger } = await import('../../core/log.js');
  const { NO_DST } = await import('../metrics.js');
  const tr = new Tracer({
    collector: 'http://127.0.0.1:9',
    resource: { 'service.name': 'x' },
    log: createLogger('test', 'silent'),
    maxQueue: 10,
    maxBatch: 100,
    flushMs: 60_000,
  });
  const ev = {
    startMs: Date.now(),
    direction: 'outbound' as const,
    src: 'a:1',
    dst: 'b:2',
    tls: false,
    clientId: '',
    serverId: '',
    method: 'GET',
    authority: 'web',
    path: '/',
    status: 200,
    grpcStatus: undefined,
    failure: undefined as string | undefined,
    latencyMs: 1,
    route: 'default',
    dstMeta: NO_DST,
    fields: [],
    trace: childContext(undefined),
  };
  tr.emit(ev);
  tr.emit({ ...ev, failure: 'reset' });
  const [whole, cut] = (
    tr as unknown as { queue: { status: unknown; attributes: { key: string; value: { stringValue?: string } }[] }[] }
  ).queue;
  assert.deepEqual(whole?.status, {});
  assert.deepEqual(cut?.status, { code: 2 });
  assert.equal(cut?.attributes.find((a) => a.key === 'outrigger.failure')?.value.stringValue, 'reset');
  tr.close();
});
