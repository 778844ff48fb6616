// Unit tests for the bench's parsers and aggregation (wrk and h2load output, percentiles, median, options,
// the balance and propagation scenarios' configs, replies and report).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { latencyPercentiles, parseH2loadSummary } from './h2.js';
import { parseWrk, parseWrkTime } from './http1.js';
import { parseControlReply, serviceContent, VIP, VIP_PORT } from './control.js';
import { parseOptions } from './options.js';
import { haproxyBalanceConfig, haproxyConfig } from './paths.js';
import { countConnectionsTo, endpointSet } from './propagation.js';
import { buildReport, formatRatio, formatTable, median, percentile, replicaShares } from './report.js';

const WRK = `Running 2s test @ http://127.0.0.1:18181/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   361.73us    1.45ms  28.88ms   98.24%
  Latency Distribution
     50%  167.00us
     75%  243.00us
     90%  335.00us
     99%    1.02s
  157585 requests in 2.00s, 172.68MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  78754.42
Transfer/sec:     86.30MB
`;

void test('wrk report: rps, p50/p99 across units, errors', () => {
  assert.deepEqual(parseWrk(WRK), { rps: 78754.42, p50Ms: 0.167, p99Ms: 1020, requests: 157585, errors: 7 });
  assert.equal(parseWrkTime('4.26ms'), 4.26);
  assert.throws(() => parseWrk('garbage'));
});

void test('h2load summary: rps and errors (failed + non-2xx)', () => {
  const out = `finished in 2.00s, 69865.00 req/s, 69.56MB/s
requests: 139730 total, 139890 started, 139730 done, 139728 succeeded, 2 failed, 2 errored, 0 timeout
status codes: 139700 2xx, 0 3xx, 0 4xx, 28 5xx
`;
  assert.deepEqual(parseH2loadSummary(out), { rps: 69865, requests: 139730, errors: 30 });
});

void test('h2load log: nearest-rank percentiles, failed streams skipped', () => {
  const lines = Array.from({ length: 100 }, (_, i) => `1795595892404970\t200\t${(i + 1) * 1000}`);
  lines.push('1795595892404970\t-1\t999999999', '');
  assert.deepEqual(latencyPercentiles(lines.join('\n')), { p50Ms: 50, p99Ms: 99 });
});

void test('median of odd and even counts', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
});

void test('options: defaults, --json with and without a file, every problem at once', () => {
  const defaults = parseOptions([]);
  assert.ok(defaults !== 'help');
  assert.equal(defaults.duration, 10);
  assert.equal(defaults.rounds, 2);
  assert.equal(defaults.connections, 16);
  assert.equal(defaults.json, undefined);
  const a = parseOptions(['--json', '--scenario=h2']);
  assert.ok(a !== 'help' && a.json === '-' && a.scenarios.join() === 'h2');
  const b = parseOptions(['--json', 'out.json', '--paths', 'haproxy,direct']);
  assert.ok(b !== 'help' && b.json === 'out.json' && b.paths.join() === 'direct,haproxy');
  assert.throws(() => parseOptions(['--rounds', '0', '--nope']), /rounds[\s\S]*--nope/);
});

void test('options: balance and propagation flags', () => {
  const d = parseOptions([]);
  assert.ok(d !== 'help');
  assert.deepEqual(d.scenarios, ['http1', 'h2', 'balance', 'mtls', 'grpc', 'propagation']);
  assert.equal(d.slowMs, 200);
  assert.equal(d.watchers, 200);
  assert.equal(d.changes, 10);
  assert.equal(d.balanceClient, 'h2load');
  const o = parseOptions([
    '--scenario',
    'propagation',
    '--watchers=50',
    '--changes',
    '3',
    '--slow-ms',
    '0',
    '--balance-client',
    'wrk',
  ]);
  assert.ok(o !== 'help');
  assert.deepEqual(o.scenarios, ['propagation']);
  assert.equal(o.watchers, 50);
  assert.equal(o.changes, 3);
  assert.equal(o.slowMs, 0);
  assert.equal(o.balanceClient, 'wrk');
  assert.throws(
    () => parseOptions(['--scenario', 'nope', '--watchers', '0', '--balance-client', 'ab']),
    /scenario[\s\S]*watchers[\s\S]*balance-client/,
  );
});

