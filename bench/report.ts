// Turns the per-round measurements into the report: per path the MEDIAN over rounds of every figure
// (errors and the balance scenario's per-replica request counts are summed), the outrigger/haproxy
// ratios, the propagation figures, a text table, and the JSON document.
import { formatFixedRate, type FixedRateReport } from './fixed-rate.js';
import type { MemoryFigures } from './memory.js';
import { formatMeshSize, type MeshSizeReport } from './mesh-size.js';
import { median } from './stats.js';
import { columns } from './table.js';
import type { PropagationResult } from './propagation.js';
import { isLoadScenario, type Options, type PathName, type ResultScenario, type Sample } from './types.js';

type Scenario = ResultScenario;

export type { Sample };

/** balance: one replica's part of a path's requests, summed over rounds. */
export interface ReplicaShare {
  name: string;
  slow: boolean;
  requests: number;
  /** requests / all replicas' requests, 0..1. */
  share: number;
}

/** One row of the report, JSON field names as the issue asks (errors is an extra, summed over rounds). */
export interface ResultRow {
  scenario: Scenario;
  path: PathName;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  /** The proxy's memory (medians): RSS, and beside it USS (its private pages: what one more proxy
   *  costs) and PSS (shared pages divided among the processes that map them). */
  proxy_rss_mb: number | null;
  proxy_uss_mb: number | null;
  proxy_pss_mb: number | null;
  errors: number;
  /** balance only: where the requests went (the upstream counts them). */
  replicas?: ReplicaShare[];
  /** mtls and mtls-handshake only: the proxy_* memory figures are the pair's sums; these are its two
   *  parts (medians). */
  client_proxy_rss_mb?: number | null;
  client_proxy_uss_mb?: number | null;
  client_proxy_pss_mb?: number | null;
  server_proxy_rss_mb?: number | null;
  server_proxy_uss_mb?: number | null;
  server_proxy_pss_mb?: number | null;
  /** mtls and mtls-handshake only: CPU time each proxy of the pair used per request, µs (medians). */
  client_proxy_cpu_us_per_request?: number | null;
  server_proxy_cpu_us_per_request?: number | null;
  /** mtls and mtls-handshake only: TLS connections the server side accepted per request (summed over
   *  rounds): about 1 in mtls-handshake, near 0 with keep-alive. */
  tls_connections_per_request?: number;
  /** mtls and mtls-handshake only: connections the upstream accepted per request (summed over rounds). */
  upstream_connections_per_request?: number;
  /** grpc-* only: p99 - direct's p99 of the same load (the latency the pair adds at its tail). */
  added_p99_ms?: number | null;
  /** grpc-unary and grpc-stream only: the grpc-js generator's CPU, in cores (median); 0.9 and up: it was
   *  the bottleneck of the run. */
  loadgen_cpu_cores?: number;
}

export interface RatioRow {
  scenario: Scenario;
  /** outrigger RPS / haproxy RPS: above 1 means outrigger serves more. */
  rps_outrigger_over_haproxy: number;
  /** outrigger p99 / haproxy p99: below 1 means outrigger's tail is shorter. */
  p99_outrigger_over_haproxy: number;
  /** grpc-* only: outrigger's added p99 / haproxy's added p99. */
  added_p99_outrigger_over_haproxy?: number;
}

export interface Report {
  results: ResultRow[];
  ratios: RatioRow[];
  /** Present when the propagation scenario ran. */
  propagation?: PropagationResult;
  /** Present when the fixed-rate scenario ran. */
  fixed_rate?: FixedRateReport;
  /** Present when the mesh-size scenario ran. */
  mesh_size?: MeshSizeReport;
  config: {
    duration_s: number;
    rounds: number;
    connections: number;
    h2_streams_per_connection: number;
    warmup_s: number;
    aggregate: 'median over rounds';
    /** balance: what the slow replica adds to every response. */
    slow_ms: number;
    /** balance: the load generator (h2load --h1 or wrk). */
    balance_client: string;
    /** propagation. */
    watchers: number;
    changes: number;
    /** mtls only: how the handshake load gives every request a new client connection and a new TLS
     *  connection between the proxies. */
    mtls_handshake_load?: string;
  };
}

/** Replica shares from per-run counts (summed); names fast1.., then slow for the last. */
export function replicaShares(runs: readonly (readonly number[])[]): ReplicaShare[] {
  const n = Math.max(0, ...runs.map((r) => r.length));
  const sums = Array.from({ length: n }, (_, i) => runs.reduce((sum, r) => sum + (r[i] ?? 0), 0));
  const total = sums.reduce((a, b) => a + b, 0);
  return sums.map((requests, i) => ({
    name: i === n - 1 ? 'slow' : `fast${i + 1}`,
    slow: i === n - 1,
    requests,
    share: total > 0 ? round(requests / total, 4) : 0,
  }));
}

