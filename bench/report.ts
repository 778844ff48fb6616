// Turns the per-round measurements into the report: per path the MEDIAN over rounds of every figure
// (errors are summed), the outrigger/haproxy ratios, a text table, and the JSON document.
import type { LoadResult, Options, PathName, Scenario } from './types.js';

/** One measured load run. */
export interface Sample extends LoadResult {
  scenario: Scenario;
  path: PathName;
  round: number;
  /** VmRSS of the proxy right after the run; null for direct. */
  rssMb: number | null;
}

/** One row of the report, JSON field names as the issue asks (errors is an extra, summed over rounds). */
export interface ResultRow {
  scenario: Scenario;
  path: PathName;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  proxy_rss_mb: number | null;
  errors: number;
}

export interface RatioRow {
  scenario: Scenario;
  /** outrigger RPS / haproxy RPS: above 1 means outrigger serves more. */
  rps_outrigger_over_haproxy: number;
  /** outrigger p99 / haproxy p99: below 1 means outrigger's tail is shorter. */
  p99_outrigger_over_haproxy: number;
}

export interface Report {
  results: ResultRow[];
  ratios: RatioRow[];
  config: {
    duration_s: number;
    rounds: number;
    connections: number;
    h2_streams_per_connection: number;
    warmup_s: number;
    aggregate: 'median over rounds';
  };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  if (sorted.length === 0) return NaN;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits));

export function buildReport(samples: readonly Sample[], opts: Options, h2Streams: number): Report {
  const results: ResultRow[] = [];
  for (const scenario of opts.scenarios) {
    for (const path of opts.paths) {
      const mine = samples.filter((s) => s.scenario === scenario && s.path === path);
      if (mine.length === 0) continue;
      const rss = mine.map((s) => s.rssMb).filter((v): v is number => v !== null);
      results.push({
        scenario,
        path,
        rps: round(median(mine.map((s) => s.rps)), 1),
        p50_ms: round(median(mine.map((s) => s.p50Ms)), 3),
        p99_ms: round(median(mine.map((s) => s.p99Ms)), 3),
        proxy_rss_mb: rss.length > 0 ? round(median(rss), 1) : null,
        errors: mine.reduce((sum, s) => sum + s.errors, 0),
      });
    }
  }
  const ratios: RatioRow[] = [];
  for (const scenario of opts.scenarios) {
    const o = results.find((r) => r.scenario === scenario && r.path === 'outrigger');
    const h = results.find((r) => r.scenario === scenario && r.path === 'haproxy');
    if (!o || !h) continue;
    ratios.push({
      scenario,
      rps_outrigger_over_haproxy: round(o.rps / h.rps, 3),
      p99_outrigger_over_haproxy: round(o.p99_ms / h.p99_ms, 3),
    });
  }
  return {
    results,
    ratios,
    config: {
      duration_s: opts.duration,
      rounds: opts.rounds,
      connections: opts.connections,
      h2_streams_per_connection: h2Streams,
      warmup_s: opts.warmup,
      aggregate: 'median over rounds',
    },
  };
}

/** The text table; ratios sit on the outrigger row of each scenario. */
export function formatTable(report: Report): string {
  const header = ['scenario', 'path', 'RPS', 'p50 ms', 'p99 ms', 'proxy RSS MB', 'RPS o/h', 'p99 o/h', 'errors'];
  const rows = report.results.map((r) => {
    const ratio = r.path === 'outrigger' ? report.ratios.find((x) => x.scenario === r.scenario) : undefined;
    return [
      r.scenario,
      r.path,
      r.rps.toFixed(0),
      r.p50_ms.toFixed(2),
      r.p99_ms.toFixed(2),
      r.proxy_rss_mb === null ? '-' : r.proxy_rss_mb.toFixed(1),
      ratio ? ratio.rps_outrigger_over_haproxy.toFixed(2) : '-',
      ratio ? ratio.p99_outrigger_over_haproxy.toFixed(2) : '-',
      String(r.errors),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  // Text columns left-aligned, figures right-aligned.
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  const c = report.config;
  const note =
    `median of ${c.rounds} alternating round(s) x ${c.duration_s}s, ${c.connections} connections ` +
    `(h2: x${c.h2_streams_per_connection} streams), ${c.warmup_s > 0 ? `after ${c.warmup_s}s warm-up per path` : 'no warm-up'}; ` +
    'o/h = outrigger/haproxy';
  return [line(header), ...rows.map(line), '', note].join('\n') + '\n';
}
