// Shared vocabulary of the benchmark: scenarios, the paths the load takes, options, and one load run's figures.

export const SCENARIOS = ['http1', 'h2'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** direct: client → upstream; outrigger / haproxy: client → proxy → upstream. */
export const PATHS = ['direct', 'outrigger', 'haproxy'] as const;
export type PathName = (typeof PATHS)[number];

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
