// Shared vocabulary of the benchmark: scenarios, the paths the load takes, options, and one load run's figures.
import type { MemoryFigures } from './memory.js';

export const SCENARIOS = ['http1', 'h2', 'balance', 'mtls', 'grpc', 'propagation', 'fixed-rate', 'mesh-size'] as const;
export type Scenario = (typeof SCENARIOS)[number];
/** What `--scenario all` (and no --scenario) runs: the quick comparisons. fixed-rate (minutes of
 *  open-loop load per rate and path) and mesh-size (root: a network namespace) run when named. */
export const ALL_SCENARIOS: readonly Scenario[] = ['http1', 'h2', 'balance', 'mtls', 'grpc', 'propagation'];
/** Scenarios whose figures are closed-loop load runs on paths (the others have their own shapes). */
export type LoadScenario = Exclude<Scenario, 'propagation' | 'fixed-rate' | 'mesh-size'>;
export function isLoadScenario(s: Scenario): s is LoadScenario {
  return s !== 'propagation' && s !== 'fixed-rate' && s !== 'mesh-size';
}
/** What a result row measured: a load scenario, the mtls scenario's second load (a new client
 *  connection and a new mesh TLS connection for every request), or one of the grpc scenario's three
 *  loads (bench/grpc.ts). */
export type ResultScenario =
  Exclude<LoadScenario, 'grpc'> | 'mtls-handshake' | 'grpc-unary' | 'grpc-stream' | 'grpc-unary-h2load';

/** direct: client → upstream; outrigger / haproxy: client → proxy → upstream (mtls: client → outbound
 *  proxy → mesh TLS → inbound proxy → upstream, a pair of each). */
export const PATHS = ['direct', 'outrigger', 'haproxy'] as const;
export type PathName = (typeof PATHS)[number];

/** Replicas of the balance scenario: REPLICAS - 1 fast ones, then the slow one. */
export const REPLICAS = 3;
export const SLOW_REPLICA = REPLICAS - 1;

export interface Options {
  /** Seconds of measured load per run. */
  duration: number;
  /** Alternating rounds; every path is measured once per round. */
  rounds: number;
  /** Client connections (h2load also opens 10 concurrent streams on each). */
  connections: number;
  /** Seconds of unmeasured load per path before round 1 (JIT, pools, caches). */
  warmup: number;
  scenarios: Scenario[];
  paths: PathName[];
  /** balance: the load generator. h2load --h1 logs every request's latency; wrk's percentiles were
   *  far off in this scenario (README, "Benchmark"), so it is there only to compare. */
  balanceClient: 'h2load' | 'wrk';
  /** mtls-handshake: whether new TLS connections between the proxies resume sessions (both pairs) or
   *  make full handshakes (both pairs). */
  resumption: boolean;
  /** balance: the delay (ms) the slow replica adds to every response. */
  slowMs: number;
  /** propagation: simulated proxies watching the Service. */
  watchers: number;
  /** propagation: endpoint changes measured. */
  changes: number;
  /** fixed-rate: the constant rates (requests per second), each run on every path. */
  rates: number[];
  /** fixed-rate: seconds of measured load per run (60; --duration sets it too, --short 10). */
  fixedDuration: number;
  /** fixed-rate and mesh-size: seconds between memory samples of each proxy during a run. */
  memorySampleS: number;
  /** mesh-size: how many Services the mesh knows, one cell per value... */
  meshServices: number[];
  /** ...times how many of them the proxy talks to (cells where it is more than the mesh has are skipped). */
  meshUsed: number[];
  /** mesh-size: ready endpoints of every Service. */
  meshEndpoints: number;
  /** mesh-size: requests per second, all used Services together (spread evenly). */
  meshRate: number;
  /** mesh-size: seconds of traffic per cell. */
  meshHoldS: number;
  /** undefined: no JSON; '-': JSON on stdout (the table then goes to stderr); else a file path. */
  json: string | undefined;
}

/** The figures of one load run, as parsed from wrk or h2load. */
export interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Socket errors, failed streams and non-2xx responses. */
  errors: number;
}

/** One measured load run. */
export interface Sample extends LoadResult {
  scenario: ResultScenario;
  path: PathName;
  round: number;
  /** The proxy's memory right after the run (bench/memory.ts; an mtls pair's: the sum of both); null
   *  for direct. */
  memory: MemoryFigures | null;
  /** balance: requests each replica received during this run (the slow one last). */
  replicaCounts?: number[];
  /** mtls: the memory of each proxy of the pair (memory is their sum). */
  pairMemory?: { client: MemoryFigures | null; server: MemoryFigures | null };
  /** mtls: CPU time (user + system) each proxy of the pair used per request during this run, µs. */
  pairCpuUsPerRequest?: { client: number | null; server: number | null };
  /** mtls: TLS connections the pair's server side accepted during this run. */
  tlsConnections?: number;
  /** mtls: connections the upstream accepted during this run. */
  upstreamConnections?: number;
  /** grpc (the grpc-js loads): the CPU the load generator used, in cores (its one thread: near 1 means
   *  it, not the path, set the rate). */
  loadgenCpuCores?: number;
}
