// Unit tests for the mtls scenario's pieces: the counters it reads (Prometheus text, haproxy's show
// info), the haproxy pair's configs, the meshed store content, the option, and its rows in the report.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serviceContent, VIP, VIP_PORT } from './control.js';
import { spiffeOf } from './identity.js';
import type { MemoryFigures } from './memory.js';
import {
  haproxyInfoField,
  haproxyMtlsClientConfig,
  haproxyMtlsServerConfig,
  HANDSHAKE_SETUP,
  promCounterSum,
} from './mtls.js';
import { parseOptions } from './options.js';
import { buildReport, formatTable, type Sample } from './report.js';
import { cpuSeconds } from './tools.js';

const METRICS = `# HELP tcp_open_total connections accepted
# TYPE tcp_open_total counter
tcp_open_total{direction="inbound",target_addr="127.0.0.1:9001",tls="true",client_id="spiffe://cluster.local/ns/bench/sa/client"} 1200
tcp_open_total{direction="inbound",target_addr="127.0.0.1:9001",tls="no_identity"} 7
tcp_open_total{direction="outbound",target_addr="127.0.0.1:9001",tls="true",server_id="spiffe://cluster.local/ns/bench/sa/server"} 30
tcp_open_total_extra{direction="inbound",tls="true"} 99
tcp_open_total{direction="inbound",target_addr="127.0.0.2:9001",tls="true",client_id="spiffe://cluster.local/ns/bench/sa/other"} 5
`;

void test('prometheus text: a counter summed over the label sets that match', () => {
  assert.equal(promCounterSum(METRICS, 'tcp_open_total', { direction: 'inbound', tls: 'true' }), 1205);
  assert.equal(promCounterSum(METRICS, 'tcp_open_total', { direction: 'inbound' }), 1212);
  assert.equal(promCounterSum(METRICS, 'tcp_open_total', {}), 1242);
  assert.equal(promCounterSum(METRICS, 'tcp_open_total', { direction: 'nope' }), 0);
  assert.equal(promCounterSum('up 1\n', 'up', {}), 1);
});

void test('haproxy show info: one field, or an error naming it', () => {
  const info = 'Name: HAProxy\nCumConns: 12\nCumSslConns: 3456\nSslFrontendKeyRate: 0\n';
  assert.equal(haproxyInfoField(info, 'CumSslConns'), 3456);
  assert.equal(haproxyInfoField(info, 'CumConns'), 12);
  assert.throws(() => haproxyInfoField(info, 'Nope'), /no Nope field/);
});

void test('haproxy mtls pair: TLS 1.3 both ways, client certificates required, pooled vs fresh backends', () => {
  const files = { clientPem: '/d/haproxy-client.pem', serverPem: '/d/haproxy-server.pem', caPem: '/d/ca.pem' };
  const server = haproxyMtlsServerConfig(9100, 9200, files, '/d/s.sock');
  assert.match(server, /\n {4}nbthread 1\n/);
  assert.match(server, /\n {4}stats socket \/d\/s\.sock mode 600 level user\n/);
  assert.match(
    server,
    /\n {4}bind 127\.0\.0\.1:9100 ssl crt \/d\/haproxy-server\.pem ca-file \/d\/ca\.pem verify required ssl-min-ver TLSv1\.3 ssl-max-ver TLSv1\.3\n/,
  );
  assert.match(server, /backend app\n {4}http-reuse always\n {4}server upstream 127\.0\.0\.1:9200\n/);
  const client = haproxyMtlsClientConfig({ keepalive: 9001, handshake: 9002 }, 9100, files);
  const origin =
    'server mesh 127\\.0\\.0\\.1:9100 ssl crt /d/haproxy-client\\.pem ca-file /d/ca\\.pem verify required ssl-min-ver TLSv1\\.3 ssl-max-ver TLSv1\\.3';
  assert.match(client, /frontend bench_in\n {4}bind 127\.0\.0\.1:9001\n {4}default_backend mesh_pooled\n/);
  assert.match(client, /frontend bench_handshake\n {4}bind 127\.0\.0\.1:9002\n {4}default_backend mesh_fresh\n/);
  assert.match(client, new RegExp(`backend mesh_pooled\\n {4}http-reuse always\\n {4}${origin}\\n`));
  assert.match(client, new RegExp(`backend mesh_fresh\\n {4}http-reuse never\\n {4}${origin} no-ssl-reuse\\n`));
  // --resumption on: haproxy may resume its TLS sessions too, as outrigger does by default.
  const resuming = haproxyMtlsClientConfig({ keepalive: 9001, handshake: 9002 }, 9100, files, true);
  assert.match(resuming, new RegExp(`backend mesh_fresh\\n {4}http-reuse never\\n {4}${origin}\\n`));
});

void test('mtls store content: the Service endpoint is the server proxy, meshed, with its ServiceAccount', () => {
  const c = serviceContent(
    [{ pod: 'server-0', ip: '127.0.0.1', port: 9100, meshed: true, serviceAccount: 'server' }],
    'server',
  );
  assert.equal(c.services[0]?.name, 'server');
  assert.equal(c.services[0]?.clusterIP, VIP);
  assert.deepEqual(c.services[0]?.endpoints, [
    { pod: 'bench/server-0', ip: '127.0.0.1', ports: { [VIP_PORT]: 9100 }, ready: true },
  ]);
  assert.equal(c.pods[0]?.meshed, true);
  assert.equal(c.pods[0]?.serviceAccount, 'server');
  assert.equal(spiffeOf('server'), 'spiffe://cluster.local/ns/bench/sa/server');
});

