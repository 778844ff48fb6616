// The fixed-rate scenario: an open-loop load at constant rates (bench/loadgen.ts; latency from each
// request's intended send time, coordinated omission corrected as wrk2 does) on three paths: direct to
// the upstream, and through the mtls scenario's two pairs (client proxy -> mutual TLS -> server proxy,
// started by bench/mtls.ts's startMeshPairs, keep-alive only). Per rate and path: the latency
// percentiles with every round's requests pooled into one histogram, what each pair adds over direct at
// the same rate, each proxy's CPU per 1,000 RPS (/proc/PID/stat over the generator's measured window)
// and its memory sampled during the run (bench/memory.ts), and whether the generator kept its schedule.
import { checkSchedule, runGenerator, type GeneratorRun, type ScheduleCheck } from './generator.js';
import { Histogram } from './histogram.js';
import { formatMemory, MemorySampler, type MemoryFigures, type MemoryOverRun } from './memory.js';
import { pairEntry, startMeshPairs, type MeshPairs, type PairName } from './mtls.js';
import { columns } from './table.js';
import { BenchError, cpuSeconds } from './tools.js';
import type { Options, PathName } from './types.js';

export interface FixedRateContext {
  readonly opts: Options;
  readonly haproxy: string | undefined;
  readonly upstreamPort: number;
  readonly log: (line: string) => void;
}

/** Where a path's load enters, and the proxies it goes through (none for direct), by role. */
interface Target {
  readonly path: PathName;
  readonly port: number;
  readonly proxies: Readonly<Record<string, number>>;
  exitedEarly(): boolean;
}

/** One generator run on one path at one rate. */
export interface FixedRateRun {
  rate: number;
  path: PathName;
  round: number;
  gen: GeneratorRun;
  /** The window the proxies' CPU was read over (from the generator's start to its end line), s. */
  windowS: number;
  /** CPU seconds each proxy used over the window. */
  cpuS: Record<string, number | null>;
  memory: Record<string, MemoryOverRun>;
}

/** Latency percentiles in ms (3 decimals: microseconds). */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p99_9: number;
  max: number;
}

export interface ProxyFigures {
  /** client: the client-side proxy; server: the server-side proxy of the pair. */
  role: string;
  /** vCPU used per 1,000 requests per second answered: CPU seconds / window seconds / (answered RPS / 1000). */
  vcpu_per_krps: number | null;
  /** Largest reading during the runs, and the last reading of the last run (MB). */
  max: MemoryFigures | null;
  end: MemoryFigures | null;
}

export interface FixedRateRow {
  rate: number;
  path: PathName;
  /** Requests in all rounds' runs. */
  requests: number;
  /** Non-2xx answers, lost and unanswered requests. */
  errors: number;
  /** From the intended send time: the figure the scenario reports. */
  latency_ms: Percentiles;
  /** The same requests from their actual send (what a closed-loop client would report). */
  service_time_ms: Percentiles;
  /** latency_ms minus direct's at the same rate, percentile by percentile (null for direct, or
   *  when direct was not measured). A difference of quantiles, not the quantile of differences. */
  added_ms: Percentiles | null;
  proxies: ProxyFigures[];
  schedule: ScheduleCheck;
}

export interface FixedRateReport {
  config: {
    rates: number[];
    duration_s: number;
    connections: number;
    rounds: number;
    warmup_s: number;
    memory_sample_s: number;
    answer_bytes: number;
    method: string;
  };
  results: FixedRateRow[];
  /** Every run's own figures, in the order run. */
  runs: {
    rate: number;
    path: PathName;
    round: number;
    latency_ms: Percentiles;
    achieved_rps: number;
    errors: number;
    send_lag_p99_us: number;
    window_s: number;
    proxies: { role: string; vcpu_per_krps: number | null; max: MemoryFigures; end: MemoryFigures }[];
  }[];
}

export const METHOD =
  'open loop (wrk2 method): request j is sent at t0 + j/rate over keep-alive HTTP/1.1 connections (j on connection j mod C), ' +
  'its latency timed from that intended time to the end of its answer; a request due while its connection waits is sent when ' +
  'that answer ends. Rounds pooled into one histogram per rate and path; added = pair percentile - direct percentile.';

const ms3 = (ns: number): number => Number((ns / 1e6).toFixed(3));

export function percentilesMs(h: Histogram): Percentiles {
  return {
    p50: ms3(h.percentile(50)),
    p90: ms3(h.percentile(90)),
    p99: ms3(h.percentile(99)),
    p99_9: ms3(h.percentile(99.9)),
    max: ms3(h.max),
  };
}

