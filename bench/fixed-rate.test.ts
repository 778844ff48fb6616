// Unit tests for the fixed-rate scenario's figures: what a pair adds over direct, CPU per 1,000 RPS,
// memory over runs, the schedule check, the options and the tables; and the real generator (a child
// process on raw sockets) against a local server, briefly.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import {
  buildFixedRateReport,
  formatFixedRate,
  percentilesMs,
  subtractPercentiles,
  vcpuPerKrps,
  type FixedRateRun,
} from './fixed-rate.js';
import { checkSchedule, parseLoadgenResult, runGenerator, type GeneratorRun, type LoadgenResult } from './generator.js';
import { Histogram } from './histogram.js';
import type { MemoryFigures, MemoryOverRun } from './memory.js';
import { parseOptions } from './options.js';
import { buildReport, formatTable } from './report.js';

const MS = 1e6;

/** A generator run whose every latency is `latencyMs` but the last `slow` ones, which take `slowMs`. */
function genRun(o: {
  rate: number;
  latencyMs: number;
  slow?: number;
  slowMs?: number;
  lagUs?: number;
  queued?: number;
  errors?: number;
}): GeneratorRun {
  const latency = new Histogram();
  const service = new Histogram();
  const lag = new Histogram();
  const n = o.rate * 10;
  for (let i = 0; i < n; i++) {
    const v = (i >= n - (o.slow ?? 0) ? (o.slowMs ?? 0) : o.latencyMs) * MS;
    latency.record(v);
    service.record(v / 2);
    lag.record((o.lagUs ?? 50) * 1e3);
  }
  const result: LoadgenResult = {
    event: 'result',
    target_rps: o.rate,
    connections: 16,
    duration_s: 10,
    scheduled: n,
    sent: n,
    completed: n,
    status_errors: o.errors ?? 0,
    connection_errors: 0,
    unfinished: 0,
    sent_in_window: n,
    completed_in_window: n,
    queued_sends: o.queued ?? 0,
    max_backlog: 1,
    cpu_us_in_window: 1_000_000, // 0.1 vCPU over 10 s
    latency: latency.toJSON(),
    service_time: service.toJSON(),
    lag: lag.toJSON(),
  };
  return parseLoadgenResult(JSON.stringify(result));
}

const mem = (uss: number): MemoryFigures => ({
  rss_mb: uss + 40,
  pss_mb: uss + 2,
  uss_mb: uss,
  private_dirty_mb: uss - 1,
});

function run(
  path: 'direct' | 'outrigger' | 'haproxy',
  rate: number,
  round: number,
  gen: GeneratorRun,
  cpuS = 1,
): FixedRateRun {
  const proxies: Record<string, number> = path === 'direct' ? {} : { client: cpuS, server: cpuS * 2 };
  const memory: Record<string, MemoryOverRun> =
    path === 'direct'
      ? {}
      : {
          client: { max: mem(50 + round), end: mem(45 + round), samples: 3 },
          server: { max: mem(60), end: mem(55), samples: 3 },
        };
  return { rate, path, round, gen, windowS: 10, cpuS: proxies, memory };
}

void test('percentiles in ms, and a pair minus direct percentile by percentile', () => {
  const p = percentilesMs(genRun({ rate: 1000, latencyMs: 0.25, slow: 20, slowMs: 5 }).latency);
  assert.equal(p.p50, 0.25);
  assert.equal(p.p99, 0.25);
  assert.ok(p.p99_9 >= 5 && p.p99_9 < 5.01);
  assert.equal(p.max, 5);
  assert.deepEqual(
    subtractPercentiles(
      { p50: 1, p90: 2, p99: 3, p99_9: 4, max: 10 },
      { p50: 0.25, p90: 0.5, p99: 1, p99_9: 1.5, max: 2 },
    ),
    {
      p50: 0.75,
      p90: 1.5,
      p99: 2,
      p99_9: 2.5,
      max: 8,
    },
  );
});

