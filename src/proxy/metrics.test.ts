import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyMetrics } from './metrics.js';

void test('label sets are bounded: past the cap, requests and connections land in one overflow set', async () => {
  const m = new ProxyMetrics();
  for (let i = 0; i < 5000; i++) {
    const r = m.route('outbound', `10.0.0.${i % 250}:80`, `host-${i}.example`);
    r.requests.inc();
    r.response(200, 1);
  }
  const text = await m.registry.metrics();
  const lines = text.split('\n').filter((l) => l.startsWith('request_total{'));
  assert.ok(lines.length <= 4097, `${lines.length} label sets`);
  const overflow = lines.find((l) => l.includes('authority="overflow"'));
  assert.ok(overflow, 'an overflow set exists');
  assert.match(overflow, /target_addr="overflow".* 904$/);
  const sum = lines.reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  assert.equal(sum, 5000, 'no request is lost');
});

void test('latency histogram buckets are cumulative and end at +Inf', async () => {
  const m = new ProxyMetrics();
  const r = m.route('inbound', '127.0.0.1:8080', 'web');
  for (const ms of [0.1, 0.4, 3, 3, 70, 45000]) r.response(200, ms);
  const text = await m.registry.metrics();
  const bucket = (le: string) =>
    Number(new RegExp(`response_latency_ms_bucket\\{le="${le.replace('+', '\\+')}"[^}]*\\} (\\d+)`).exec(text)?.[1]);
  assert.equal(bucket('0.25'), 1);
  assert.equal(bucket('0.5'), 2);
  assert.equal(bucket('3'), 4);
  assert.equal(bucket('100'), 5);
  assert.equal(bucket('30000'), 5);
  assert.equal(bucket('+Inf'), 6);
  assert.match(text, /response_latency_ms_count\{[^}]*\} 6/);
});

void test('route_* family: per route rule ("default" without one) and destination workload; request_total sums the destinations', async () => {
  const m = new ProxyMetrics({ self: { key: 'me', namespace: 'shop', workload: 'cart', pod: 'cart-0', service: '' } });
  const web1 = { key: 'a', namespace: 'default', workload: 'web', pod: 'web-1', service: 'web' };
  const web2 = { key: 'b', namespace: 'default', workload: 'web', pod: 'web-2', service: 'web' };
  for (const [dst, status] of [
    [web1, 200],
    [web1, 200],
    [web2, 503],
  ] as const) {
    const r = m.route('outbound', '10.96.0.1:80', 'web', undefined, undefined, dst);
    r.requests.inc();
    r.response(status, 2);
  }
  const g = m.route('outbound', '10.96.0.1:80', 'web', undefined, 'default/web-route', web1);
  g.requests.inc();
  g.response(200, 1, 0);
  const inb = m.route('inbound', '127.0.0.1:8080', 'cart');
  inb.requests.inc();
  inb.response(200, 0.3);
  const text = await m.registry.metrics();
  const line = (re: RegExp) => text.split('\n').filter((l) => re.test(l));
  assert.match(
    text,
    /route_request_total\{direction="outbound",target_addr="10.96.0.1:80",authority="web",route="default",dst_namespace="default",dst_deployment="web",dst_pod="web-1",dst_service="web"\} 2/,
  );
  assert.match(
    text,
    /route_response_total\{[^}]*route="default"[^}]*dst_pod="web-2"[^}]*status_code="503",grpc_status_code="",classification="failure"\} 1/,
  );
  assert.match(
    text,
    /route_response_total\{[^}]*route="default\/web-route"[^}]*dst_pod="web-1"[^}]*status_code="200",grpc_status_code="0",classification="success"\} 1/,
  );
  assert.match(
    text,
    /route_request_total\{direction="inbound",[^}]*route="default",dst_namespace="shop",dst_deployment="cart",dst_pod="cart-0",dst_service=""\} 1/,
  );
  assert.match(text, /route_response_latency_ms_bucket\{le="0.5",direction="inbound"[^}]*\} 1/);
  // The older family: one series per (direction, target, authority[, route]), destinations summed.
  assert.deepEqual(line(/^request_total\{/), [
    'request_total{direction="outbound",target_addr="10.96.0.1:80",authority="web"} 3',
    'request_total{direction="outbound",target_addr="10.96.0.1:80",authority="web",route="default/web-route"} 1',
    'request_total{direction="inbound",target_addr="127.0.0.1:8080",authority="cart"} 1',
  ]);
  assert.match(
    text,
    /^response_total\{direction="outbound",target_addr="10.96.0.1:80",authority="web",status_code="200",grpc_status_code="",classification="success"\} 2$/m,
  );
  assert.match(
    text,
    /^response_latency_ms_count\{direction="outbound",target_addr="10.96.0.1:80",authority="web",status_code="200",grpc_status_code="",classification="success"\} 2$/m,
  );
});

void test('the route_* family is bounded too: past the cap, new destinations fold into dst "overflow"', async () => {
  const m = new ProxyMetrics();
  for (let i = 0; i < 5000; i++) {
    const r = m.route('outbound', '10.96.0.1:80', 'web', undefined, undefined, {
      key: `p${i}`,
      namespace: 'default',
      workload: 'web',
      pod: `web-${i}`,
      service: 'web',
    });
    r.requests.inc();
    r.response(200, 1);
  }
  const lines = (await m.registry.metrics()).split('\n').filter((l) => l.startsWith('route_request_total{'));
  assert.ok(lines.length <= 4097, `${lines.length} label sets`);
  assert.match(lines.find((l) => l.includes('dst_pod="overflow"')) ?? '', / 904$/);
});

void test('the process_* metrics: CPU seconds, resident memory, open file descriptors', async () => {
  const text = await new ProxyMetrics().registry.metrics();
  for (const name of [
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'process_open_fds',
    'process_max_fds',
    'process_start_time_seconds',
  ]) {
    const v = Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1]);
    assert.ok(v > 0, `${name} = ${v}`);
  }
});