export function subtractPercentiles(a: Percentiles, b: Percentiles): Percentiles {
  const d = (x: number, y: number): number => Number((x - y).toFixed(3));
  return {
    p50: d(a.p50, b.p50),
    p90: d(a.p90, b.p90),
    p99: d(a.p99, b.p99),
    p99_9: d(a.p99_9, b.p99_9),
    max: d(a.max, b.max),
  };
}

const errorsOf = (g: GeneratorRun): number => g.result.status_errors + g.result.connection_errors + g.result.unfinished;
const answeredRps = (g: GeneratorRun): number => g.result.completed_in_window / g.result.duration_s;

/** vCPU per 1,000 answered RPS over runs: their CPU seconds over their windows, per krps answered. */
export function vcpuPerKrps(
  runs: readonly { cpuS: number | null; windowS: number; answeredRps: number }[],
): number | null {
  const known = runs.filter((r) => r.cpuS !== null && r.windowS > 0);
  if (known.length === 0) return null;
  const cpu = known.reduce((a, r) => a + (r.cpuS ?? 0), 0);
  const window = known.reduce((a, r) => a + r.windowS, 0);
  const krps = known.reduce((a, r) => a + r.answeredRps * r.windowS, 0) / window / 1000;
  return krps > 0 ? Number((cpu / window / krps).toFixed(4)) : null;
}

/** The report's rows and runs from the measured runs (pure). */
export function buildFixedRateReport(runs: readonly FixedRateRun[], opts: Options): FixedRateReport {
  const results: FixedRateRow[] = [];
  const paths = [...new Set(runs.map((r) => r.path))];
  for (const rate of opts.rates) {
    let direct: Percentiles | undefined;
    for (const path of paths) {
      const mine = runs.filter((r) => r.rate === rate && r.path === path);
      if (mine.length === 0) continue;
      const latency = new Histogram();
      const service = new Histogram();
      for (const r of mine) {
        latency.merge(r.gen.latency);
        service.merge(r.gen.serviceTime);
      }
      const lat = percentilesMs(latency);
      if (path === 'direct') direct = lat;
      const roles = [...new Set(mine.flatMap((r) => Object.keys(r.memory).concat(Object.keys(r.cpuS))))];
      const proxies = roles.map((role): ProxyFigures => {
        const mem = mine.map((r) => r.memory[role]).filter((m): m is MemoryOverRun => m !== undefined);
        const max = (k: keyof MemoryFigures): number => Math.max(...mem.map((m) => m.max[k]));
        return {
          role,
          vcpu_per_krps: vcpuPerKrps(
            mine.map((r) => ({ cpuS: r.cpuS[role] ?? null, windowS: r.windowS, answeredRps: answeredRps(r.gen) })),
          ),
          max:
            mem.length > 0
              ? {
                  rss_mb: max('rss_mb'),
                  pss_mb: max('pss_mb'),
                  uss_mb: max('uss_mb'),
                  private_dirty_mb: max('private_dirty_mb'),
                }
              : null,
          end: mem[mem.length - 1]?.end ?? null,
        };
      });
      results.push({
        rate,
        path,
        requests: mine.reduce((a, r) => a + r.gen.result.scheduled, 0),
        errors: mine.reduce((a, r) => a + errorsOf(r.gen), 0),
        latency_ms: lat,
        service_time_ms: percentilesMs(service),
        added_ms: null,
        proxies,
        schedule: checkSchedule(mine.map((r) => r.gen)),
      });
    }
    for (const row of results)
      if (row.rate === rate && row.path !== 'direct' && direct !== undefined)
        row.added_ms = subtractPercentiles(row.latency_ms, direct);
  }
  return {
    config: {
      rates: opts.rates,
      duration_s: opts.fixedDuration,
      connections: opts.connections,
      rounds: opts.rounds,
      warmup_s: opts.warmup,
      memory_sample_s: opts.memorySampleS,
      answer_bytes: 1024,
      method: METHOD,
    },
    results,
    runs: runs.map((r) => ({
      rate: r.rate,
      path: r.path,
      round: r.round,
      latency_ms: percentilesMs(r.gen.latency),
      achieved_rps: Number(answeredRps(r.gen).toFixed(2)),
      errors: errorsOf(r.gen),
      send_lag_p99_us: Number((r.gen.lag.percentile(99) / 1e3).toFixed(2)),
      window_s: Number(r.windowS.toFixed(3)),
      proxies: Object.entries(r.memory).map(([role, m]) => ({
        role,
        vcpu_per_krps: vcpuPerKrps([
          { cpuS: r.cpuS[role] ?? null, windowS: r.windowS, answeredRps: answeredRps(r.gen) },
        ]),
        max: m.max,
        end: m.end,
      })),
    })),
  };
}