void test('nearest-rank percentile', () => {
  const v = Array.from({ length: 200 }, (_, i) => i + 1);
  assert.equal(percentile(v, 50), 100);
  assert.equal(percentile(v, 99), 198);
  assert.equal(percentile(v, 100), 200);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

void test('balance: replica shares summed over rounds, the last replica is the slow one', () => {
  const shares = replicaShares([
    [10, 30, 0],
    [50, 10, 0],
  ]);
  assert.deepEqual(shares, [
    { name: 'fast1', slow: false, requests: 60, share: 0.6 },
    { name: 'fast2', slow: false, requests: 40, share: 0.4 },
    { name: 'slow', slow: true, requests: 0, share: 0 },
  ]);
});

void test('balance: haproxy gets the three servers with balance roundrobin', () => {
  const cfg = haproxyBalanceConfig(9000, [9001, 9002, 9003]);
  assert.match(cfg, /bind 127\.0\.0\.1:9000\n/);
  assert.match(
    cfg,
    /\n {4}balance roundrobin\n {4}server replica0 127\.0\.0\.1:9001\n {4}server replica1 127\.0\.0\.1:9002\n {4}server replica2 127\.0\.0\.1:9003\n/,
  );
  // The single-server config is unchanged.
  assert.match(haproxyConfig('http1', 9000, 9001), /\n {4}server upstream 127\.0\.0\.1:9001\n$/);
});

void test('balance: the store content maps the VIP to the replicas, unmeshed and ready', () => {
  const c = serviceContent([{ pod: 'r0', ip: '127.0.0.1', port: 9001 }]);
  const svc = c.services[0];
  assert.equal(svc?.clusterIP, VIP);
  assert.deepEqual(svc?.endpoints, [{ pod: 'bench/r0', ip: '127.0.0.1', ports: { [VIP_PORT]: 9001 }, ready: true }]);
  assert.equal(c.pods[0]?.meshed, false);
});

void test('propagation: endpoint sets, control replies, /proc/net/tcp connections', () => {
  const a = endpointSet(1).map((e) => `${e.ip}:${e.port}`);
  const b = endpointSet(2).map((e) => `${e.ip}:${e.port}`);
  assert.equal(new Set(a).size, 3);
  assert.deepEqual(a.slice(1), b.slice(0, 2)); // a rolling update: one out, one in
  assert.deepEqual(parseControlReply('{"id":3,"t_ns":"123456789012","cpu_us":5,"watchers":200}'), {
    id: 3,
    tNs: 123456789012n,
    cpuUs: 5,
    watchers: 200,
  });
  assert.throws(() => parseControlReply('{"id":3}'), /unexpected reply/);
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9C40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:D431 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:9C40 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:D432 0100007F:9C40 06 00000000:00000000 00:00000000 00000000  1000        0 4 1 0000000000000000 20 4 30 10 -1
`;
  assert.equal(countConnectionsTo(tcp, 0x9c40), 1);
});

void test('report: balance shares and propagation appear in the table and the JSON', () => {
  const opts = parseOptions(['--scenario', 'all']);
  assert.ok(opts !== 'help');
  const sample = (path: 'outrigger' | 'haproxy', p99Ms: number, replicaCounts: number[]) => ({
    scenario: 'balance' as const,
    path,
    round: 1,
    memory: { rss_mb: 10, uss_mb: 4, pss_mb: 6, private_dirty_mb: 4 },
    rps: 100,
    p50Ms: 1,
    p99Ms,
    requests: 100,
    errors: 0,
    replicaCounts,
  });
  const propagation = {
    watchers: 200,
    changes: 2,
    samples: 400,
    missed: 0,
    p50_ms: 30,
    p99_ms: 45,
    max_ms: 50,
    max_per_change_ms: [50, 44],
    grpc_connections: 200,
    control_plane_cpu_ms_per_change: 10,
    watchers_cpu_ms_per_change: 15,
  };
  const report = buildReport(
    [sample('outrigger', 1, [50, 50, 0]), sample('haproxy', 200, [33, 33, 34])],
    opts,
    10,
    propagation,
  );
  assert.equal(report.ratios[0]?.p99_outrigger_over_haproxy, 0.005);
  assert.deepEqual(
    report.results[1]?.replicas?.map((r) => r.share),
    [0.33, 0.33, 0.34],
  );
  assert.equal(report.propagation?.p99_ms, 45);
  const table = formatTable(report);
  assert.match(table, /balance\s+outrigger\s+100\s+1\.00\s+1\.00\s+10\.0\s+4\.0\s+6\.0\s+1\.00\s+0\.0050/);
  assert.match(table, /haproxy\s+33 \(33\.0%\)\s+33 \(33\.0%\)\s+34 \(34\.0%\)/);
  assert.match(table, /200\s+2\s+30\.0\s+45\.0\s+50\.0\s+0\s+200/);
  assert.equal(formatRatio(1.234), '1.23');
});