void test('vCPU per 1,000 RPS: CPU seconds over the window, per krps answered, pooled over runs', () => {
  // 0.5 s of CPU in a 10 s window at 1000 RPS: 0.05 vCPU per krps.
  assert.equal(vcpuPerKrps([{ cpuS: 0.5, windowS: 10, answeredRps: 1000 }]), 0.05);
  // Two runs at 2000 RPS, 1 s and 3 s of CPU over 10 s each: 0.2 vCPU at 2 krps = 0.1 per krps.
  assert.equal(
    vcpuPerKrps([
      { cpuS: 1, windowS: 10, answeredRps: 2000 },
      { cpuS: 3, windowS: 10, answeredRps: 2000 },
    ]),
    0.1,
  );
  assert.equal(vcpuPerKrps([{ cpuS: null, windowS: 10, answeredRps: 1000 }]), null);
});

void test('schedule check: kept, behind (queued sends), or late on its own', () => {
  const ok = checkSchedule([genRun({ rate: 1000, latencyMs: 1 })]);
  assert.deepEqual(ok.problems, []);
  assert.equal(ok.achieved_send_rps, 1000);
  assert.equal(ok.send_lag_p99_us, 50);
  assert.equal(ok.generator_vcpu_per_krps, 0.1);
  const late = checkSchedule([genRun({ rate: 1000, latencyMs: 1, lagUs: 5000 })]);
  assert.match(late.problems.join(), /generator's own sends were late: p99 5000/);
  const g = genRun({ rate: 1000, latencyMs: 1, queued: 500 });
  g.result.sent_in_window = 9000;
  const behind = checkSchedule([g]);
  assert.match(behind.problems.join(), /sent 900 req\/s of the 1000 asked .*5\.0% of sends queued/);
});

void test('report: rounds pooled per rate and path, added over direct, per-proxy CPU and memory, every run kept', () => {
  const opts = parseOptions(['--scenario', 'fixed-rate', '--rates', '1000', '--rounds', '2']);
  assert.ok(opts !== 'help');
  const runs = [
    run('direct', 1000, 1, genRun({ rate: 1000, latencyMs: 0.2 })),
    run('outrigger', 1000, 1, genRun({ rate: 1000, latencyMs: 0.8, slow: 10, slowMs: 20 })),
    run('haproxy', 1000, 1, genRun({ rate: 1000, latencyMs: 0.4 })),
    run('direct', 1000, 2, genRun({ rate: 1000, latencyMs: 0.2 })),
    run('outrigger', 1000, 2, genRun({ rate: 1000, latencyMs: 0.8 }), 3),
    run('haproxy', 1000, 2, genRun({ rate: 1000, latencyMs: 0.4, errors: 2 })),
  ];
  const r = buildFixedRateReport(runs, opts);
  assert.deepEqual(
    r.results.map((x) => x.path),
    ['direct', 'outrigger', 'haproxy'],
  );
  const [direct, o, h] = r.results;
  assert.equal(direct?.added_ms, null);
  assert.equal(direct?.requests, 20_000);
  // A percentile is the upper end of its histogram bucket: 0.8 ms reads 0.801 (at most 0.2% above).
  assert.equal(o?.latency_ms.p50, 0.801);
  assert.equal(direct?.latency_ms.p50, 0.2);
  assert.equal(o?.added_ms?.p50, 0.601);
  assert.ok((o?.added_ms?.max ?? 0) > 19.7, 'the slow requests of round 1 show in the pooled max');
  assert.equal(h?.added_ms?.p99, 0.2);
  assert.equal(h?.errors, 2);
  // client: 1 s and 3 s of CPU over two 10 s windows at 1 krps = 0.2 vCPU per krps; server twice that.
  assert.deepEqual(
    o?.proxies.map((p) => [p.role, p.vcpu_per_krps]),
    [
      ['client', 0.2],
      ['server', 0.4],
    ],
  );
  assert.equal(o?.proxies[0]?.max?.uss_mb, 52, 'the largest of the rounds');
  assert.equal(o?.proxies[0]?.end?.uss_mb, 47, 'the last round');
  assert.equal(r.runs.length, 6);
  assert.equal(r.runs[1]?.proxies[1]?.vcpu_per_krps, 0.2);
  assert.equal(r.config.duration_s, 60);

  const report = buildReport([], opts, 10, undefined, '', { fixedRate: r });
  assert.equal(report.fixed_rate?.results.length, 3);
  const text = formatTable(report);
  assert.match(
    text,
    /1000\s+outrigger\s+0\.801\s+0\.801\s+0\.801\s+0\.801\s+20\.000\s+0\.601\s+0\.601\s+0\.601\s+0\.601\s+19\.800\s+0/,
  );
  assert.match(text, /1000\s+outrigger\s+client\s+0\.200\s+92\.0\/87\.0\s+52\.0\/47\.0\s+54\.0\/49\.0/);
  assert.match(text, /1000\s+haproxy\s+1000\.0\s+1000\.0\s+50\/50\/50\s+0\.00\s+1\s+0\.100\s+kept/);
  assert.deepEqual(formatFixedRate(undefined), []);
});

void test('options: fixed-rate defaults, --rates, --duration, --short', () => {
  const d = parseOptions(['--scenario', 'fixed-rate']);
  assert.ok(d !== 'help');
  assert.deepEqual(d.scenarios, ['fixed-rate']);
  assert.deepEqual(d.rates, [1000, 2000]);
  assert.equal(d.fixedDuration, 60);
  assert.equal(d.connections, 16);
  assert.equal(d.memorySampleS, 5);
  const o = parseOptions(['--scenario', 'fixed-rate,mesh-size', '--rates', '500,1500', '--duration', '20']);
  assert.ok(o !== 'help');
  assert.deepEqual(o.scenarios, ['fixed-rate', 'mesh-size']);
  assert.deepEqual(o.rates, [500, 1500]);
  assert.equal(o.fixedDuration, 20);
  assert.equal(o.duration, 20);
  const s = parseOptions(['--scenario', 'fixed-rate', '--short']);
  assert.ok(s !== 'help');
  assert.deepEqual(s.rates, [1000]);
  assert.equal(s.fixedDuration, 10);
  assert.equal(s.rounds, 1);
  const sd = parseOptions(['--short', '--duration', '30', '--rates', '700,800', '--rounds', '3']);
  assert.ok(sd !== 'help');
  assert.deepEqual([sd.fixedDuration, sd.rates, sd.rounds], [30, [700, 800], 3], 'explicit options win over --short');
  const all = parseOptions(['--scenario', 'all,fixed-rate']);
  assert.ok(all !== 'help');
  assert.deepEqual(all.scenarios, ['http1', 'h2', 'balance', 'mtls', 'grpc', 'propagation', 'fixed-rate']);
  assert.throws(() => parseOptions(['--rates', '0,x', '--scenario', 'fast']), /--rates wants[\s\S]*--scenario wants/);
});

void test(
  'the generator: a real run against a local server keeps a low rate and times every request',
  { timeout: 30_000 },
  async () => {
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': '1024' });
      res.end(Buffer.alloc(1024, 'x'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      let started = 0;
      let ended = 0;
      const g = await runGenerator(
        { targets: [{ host: '127.0.0.1', port }], rate: 200, connections: 4, durationS: 1 },
        { onStart: () => started++, onEnd: () => ended++ },
      );
      assert.deepEqual([started, ended], [1, 1]);
      assert.equal(g.result.scheduled, 200);
      assert.equal(g.result.completed, 200);
      assert.equal(g.latency.count, 200);
      assert.equal(g.result.status_errors + g.result.connection_errors + g.result.unfinished, 0);
      assert.ok(g.latency.percentile(50) > 0 && g.latency.percentile(50) < 1e9);
      assert.ok(g.lag.count > 0 && g.lag.count <= 200);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  },
);