async function measure(ctx: FixedRateContext, t: Target, rate: number, round: number): Promise<FixedRateRun> {
  const { opts } = ctx;
  const sampler = new MemorySampler(t.proxies, opts.memorySampleS * 1000);
  const cpuAt = (): Record<string, number | null> =>
    Object.fromEntries(Object.entries(t.proxies).map(([role, pid]) => [role, cpuSeconds(pid)]));
  let start: { at: bigint; cpu: Record<string, number | null> } | undefined;
  let end: { at: bigint; cpu: Record<string, number | null> } | undefined;
  let gen: GeneratorRun;
  let memory: Record<string, MemoryOverRun> = {};
  try {
    gen = await runGenerator(
      {
        targets: [{ host: '127.0.0.1', port: t.port }],
        rate,
        connections: opts.connections,
        durationS: opts.fixedDuration,
      },
      {
        onStart: () => (start = { at: process.hrtime.bigint(), cpu: cpuAt() }),
        onEnd: () => (end = { at: process.hrtime.bigint(), cpu: cpuAt() }),
      },
    );
  } finally {
    memory = sampler.stop();
  }
  if (t.exitedEarly()) throw new BenchError(`[fixed-rate] a process of the ${t.path} path exited during its run`);
  if (start === undefined || end === undefined)
    throw new BenchError('[fixed-rate] the generator never said when its window started and ended');
  const s = start;
  const e = end;
  const cpuS = Object.fromEntries(
    Object.keys(t.proxies).map((role) => {
      const a = s.cpu[role];
      const b = e.cpu[role];
      return [role, a === null || a === undefined || b === null || b === undefined ? null : b - a];
    }),
  );
  return { rate, path: t.path, round, gen, windowS: Number(e.at - s.at) / 1e9, cpuS, memory };
}

function describe(r: FixedRateRun): string {
  const l = percentilesMs(r.gen.latency);
  const g = r.gen.result;
  const cpu = Object.entries(r.cpuS)
    .map(
      ([role, s]) =>
        `${role} ${s === null ? '?' : ((s / r.windowS / (answeredRps(r.gen) / 1000)) * 1000).toFixed(0)} mvCPU/krps`,
    )
    .join(', ');
  const mem = Object.entries(r.memory)
    .map(([role, m]) => `${role} ${formatMemory(m.end)}`)
    .join(', ');
  return (
    `${r.path.padEnd(9)} ${answeredRps(r.gen).toFixed(0)}/${g.target_rps} req/s, p50 ${l.p50.toFixed(3)} p99 ${l.p99.toFixed(3)} ` +
    `p99.9 ${l.p99_9.toFixed(3)} max ${l.max.toFixed(3)} ms, send lag p99 ${(r.gen.lag.percentile(99) / 1e3).toFixed(0)} us` +
    (cpu ? `, ${cpu}` : '') +
    (mem ? `, ${mem}` : '') +
    (errorsOf(r.gen) > 0 ? `, WARNING ${errorsOf(r.gen)} errors` : '')
  );
}

/** Starts the pairs, warms every path up at the first rate, then per round and rate runs every path
 *  (in an order rotated each round). */
export async function runFixedRateScenario(ctx: FixedRateContext): Promise<FixedRateReport> {
  const { opts, log } = ctx;
  const pairNames = opts.paths.filter((p): p is PairName => p !== 'direct');
  let mesh: MeshPairs | undefined;
  const runs: FixedRateRun[] = [];
  try {
    if (pairNames.length > 0) {
      mesh = await startMeshPairs({
        pairs: pairNames,
        loads: ['keepalive'],
        haproxy: ctx.haproxy,
        upstreamPort: ctx.upstreamPort,
        log,
        label: 'fixed-rate',
      });
    }
    const targets: Target[] = [];
    if (opts.paths.includes('direct'))
      targets.push({ path: 'direct', port: ctx.upstreamPort, proxies: {}, exitedEarly: () => false });
    for (const p of mesh?.pairs ?? []) {
      const { port, pids } = pairEntry(p, 'keepalive');
      targets.push({
        path: p.path,
        port,
        proxies: { client: pids.client, server: pids.server },
        exitedEarly: () => p.exitedEarly(),
      });
    }
    if (opts.warmup > 0) {
      for (const t of targets) {
        log(`[fixed-rate] warm-up ${t.path} ${opts.warmup}s at ${opts.rates[0] ?? 0} req/s`);
        await runGenerator({
          targets: [{ host: '127.0.0.1', port: t.port }],
          rate: opts.rates[0] ?? 1000,
          connections: opts.connections,
          durationS: opts.warmup,
        });
      }
    }
    for (let round = 1; round <= opts.rounds; round++) {
      const shift = (round - 1) % targets.length;
      const order = [...targets.slice(shift), ...targets.slice(0, shift)];
      for (const rate of opts.rates) {
        for (const t of order) {
          const r = await measure(ctx, t, rate, round);
          runs.push(r);
          log(`[fixed-rate ${rate} round ${round}/${opts.rounds}] ${describe(r)}`);
        }
      }
    }
  } finally {
    await mesh?.stop();
  }
  return buildFixedRateReport(runs, opts);
}

