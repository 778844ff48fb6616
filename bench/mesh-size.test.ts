// Unit tests for the mesh-size scenario's pure parts: the store it fills (addresses, Services,
// endpoints, the client pod), the cells' aggregation over rounds, the target's verdict, the options
// and the table.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalStore } from '../src/control/store/local/local.js';
import { answer, parsePath } from '../src/control/destination/resolve.js';
import type { CellRun } from './mesh-cells.js';
import { buildMeshSizeReport, formatMeshSize, medianMemory } from './mesh-size.js';
import { CLIENT_POD, endpointIp, meshContent, MESH_NS, SERVICE_PORT, serviceIp, usedTargets } from './mesh-store.js';
import { parseOptions } from './options.js';
import { buildReport, formatTable } from './report.js';

void test('addresses: clusterIPs in 10.96.0.0/16, endpoints on distinct loopback addresses', () => {
  assert.equal(serviceIp(0), '10.96.0.1');
  assert.equal(serviceIp(254), '10.96.0.255');
  assert.equal(serviceIp(255), '10.96.1.0');
  assert.equal(serviceIp(4999), '10.96.19.136');
  assert.throws(() => serviceIp(65_534), /out of range/);
  assert.equal(endpointIp(0), '127.1.0.1');
  assert.equal(endpointIp(65_535), '127.2.0.0');
  const ips = new Set(Array.from({ length: 10_000 }, (_, n) => endpointIp(n)));
  assert.equal(ips.size, 10_000);
  assert.deepEqual(usedTargets(2), [
    { host: '10.96.0.1', port: SERVICE_PORT },
    { host: '10.96.0.2', port: SERVICE_PORT },
  ]);
});

void test('the mesh: N Services with E ready endpoints each on the upstream port, and the client pod', () => {
  const c = meshContent({ services: 3, endpointsPerService: 2, upstreamPort: 9000 });
  assert.equal(c.services.length, 3);
  assert.equal(c.pods.length, 7);
  const svc = c.services[2];
  assert.equal(svc?.clusterIP, '10.96.0.3');
  assert.deepEqual(svc?.endpoints, [
    { pod: `${MESH_NS}/svc-2-0`, ip: '127.1.0.5', ports: { [SERVICE_PORT]: 9000 }, ready: true },
    { pod: `${MESH_NS}/svc-2-1`, ip: '127.1.0.6', ports: { [SERVICE_PORT]: 9000 }, ready: true },
  ]);
  const client = c.pods.find((p) => p.name === CLIENT_POD);
  assert.equal(client?.meshed, true);
  // What the proxy will be told about a clusterIP, by the real destination code over the real store.
  const store = new LocalStore(c);
  const target = parsePath(`10.96.0.3:${SERVICE_PORT}`);
  assert.ok(target.ok);
  const a = answer(store.snapshot(), target.target, 'cluster.local');
  assert.equal(a.known, true);
  assert.equal(a.service, `svc-2.${MESH_NS}.svc.cluster.local:${SERVICE_PORT}`);
  assert.deepEqual(
    a.endpoints.map((e) => e.addr),
    ['127.1.0.5:9000', '127.1.0.6:9000'],
  );
});

const mem = (uss: number) => ({ rss_mb: uss + 43, pss_mb: uss + 2, uss_mb: uss, private_dirty_mb: uss - 1 });

function cell(services: number, used: number, round: number, uss: number, heap: number, cpUss: number): CellRun {
  return {
    services,
    used,
    round,
    idle: {
      proxy: mem(40 + round),
      control_plane: mem(cpUss),
      proxy_heap: { heap_used_mb: 16.9, external_mb: 2.5 },
      control_plane_heap: { heap_used_mb: cpUss / 2, external_mb: 1 },
    },
    proxy_heap_end: { heap_used_mb: heap, external_mb: 2.5 },
    control_plane_heap_end: { heap_used_mb: cpUss / 2, external_mb: 1 },
    proxy: { max: mem(uss + 1), end: mem(uss), samples: 4 },
    control_plane: { max: mem(cpUss + 1), end: mem(cpUss), samples: 4 },
    watches: used,
    requests: 3000,
    errors: 0,
    achieved_rps: 200,
    fill_ms: 5,
  };
}