void test('options: --scenario mtls', () => {
  const o = parseOptions(['--scenario', 'mtls']);
  assert.ok(o !== 'help');
  assert.deepEqual(o.scenarios, ['mtls']);
});

/** Memory figures with PSS halfway between USS and RSS. */
const mem = (rss: number, uss: number): MemoryFigures => ({
  rss_mb: rss,
  uss_mb: uss,
  pss_mb: (rss + uss) / 2,
  private_dirty_mb: uss,
});

void test('report: mtls gives keep-alive and handshake rows, each with its ratio, memory parts and connections per request', () => {
  const opts = parseOptions(['--scenario', 'mtls', '--rounds', '2']);
  assert.ok(opts !== 'help');
  const sample = (
    scenario: 'mtls' | 'mtls-handshake',
    path: 'outrigger' | 'haproxy',
    round: number,
    rps: number,
    tls: number,
  ): Sample => ({
    scenario,
    path,
    round,
    rps,
    p50Ms: 1,
    p99Ms: path === 'outrigger' ? 4 : 2,
    requests: 1000,
    errors: 0,
    memory: path === 'outrigger' ? mem(200, 80) : mem(30, 12),
    pairMemory:
      path === 'outrigger' ? { client: mem(90, 35), server: mem(110, 45) } : { client: mem(14, 5), server: mem(16, 7) },
    pairCpuUsPerRequest: { client: round * 10, server: null },
    tlsConnections: tls,
    upstreamConnections: 0,
  });
  const samples = [
    sample('mtls', 'outrigger', 1, 10_000, 16),
    sample('mtls', 'haproxy', 1, 20_000, 16),
    sample('mtls', 'outrigger', 2, 12_000, 0),
    sample('mtls', 'haproxy', 2, 20_000, 0),
    sample('mtls-handshake', 'outrigger', 1, 500, 1001),
    sample('mtls-handshake', 'haproxy', 1, 1000, 1003),
  ];
  const report = buildReport(samples, opts, 10, undefined, HANDSHAKE_SETUP);
  assert.deepEqual(
    report.results.map((r) => [r.scenario, r.path, r.rps]),
    [
      ['mtls', 'outrigger', 11_000],
      ['mtls', 'haproxy', 20_000],
      ['mtls-handshake', 'outrigger', 500],
      ['mtls-handshake', 'haproxy', 1000],
    ],
  );
  assert.deepEqual(report.ratios, [
    { scenario: 'mtls', rps_outrigger_over_haproxy: 0.55, p99_outrigger_over_haproxy: 2 },
    { scenario: 'mtls-handshake', rps_outrigger_over_haproxy: 0.5, p99_outrigger_over_haproxy: 2 },
  ]);
  const o = report.results[0];
  assert.equal(o?.proxy_rss_mb, 200);
  assert.equal(o?.proxy_uss_mb, 80);
  assert.equal(o?.proxy_pss_mb, 140);
  assert.equal(o?.client_proxy_rss_mb, 90);
  assert.equal(o?.client_proxy_uss_mb, 35);
  assert.equal(o?.client_proxy_pss_mb, 62.5);
  assert.equal(o?.server_proxy_rss_mb, 110);
  assert.equal(o?.server_proxy_uss_mb, 45);
  assert.equal(o?.client_proxy_cpu_us_per_request, 15);
  assert.equal(o?.server_proxy_cpu_us_per_request, null);
  assert.equal(o?.tls_connections_per_request, 0.008);
  assert.equal(report.results[3]?.tls_connections_per_request, 1.003);
  assert.equal(report.config.mtls_handshake_load, HANDSHAKE_SETUP);
  const table = formatTable(report);
  assert.match(table, /mtls-handshake\s+outrigger\s+500\s+1\.00\s+4\.00\s+200\.0\s+80\.0\s+140\.0\s+0\.50\s+2\.00\s+0/);
  assert.match(
    table,
    /mtls-handshake\s+haproxy\s+14\.0\s+5\.0\s+9\.5\s+16\.0\s+7\.0\s+11\.5\s+10\.0\s+-\s+1\.003\s+0\.000/,
  );
  // Without mtls the report has none of its fields (the JSON other scenarios wrote stays as it was).
  const plain = parseOptions(['--scenario', 'http1']);
  assert.ok(plain !== 'help');
  const r = buildReport(
    [{ ...sample('mtls', 'haproxy', 1, 1, 0), scenario: 'http1', pairMemory: undefined }],
    plain,
    10,
  );
  assert.equal('mtls_handshake_load' in r.config, false);
  assert.deepEqual(Object.keys(r.results[0] ?? {}), [
    'scenario',
    'path',
    'rps',
    'p50_ms',
    'p99_ms',
    'proxy_rss_mb',
    'proxy_uss_mb',
    'proxy_pss_mb',
    'errors',
  ]);
});

void test('cpu time of a process from /proc', () => {
  const cpu = cpuSeconds(process.pid);
  assert.ok(cpu !== null && cpu >= 0);
  assert.equal(cpuSeconds(2 ** 30), null);
});
