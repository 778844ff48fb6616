// The grpc scenario's parts that need no processes: the haproxy pair's HTTP/2 configuration, the unary
// body h2load posts, and the report's added p99, its ratio and the generator's saturation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grpcFrame, streamRequest } from './grpc-service.js';
import { haproxyMtlsClientConfig, haproxyMtlsServerConfig } from './mtls.js';
import { parseOptions } from './options.js';
import { buildReport, formatTable } from './report.js';
import type { Sample } from './types.js';

const files = { clientPem: '/c.pem', serverPem: '/s.pem', caPem: '/ca.pem' };

void test('grpc: the haproxy pair speaks HTTP/2 end to end only when asked', () => {
  const server = haproxyMtlsServerConfig(1000, 2000, files, '/sock', true);
  assert.match(server, /bind 127\.0\.0\.1:1000 ssl .* alpn h2\n/);
  assert.match(server, /server upstream 127\.0\.0\.1:2000 proto h2\n/);
  const client = haproxyMtlsClientConfig({ keepalive: 3000, handshake: 3001 }, 1000, files, false, true);
  assert.match(client, /bind 127\.0\.0\.1:3000 proto h2\n/);
  assert.match(client, /server mesh 127\.0\.0\.1:1000 ssl .* alpn h2/);
  assert.doesNotMatch(haproxyMtlsServerConfig(1000, 2000, files, '/sock'), /h2/);
  assert.doesNotMatch(haproxyMtlsClientConfig({ keepalive: 3000, handshake: 3001 }, 1000, files), /h2/);
});

void test('grpc: a unary body is one gRPC message frame; a stream request says how many answers', () => {
  assert.deepEqual([...grpcFrame(Buffer.from('abc'))], [0, 0, 0, 0, 3, 0x61, 0x62, 0x63]);
  assert.equal(streamRequest(10, Buffer.from('x')).readUInt32BE(0), 10);
});

void test('grpc report: added p99 over direct, its outrigger/haproxy ratio, and a saturated generator flagged', () => {
  const opts = parseOptions(['--scenario', 'grpc', '--rounds', '1']);
  assert.ok(opts !== 'help');
  const mem = { rss_mb: 50, uss_mb: 30, pss_mb: 35, private_dirty_mb: 30 };
  const s = (path: 'direct' | 'outrigger' | 'haproxy', p99Ms: number, gen: number): Sample => ({
    scenario: 'grpc-unary',
    path,
    round: 1,
    rps: 1000,
    p50Ms: 1,
    p99Ms,
    requests: 10_000,
    errors: 0,
    memory: path === 'direct' ? null : mem,
    loadgenCpuCores: gen,
    ...(path === 'direct'
      ? {}
      : { pairMemory: { client: mem, server: mem }, pairCpuUsPerRequest: { client: 100, server: 90 } }),
  });
  const report = buildReport([s('direct', 10, 0.95), s('outrigger', 16, 0.5), s('haproxy', 13, 0.6)], opts, 10);
  const o = report.results.find((r) => r.path === 'outrigger');
  assert.equal(o?.added_p99_ms, 6);
  assert.equal(report.results.find((r) => r.path === 'haproxy')?.added_p99_ms, 3);
  assert.equal(report.results.find((r) => r.path === 'direct')?.added_p99_ms, undefined);
  assert.equal(report.ratios[0]?.added_p99_outrigger_over_haproxy, 2);
  assert.equal(o?.client_proxy_cpu_us_per_request, 100);
  const table = formatTable(report);
  assert.match(table, /grpc-unary\s+direct .*0\.95 SATURATED/);
  assert.match(table, /grpc-unary\s+outrigger .* 6\.00\s+2\.00 /);
  // The mtls table is for the mtls loads only.
  assert.doesNotMatch(table, /TLS conns\/req/);
});