// Kept here for the modules and tests that import them from the report.
export { median, percentile } from './stats.js';

const round = (value: number, digits: number): number => Number(value.toFixed(digits));

/** The result scenarios of the selected scenarios: mtls reports two (keep-alive and handshake), grpc
 *  three (its loads). */
function resultScenarios(opts: Options): Scenario[] {
  return opts.scenarios.flatMap((s): Scenario[] =>
    !isLoadScenario(s)
      ? []
      : s === 'mtls'
        ? ['mtls', 'mtls-handshake']
        : s === 'grpc'
          ? ['grpc-unary', 'grpc-stream', 'grpc-unary-h2load']
          : [s],
  );
}

const isGrpc = (s: Scenario): boolean => s.startsWith('grpc-');

/** The mtls fields of a row: RSS parts and connections per request, when the samples have them. */
function mtlsFields(mine: readonly Sample[]): Partial<ResultRow> {
  const pairs = mine.map((s) => s.pairMemory).filter((p): p is NonNullable<Sample['pairMemory']> => p !== undefined);
  if (pairs.length === 0) return {};
  const part = (values: (number | null | undefined)[]): number | null => {
    const known = values.filter((v): v is number => v !== null && v !== undefined);
    return known.length > 0 ? round(median(known), 1) : null;
  };
  const mem = (side: 'client' | 'server', figure: keyof MemoryFigures): number | null =>
    part(pairs.map((p) => p[side]?.[figure]));
  const requests = mine.reduce((sum, s) => sum + s.requests, 0);
  const perRequest = (key: 'tlsConnections' | 'upstreamConnections'): number =>
    requests > 0 ? round(mine.reduce((sum, s) => sum + (s[key] ?? 0), 0) / requests, 4) : 0;
  return {
    client_proxy_rss_mb: mem('client', 'rss_mb'),
    client_proxy_uss_mb: mem('client', 'uss_mb'),
    client_proxy_pss_mb: mem('client', 'pss_mb'),
    server_proxy_rss_mb: mem('server', 'rss_mb'),
    server_proxy_uss_mb: mem('server', 'uss_mb'),
    server_proxy_pss_mb: mem('server', 'pss_mb'),
    client_proxy_cpu_us_per_request: part(mine.map((s) => s.pairCpuUsPerRequest?.client)),
    server_proxy_cpu_us_per_request: part(mine.map((s) => s.pairCpuUsPerRequest?.server)),
    tls_connections_per_request: perRequest('tlsConnections'),
    upstream_connections_per_request: perRequest('upstreamConnections'),
  };
}

export function buildReport(
  samples: readonly Sample[],
  opts: Options,
  h2Streams: number,
  propagation?: PropagationResult,
  mtlsHandshakeLoad = '',
  more: { fixedRate?: FixedRateReport; meshSize?: MeshSizeReport } = {},
): Report {
  const results: ResultRow[] = [];
  const loadScenarios = resultScenarios(opts);
  for (const scenario of loadScenarios) {
    for (const path of opts.paths) {
      const mine = samples.filter((s) => s.scenario === scenario && s.path === path);
      if (mine.length === 0) continue;
      const memory = mine.map((s) => s.memory).filter((m): m is MemoryFigures => m !== null);
      const mem = (figure: keyof MemoryFigures): number | null =>
        memory.length > 0 ? round(median(memory.map((m) => m[figure])), 1) : null;
      const counts = mine.map((s) => s.replicaCounts).filter((c): c is number[] => c !== undefined);
      results.push({
        scenario,
        path,
        rps: round(median(mine.map((s) => s.rps)), 1),
        p50_ms: round(median(mine.map((s) => s.p50Ms)), 3),
        p99_ms: round(median(mine.map((s) => s.p99Ms)), 3),
        proxy_rss_mb: mem('rss_mb'),
        proxy_uss_mb: mem('uss_mb'),
        proxy_pss_mb: mem('pss_mb'),
        errors: mine.reduce((sum, s) => sum + s.errors, 0),
        ...(counts.length > 0 ? { replicas: replicaShares(counts) } : {}),
        ...mtlsFields(mine),
      });
      const gen = mine.map((s) => s.loadgenCpuCores).filter((c): c is number => c !== undefined);
      if (gen.length > 0) (results[results.length - 1] as ResultRow).loadgen_cpu_cores = round(median(gen), 2);
    }
  }
  // grpc: what each pair adds to direct's p99 under the same load.
  for (const r of results) {
    if (!isGrpc(r.scenario) || r.path === 'direct') continue;
    const d = results.find((x) => x.scenario === r.scenario && x.path === 'direct');
    r.added_p99_ms = d === undefined ? null : round(r.p99_ms - d.p99_ms, 3);
  }
  const ratios: RatioRow[] = [];
  for (const scenario of loadScenarios) {
    const o = results.find((r) => r.scenario === scenario && r.path === 'outrigger');
    const h = results.find((r) => r.scenario === scenario && r.path === 'haproxy');
    if (!o || !h) continue;
    const addedO = o.added_p99_ms;
    const addedH = h.added_p99_ms;
    ratios.push({
      scenario,
      rps_outrigger_over_haproxy: round(o.rps / h.rps, 4),
      p99_outrigger_over_haproxy: round(o.p99_ms / h.p99_ms, 4),
      ...(typeof addedO === 'number' && typeof addedH === 'number' && addedH > 0
        ? { added_p99_outrigger_over_haproxy: round(addedO / addedH, 4) }
        : {}),
    });
  }
  return {
    results,
    ratios,
    ...(propagation !== undefined ? { propagation } : {}),
    ...(more.fixedRate !== undefined ? { fixed_rate: more.fixedRate } : {}),
    ...(more.meshSize !== undefined ? { mesh_size: more.meshSize } : {}),
    config: {
      duration_s: opts.duration,
      rounds: opts.rounds,
      connections: opts.connections,
      h2_streams_per_connection: h2Streams,
      warmup_s: opts.warmup,
      aggregate: 'median over rounds',
      slow_ms: opts.slowMs,
      balance_client: opts.balanceClient === 'h2load' ? 'h2load --h1' : 'wrk',
      watchers: opts.watchers,
      changes: opts.changes,
      ...(opts.scenarios.includes('mtls') ? { mtls_handshake_load: mtlsHandshakeLoad } : {}),
    },
  };
}

