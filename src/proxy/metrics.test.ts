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
  const bucket = (le: string) => Number(new RegExp(`response_latency_ms_bucket\\{le="${le.replace('+', '\\+')}"[^}]*\\} (\\d+)`).exec(text)?.[1]);
  assert.equal(bucket('0.25'), 1);
  assert.equal(bucket('0.5'), 2);
  assert.equal(bucket('3'), 4);
  assert.equal(bucket('100'), 5);
  assert.equal(bucket('30000'), 5);
  assert.equal(bucket('+Inf'), 6);
  assert.match(text, /response_latency_ms_count\{[^}]*\} 6/);
});
