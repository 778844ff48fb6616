// Shared vocabulary of the benchmark: scenarios, the paths the load takes, options, and one load run's figures.

export const SCENARIOS = ['http1', 'h2', 'balance', 'mtls', 'propagation'] as const;
export type Scenario = (typeof SCENARIOS)[number];
/** Scenarios whose figures are load runs on paths (propagation has its own shape). */
export type LoadScenario = Exclude<Scenario, 'propagation'>;
/** What a result row measured: a load scenario, or the mtls scenario's second load (a new client
 *  connection and a new mesh TLS connection for every request). */
export type ResultScenario = LoadScenario | 'mtls-handshake';

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
  /** balance: the delay (ms) the slow replica adds to every response. */
  slowMs: number;
  /** propagation: simulated proxies watching the Service. */
  watchers: number;
  /** propagation: endpoint changes measured. */
  changes: number;
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