/** Two decimals, or two significant digits below 0.1 (the balance scenario's p99 ratio is tiny). */
export function formatRatio(value: number): string {
  return value !== 0 && Math.abs(value) < 0.1 ? value.toPrecision(2) : value.toFixed(2);
}

/** balance: requests per replica and path. */
function formatShares(report: Report): string[] {
  const rows = report.results.filter((r) => r.replicas !== undefined);
  const names = rows[0]?.replicas?.map((x) => x.name) ?? [];
  if (rows.length === 0) return [];
  const cells = rows.map((r) => [
    r.path,
    ...(r.replicas ?? []).map((x) => `${x.requests} (${(x.share * 100).toFixed(1)}%)`),
  ]);
  return [
    '',
    `balance (load: ${report.config.balance_client}, ${report.config.connections} connections, one request in flight on each): ` +
      `requests per replica, summed over rounds; the slow one adds ${report.config.slow_ms} ms to every response`,
    ...columns(['path', ...names], cells, 1),
  ];
}

/** mtls: what each pair's RSS is made of, and what the connections did per request. */
function formatMtls(report: Report): string[] {
  const rows = report.results.filter(
    (r) => r.tls_connections_per_request !== undefined && (r.scenario === 'mtls' || r.scenario === 'mtls-handshake'),
  );
  if (rows.length === 0) return [];
  const fixed1 = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v.toFixed(1));
  const cells = rows.map((r) => [
    r.scenario,
    r.path,
    fixed1(r.client_proxy_rss_mb),
    fixed1(r.client_proxy_uss_mb),
    fixed1(r.client_proxy_pss_mb),
    fixed1(r.server_proxy_rss_mb),
    fixed1(r.server_proxy_uss_mb),
    fixed1(r.server_proxy_pss_mb),
    fixed1(r.client_proxy_cpu_us_per_request),
    fixed1(r.server_proxy_cpu_us_per_request),
    (r.tls_connections_per_request ?? 0).toFixed(3),
    (r.upstream_connections_per_request ?? 0).toFixed(3),
  ]);
  return [
    '',
    "mtls: client -> client-side proxy -> mutual TLS 1.3 -> server-side proxy -> upstream (memory above: the pair's sum). " +
      'mtls-handshake: RPS = new client connections per second, each with a new TLS connection between the proxies ' +
      `(${report.config.mtls_handshake_load ?? ''}); counted on the server side and at the upstream:`,
    ...columns(
      [
        'scenario',
        'path',
        'client RSS MB',
        'USS',
        'PSS',
        'server RSS MB',
        'USS',
        'PSS',
        'client CPU us/req',
        'server CPU us/req',
        'TLS conns/req',
        'upstream conns/req',
      ],
      cells,
      2,
    ),
  ];
}

