// Unit tests for the bench's parsers and aggregation (wrk and h2load output, percentiles, median, options).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { latencyPercentiles, parseH2loadSummary } from './h2.js';
import { parseWrk, parseWrkTime } from './http1.js';
import { parseOptions } from './options.js';
import { median } from './report.js';

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