// ---- the text ----

const f3 = (v: number): string => v.toFixed(3);
const f1 = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v.toFixed(1));

/** The fixed-rate tables: latency and what each pair adds; each proxy's CPU and memory; the schedule. */
export function formatFixedRate(r: FixedRateReport | undefined): string[] {
  if (r === undefined || r.results.length === 0) return [];
  const c = r.config;
  const pct = (p: Percentiles | null): string[] =>
    p === null ? ['-', '-', '-', '-', '-'] : [f3(p.p50), f3(p.p90), f3(p.p99), f3(p.p99_9), f3(p.max)];
  const latency = r.results.map((row) => [
    String(row.rate),
    row.path,
    ...pct(row.latency_ms),
    ...pct(row.added_ms),
    String(row.errors),
  ]);
  const proxies = r.results.flatMap((row) =>
    row.proxies.map((p) => [
      String(row.rate),
      row.path,
      p.role,
      p.vcpu_per_krps === null ? '-' : p.vcpu_per_krps.toFixed(3),
      `${f1(p.max?.rss_mb)}/${f1(p.end?.rss_mb)}`,
      `${f1(p.max?.uss_mb)}/${f1(p.end?.uss_mb)}`,
      `${f1(p.max?.pss_mb)}/${f1(p.end?.pss_mb)}`,
    ]),
  );
  const schedule = r.results.map((row) => {
    const s = row.schedule;
    return [
      String(row.rate),
      row.path,
      s.achieved_send_rps.toFixed(1),
      s.achieved_rps.toFixed(1),
      `${s.send_lag_p50_us.toFixed(0)}/${s.send_lag_p99_us.toFixed(0)}/${s.send_lag_max_us.toFixed(0)}`,
      (s.queued_share * 100).toFixed(2),
      String(s.max_backlog),
      s.generator_vcpu_per_krps.toFixed(3),
      s.problems.length === 0 ? 'kept' : s.problems.join('; '),
    ];
  });
  return [
    '',
    `fixed-rate: open loop, latency from each request's intended send time (coordinated omission corrected, as wrk2); ` +
      `${c.connections} connections, ${c.duration_s} s per run, ${c.rounds} round(s) pooled, ${c.answer_bytes} B answers; ` +
      'pairs: client proxy -> mutual TLS -> server proxy (as --scenario mtls); added = pair - direct, percentile by percentile:',
    ...columns(
      [
        'RPS',
        'path',
        'p50 ms',
        'p90 ms',
        'p99 ms',
        'p99.9 ms',
        'max ms',
        '+p50 ms',
        '+p90 ms',
        '+p99 ms',
        '+p99.9 ms',
        '+max ms',
        'errors',
      ],
      latency,
      2,
    ),
    '',
    `fixed-rate, each proxy: vCPU per 1,000 answered RPS over the window; memory sampled every ${c.memory_sample_s} s, largest/last (MB):`,
    ...columns(['RPS', 'path', 'proxy', 'vCPU/kRPS', 'RSS max/end', 'USS max/end', 'PSS max/end'], proxies, 3),
    '',
    "fixed-rate, the schedule: sends and answers per second inside the window; the generator's own send lag (us, p50/p99/max, sends " +
      "not queued behind an answer); sends queued behind an answer (%); the generator's own vCPU per 1,000 RPS:",
    ...columns(
      ['RPS', 'path', 'sent/s', 'answered/s', 'lag us', 'queued %', 'max backlog', 'gen vCPU/kRPS', 'schedule'],
      schedule,
      2,
    ),
  ];
}