void test('report: medians over rounds per cell, the spread across mesh sizes, the noise floor, the verdict', () => {
  const opts = parseOptions(['--scenario', 'mesh-size', '--services', '10,5000', '--used', '1,10']);
  assert.ok(opts !== 'help');
  const runs = [
    cell(10, 1, 1, 43, 17.3, 34),
    cell(10, 10, 1, 46, 17.9, 34),
    cell(5000, 1, 1, 43.5, 17.3, 78),
    cell(5000, 10, 1, 49, 17.9, 78),
    cell(10, 10, 2, 47, 17.9, 34),
    cell(5000, 10, 2, 48, 17.9, 79),
  ];
  const r = buildMeshSizeReport(runs, opts);
  assert.deepEqual(
    r.cells.map((c) => [c.services, c.used, c.rounds]),
    [
      [10, 1, 1],
      [10, 10, 2],
      [5000, 1, 1],
      [5000, 10, 2],
    ],
  );
  const big = r.cells[3];
  assert.equal(big?.proxy.end?.uss_mb, 48.5);
  assert.equal(big?.proxy.max?.uss_mb, 50);
  assert.equal(big?.control_plane.end?.uss_mb, 78.5);
  assert.equal(big?.proxy_heap_mb.end, 17.9);
  assert.deepEqual(r.spreads, [
    {
      used: 1,
      smallest_mesh: 10,
      largest_mesh: 5000,
      uss_delta_mb: 0.5,
      uss_spread_mb: 0.5,
      uss_growth_delta_mb: 0.5,
      heap_delta_mb: 0,
    },
    {
      used: 10,
      smallest_mesh: 10,
      largest_mesh: 5000,
      uss_delta_mb: 2,
      uss_spread_mb: 2,
      uss_growth_delta_mb: 2,
      heap_delta_mb: 0,
    },
  ]);
  assert.deepEqual(r.target, {
    used: 10,
    limit_mb: 2,
    uss_delta_mb: 2,
    uss_growth_delta_mb: 2,
    heap_delta_mb: 0,
    verdict: 'met',
    met: true,
  });
  assert.equal(big?.proxy_uss_growth_mb, 7);
  assert.deepEqual(r.idle_uss_range_mb, [41, 42]);
  assert.equal(r.runs.length, 6);

  // More memory at 5000 Services, and more live heap: missed.
  const missed = buildMeshSizeReport([cell(10, 10, 1, 46, 17.9, 34), cell(5000, 10, 1, 52.5, 23, 78)], opts);
  assert.equal(missed.target?.verdict, 'missed');
  assert.equal(missed.target?.met, false);
  assert.match(
    formatMeshSize(missed).join('\n'),
    /MISSED \(\+6\.5 MB; growth from idle \+6\.5 MB, live heap \+5\.1 MB\)/,
  );
  // More USS at 5000 Services, but already before any traffic (a launch that started 5 MB higher),
  // and the same live heap: launch noise, not the mesh.
  const noisy = cell(5000, 10, 1, 52, 17.9, 78);
  noisy.idle.proxy = mem(46);
  const inconclusive = buildMeshSizeReport([cell(10, 10, 1, 46, 17.9, 34), noisy], opts);
  assert.equal(inconclusive.target?.verdict, 'inconclusive');
  assert.match(
    formatMeshSize(inconclusive).join('\n'),
    /inconclusive: USS \+6\.0 MB, but the growth from idle \(\+1\.0 MB\)/,
  );

  const text = formatTable(buildReport([], opts, 10, undefined, '', { meshSize: r }));
  assert.match(
    text,
    /\n\s+5000\s+10\s+41\.5\s+48\.5\s+50\.0\s+50\.5\s+91\.5\s+16\.9\s+17\.9\s+78\.5\s+78\.5\s+80\.5\s+121\.5\s+39\.3\s+10\s+0\n/,
  );
  assert.equal(big?.control_plane_heap_mb.end, 39.25);
  assert.match(
    text,
    /10 used: proxy at 5000 Services - at 10: USS \+2\.0 MB \(spread over all sizes 2\.0 MB\), USS growth from idle \+2\.0 MB, live heap 0\.0 MB/,
  );
  assert.match(text, /noise floor: the proxy's USS before any traffic ranged 41\.0 to 42\.0 MB/);
  assert.match(text, /target \(10 used, USS within 2 MB whatever the mesh size\): met \(\+2\.0 MB\)/);
  assert.deepEqual(formatMeshSize(undefined), []);
  // Without 10 used at two sizes there is no verdict, and the table says so.
  const one = buildMeshSizeReport([cell(10, 1, 1, 43, 17.3, 34)], opts);
  assert.equal(one.target, undefined);
  assert.match(formatMeshSize(one).join('\n'), /not measured/);
});

void test('memory medians skip what was not readable', () => {
  assert.deepEqual(medianMemory([mem(10), null, mem(14), undefined]), mem(12));
  assert.equal(medianMemory([null]), null);
});

void test('options: mesh-size defaults, lists, --short', () => {
  const d = parseOptions(['--scenario', 'mesh-size']);
  assert.ok(d !== 'help');
  assert.deepEqual(
    [d.meshServices, d.meshUsed, d.meshEndpoints, d.meshRate, d.meshHoldS],
    [[10, 100, 1000, 5000], [1, 10, 100], 2, 200, 15],
  );
  const o = parseOptions([
    '--scenario',
    'mesh-size',
    '--services',
    '50,500',
    '--used',
    '5',
    '--endpoints',
    '3',
    '--mesh-rate',
    '100',
    '--hold',
    '8',
  ]);
  assert.ok(o !== 'help');
  assert.deepEqual([o.meshServices, o.meshUsed, o.meshEndpoints, o.meshRate, o.meshHoldS], [[50, 500], [5], 3, 100, 8]);
  const s = parseOptions(['--scenario', 'mesh-size', '--short', '--used', '1,10']);
  assert.ok(s !== 'help');
  assert.deepEqual([s.meshServices, s.meshUsed, s.meshHoldS, s.rounds], [[10, 5000], [1, 10], 5, 1]);
  assert.throws(() => parseOptions(['--services', '', '--used', '0']), /--services wants[\s\S]*--used wants/);
});
