// The V8 settings a proxy runs with, wherever it runs: the local runtime puts them on the proxy's node
// command line (runtime/supervisor/proxy-command.ts), the injector puts them in the sidecar's
// NODE_OPTIONS (kube/inject.ts), and the benchmark starts its proxies with them (bench/paths.ts), so
// that what is measured is what runs.
//
// Why: a sidecar is paid once per pod, and most of a busy proxy's private memory is V8's young
// generation. V8 lets each of its two semi-spaces grow to 16 MB on a 64-bit machine when a process
// allocates fast; a proxy's garbage is short-lived (a request's headers, buffers and closures), so a
// small young generation is scavenged more often, each scavenge being cheaper. Measured with
// OUTRIGGER_BENCH_PROXY_NODE_OPTIONS on Node 20 (README, "V8 settings"): at 2,000 RPS through the mTLS
// pair (fixed-rate) the young generation never grows much and 2 MB changes nothing measurable (USS
// 21-22 MB per proxy either way, p99 within the run-to-run noise); at saturation (the mtls scenario)
// the pair's USS fell from 64 to 49 MB keep-alive and from 132 to 80 MB on new connections, with
// throughput and CPU per request no worse.

/** Node/V8 flags for `outrigger proxy`. Every one of them is allowed in NODE_OPTIONS. */
export const PROXY_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=2'];

/** The same flags as one NODE_OPTIONS value. */
export function proxyNodeOptionsEnv(): string {
  return PROXY_NODE_OPTIONS.join(' ');
}
