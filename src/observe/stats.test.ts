import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsHistory } from './history.js';
import type { Sample } from './prom-text.js';
import { aggregate, type Topology } from './stats.js';

const topo: Topology = {
  pods: [
    {
      namespace: 'default',
      name: 'client-0',
      ip: '10.0.0.2',
      deployment: 'client',
      meshed: true,
      ready: true,
      labels: { app: 'client' },
    },
    {
      namespace: 'default',
      name: 'web-v1-0',
      ip: '10.0.0.3',
      deployment: 'web-v1',
      meshed: true,
      ready: true,
      labels: { app: 'web', version: 'v1' },
    },
    {
      namespace: 'default',
      name: 'web-v2-0',
      ip: '10.0.0.4',
      deployment: 'web-v2',
      meshed: true,
      ready: true,
      labels: { app: 'web', version: 'v2' },
    },
    { namespace: 'default', name: 'legacy', ip: '10.0.0.5', meshed: false, ready: true, labels: {} },
  ],
  services: [
    { namespace: 'default', name: 'web', clusterIP: '10.96.0.10', selector: { app: 'web' } },
    { namespace: 'default', name: 'web-v1', clusterIP: '10.96.0.11', selector: { app: 'web', version: 'v1' } },
    { namespace: 'default', name: 'web-v2', clusterIP: '10.96.0.12', selector: { app: 'web', version: 'v2' } },
  ],
  routes: [
    {
      kind: 'HTTPRoute',
      namespace: 'default',
      name: 'web',
      parents: ['web'],
      backends: [
        { service: 'web-v1', weight: 90 },
        { service: 'web-v2', weight: 10 },
      ],
    },
  ],
};

/** response_total and a latency histogram (all observations in the `le` bucket) for one label set. */
function http(
  direction: string,
  target: string,
  ok: number,
  failed: number,
  le: number,
  extra: Record<string, string> = {},
): Sample[] {
  const base = { direction, target_addr: target, authority: 'web', ...extra };
  const out: Sample[] = [
    { name: 'response_total', labels: { ...base, status_code: '200', classification: 'success' }, value: ok },
    { name: 'response_total', labels: { ...base, status_code: '503', classification: 'failure' }, value: failed },
  ];
  for (const b of [1, 10, 100])
    out.push({
      name: 'response_latency_ms_bucket',
      labels: { ...base, status_code: '200', classification: 'success', le: String(b) },
      value: b >= le ? ok + failed : 0,
    });
  out.push({
    name: 'response_latency_ms_bucket',
    labels: { ...base, status_code: '200', classification: 'success', le: '+Inf' },
    value: ok + failed,
  });
  return out;
}