/** grpc: the added p99, each proxy's CPU per call and memory, and the generator's CPU. */
function formatGrpc(report: Report): string[] {
  const rows = report.results.filter((r) => isGrpc(r.scenario));
  if (rows.length === 0) return [];
  const fixed = (v: number | null | undefined, d = 1): string => (v === null || v === undefined ? '-' : v.toFixed(d));
  const cells = rows.map((r) => {
    const ratio = r.path === 'outrigger' ? report.ratios.find((x) => x.scenario === r.scenario) : undefined;
    return [
      r.scenario,
      r.path,
      r.rps.toFixed(0),
      fixed(r.p99_ms, 2),
      fixed(r.added_p99_ms, 2),
      ratio?.added_p99_outrigger_over_haproxy !== undefined ? formatRatio(ratio.added_p99_outrigger_over_haproxy) : '-',
      fixed(r.client_proxy_cpu_us_per_request),
      fixed(r.server_proxy_cpu_us_per_request),
      fixed(r.client_proxy_rss_mb),
      fixed(r.client_proxy_uss_mb),
      fixed(r.server_proxy_rss_mb),
      fixed(r.server_proxy_uss_mb),
      r.loadgen_cpu_cores === undefined
        ? '-'
        : `${r.loadgen_cpu_cores.toFixed(2)}${r.loadgen_cpu_cores >= 0.9 ? ' SATURATED' : ''}`,
    ];
  });
  return [
    '',
    'grpc: gRPC (100-byte messages) client -> client-side proxy -> mutual TLS 1.3 (h2) -> server-side proxy -> ' +
      '@grpc/grpc-js upstream, and direct; RPS = calls/s (grpc-stream: 10 answers per call); added p99 = p99 - ' +
      "direct's; generator CPU in cores (grpc-js, one thread: SATURATED means the client, not the path, set the rate):",
    ...columns(
      [
        'scenario',
        'path',
        'calls/s',
        'p99 ms',
        'added p99 ms',
        'added o/h',
        'client CPU us/call',
        'server CPU us/call',
        'client RSS MB',
        'USS',
        'server RSS MB',
        'USS',
        'generator CPU',
      ],
      cells,
      2,
    ),
  ];
}

function formatPropagation(report: Report): string[] {
  const p = report.propagation;
  if (p === undefined) return [];
  const header = [
    'watchers',
    'changes',
    'p50 ms',
    'p99 ms',
    'max ms',
    'missed',
    'TCP conns',
    'CP CPU ms/change',
    'watchers CPU ms/change',
  ];
  const row = [
    String(p.watchers),
    String(p.changes),
    p.p50_ms.toFixed(1),
    p.p99_ms.toFixed(1),
    p.max_ms.toFixed(1),
    String(p.missed),
    String(p.grpc_connections),
    p.control_plane_cpu_ms_per_change.toFixed(1),
    p.watchers_cpu_ms_per_change.toFixed(1),
  ];
  return [
    '',
    "propagation: store.replace in the control plane -> the new endpoint set in each watcher's balancer",
    ...columns(header, [row], 0),
    `slowest watcher per change, ms: ${p.max_per_change_ms.map((v) => v.toFixed(1)).join(' ')}`,
  ];
}

/** The text table; ratios sit on the outrigger row of each scenario. */
export function formatTable(report: Report): string {
  const header = [
    'scenario',
    'path',
    'RPS',
    'p50 ms',
    'p99 ms',
    'proxy RSS MB',
    'USS MB',
    'PSS MB',
    'RPS o/h',
    'p99 o/h',
    'errors',
  ];
  const rows = report.results.map((r) => {
    const ratio = r.path === 'outrigger' ? report.ratios.find((x) => x.scenario === r.scenario) : undefined;
    return [
      r.scenario,
      r.path,
      r.rps.toFixed(0),
      r.p50_ms.toFixed(2),
      r.p99_ms.toFixed(2),
      r.proxy_rss_mb === null ? '-' : r.proxy_rss_mb.toFixed(1),
      r.proxy_uss_mb === null ? '-' : r.proxy_uss_mb.toFixed(1),
      r.proxy_pss_mb === null ? '-' : r.proxy_pss_mb.toFixed(1),
      ratio ? formatRatio(ratio.rps_outrigger_over_haproxy) : '-',
      ratio ? formatRatio(ratio.p99_outrigger_over_haproxy) : '-',
      String(r.errors),
    ];
  });
  const c = report.config;
  const note =
    `median of ${c.rounds} alternating round(s) x ${c.duration_s}s, ${c.connections} connections ` +
    `(h2: x${c.h2_streams_per_connection} streams), ${c.warmup_s > 0 ? `after ${c.warmup_s}s warm-up per path` : 'no warm-up'}; ` +
    'o/h = outrigger/haproxy';
  const main = rows.length > 0 ? [...columns(header, rows, 2), '', note] : [];
  const lines = [
    ...main,
    ...formatShares(report),
    ...formatMtls(report),
    ...formatGrpc(report),
    ...formatPropagation(report),
    ...formatFixedRate(report.fixed_rate),
    ...formatMeshSize(report.mesh_size),
  ];
  while (lines[0] === '') lines.shift();
  return lines.join('\n') + '\n';
}