void test('aggregate: workload, Service, edge and route figures over a window', () => {
  const h = new MetricsHistory();
  const t0 = 1_000_000;
  // Nothing at t0; over the next 10 s: the client sent 100 requests to web (route default/web), 2
  // failed; web-v1 served 90 (1 failed), web-v2 served 10 (1 failed).
  h.record('default/client-0', t0, [
    ...http('outbound', '10.96.0.10:80', 0, 0, 10, { route: 'default/web' }),
    { name: 'process_cpu_seconds_total', labels: {}, value: 5 },
  ]);
  h.record('default/web-v1-0', t0, http('inbound', '10.0.0.3:8080', 0, 0, 1));
  h.record('default/web-v2-0', t0, http('inbound', '10.0.0.4:8080', 0, 0, 10));
  h.record('default/client-0', t0 + 10_000, [
    ...http('outbound', '10.96.0.10:80', 98, 2, 10, { route: 'default/web' }),
    { name: 'process_cpu_seconds_total', labels: {}, value: 6 },
    { name: 'process_resident_memory_bytes', labels: {}, value: 50e6 },
    { name: 'tcp_open_connections', labels: { direction: 'outbound', target_addr: '10.96.0.10:80' }, value: 2 },
  ]);
  h.record('default/web-v1-0', t0 + 10_000, http('inbound', '10.0.0.3:8080', 89, 1, 1));
  h.record('default/web-v2-0', t0 + 10_000, http('inbound', '10.0.0.4:8080', 9, 1, 10));

  const s = aggregate(topo, h, { now: t0 + 10_000, windowSec: 60, scrapeIntervalSec: 5 });
  assert.equal(s.spanSec, 10);
  const w = (name: string) => s.workloads.find((x) => x.name === name);
  assert.equal(w('web-v1')?.rps, 9);
  assert.equal(w('web-v1')?.successRate, 0.9889);
  assert.equal(w('web-v2')?.successRate, 0.9);
  assert.equal(w('web-v1')?.p50, 0.5, 'inside the first bucket, interpolated from 0');
  assert.equal(w('client')?.proxyCpu, 0.1);
  assert.equal(w('client')?.proxyMemory, 50e6);
  assert.deepEqual([w('legacy')?.kind, w('legacy')?.meshed, w('legacy')?.pods, w('legacy')?.rps], ['pod', 0, 1, 0]);

  const web = s.services.find((x) => x.name === 'web');
  assert.equal(web?.rps, 10);
  assert.equal(web?.successRate, 0.98);
  assert.equal(web?.tcpConnections, 2);
  assert.equal(web?.pods, 2);

  assert.deepEqual(
    s.serviceEdges.map((e) => [e.from.name, e.to.name, e.rps]),
    [['client', 'web', 10]],
  );
  // Without dst labels the Service's traffic is split by the workloads' inbound rates: 9 : 1.
  const edges = Object.fromEntries(s.edges.map((e) => [e.to.name, e]));
  assert.equal(edges['web-v1']?.rps, 9);
  assert.equal(edges['web-v2']?.rps, 1);
  assert.equal(edges['web-v1']?.estimated, true);

  const route = s.routes.find((r) => r.route === 'default/web');
  assert.equal(route?.service, 'web');
  assert.deepEqual(
    route?.backends.map((b) => [b.service, b.weight, b.share]),
    [
      ['web-v1', 0.9, 0.9],
      ['web-v2', 0.1, 0.1],
    ],
  );
  assert.equal(
    s.routes.some((r) => r.route === '[default]'),
    false,
    'no unrouted traffic, no row',
  );
});

void test('aggregate: route_* series with dst labels make workload edges exact; a counter reset is not negative', () => {
  const h = new MetricsHistory();
  const t0 = 2_000_000;
  const routeSeries = (v1: number, v2: number): Sample[] => [
    {
      name: 'route_response_total',
      labels: {
        direction: 'outbound',
        target_addr: '10.96.0.10:80',
        route: 'default',
        classification: 'success',
        dst_namespace: 'default',
        dst_deployment: 'web-v1',
        dst_service: 'web-v1',
      },
      value: v1,
    },
    {
      name: 'route_response_total',
      labels: {
        direction: 'outbound',
        target_addr: '10.96.0.10:80',
        route: 'default',
        classification: 'success',
        dst_namespace: 'default',
        dst_deployment: 'web-v2',
        dst_service: 'web-v2',
      },
      value: v2,
    },
  ];
  h.record('default/client-0', t0, [...http('outbound', '10.96.0.10:80', 500, 0, 10), ...routeSeries(0, 0)]);
  // The proxy restarted: its counters start again from 0 (50 = the increase, not -450).
  h.record('default/client-0', t0 + 5_000, [...http('outbound', '10.96.0.10:80', 50, 0, 10), ...routeSeries(25, 25)]);
  const s = aggregate(topo, h, { now: t0 + 5_000, windowSec: 30, scrapeIntervalSec: 5 });
  assert.equal(s.services.find((x) => x.name === 'web')?.rps, 10);
  const edges = Object.fromEntries(s.edges.map((e) => [e.to.name, e]));
  assert.equal(edges['web-v1']?.rps, 5);
  assert.equal(edges['web-v2']?.rps, 5);
  assert.equal(edges['web-v1']?.estimated, undefined);
});

void test('MetricsHistory: a window starts at the newest scrape at or before its start; old scrapes go', () => {
  const h = new MetricsHistory(60_000);
  for (let i = 0; i <= 100; i++) h.record('p', i * 1000, [{ name: 'request_total', labels: {}, value: i * 2 }]);
  const w = h.window('p', 100_000, 10_000);
  assert.equal(w?.spanSec, 10);
  assert.equal(w?.series[0]?.increase, 20);
  // Retention 60 s: a 5-minute window reaches back only as far as the history does.
  assert.ok((h.window('p', 100_000, 300_000)?.spanSec ?? 0) <= 61);
  h.retain(new Set());
  assert.equal(h.window('p', 100_000, 10_000), undefined);
});
