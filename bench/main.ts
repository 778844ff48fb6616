// `npm run bench`: on loopback, the same load (wrk for HTTP/1.1, h2load for h2c) against direct, outrigger
// and haproxy paths, alternating per round; prints a table and, with --json, the same figures as JSON.
// The balance scenario runs one HTTP/1.1 load (h2load --h1 by default) against three replicas (one slow) through outrigger (its
// endpoints from a control-plane child) and haproxy round-robin, counting where the requests went; the
// propagation scenario times an endpoint change from the store to N watching Discovery clients
// (bench/propagation.ts). The mtls scenario puts keep-alive load, then a new connection per request, on
// a client proxy → mutual TLS → server proxy pair, outrigger's (identities from a control-plane child
// that is also the CA) and haproxy's (bench/mtls.ts); the grpc scenario puts gRPC calls (grpc-js clients and
// h2load) on those pairs over HTTP/2 and on direct (bench/grpc.ts). The fixed-rate scenario puts an open-loop load at
// constant rates on direct and on those two pairs (bench/fixed-rate.ts; our own generator,
// bench/loadgen.ts); the mesh-size scenario measures a proxy's and the control plane's memory against
// the Services the mesh knows and the proxy uses (bench/mesh-size.ts, root, in a network namespace).
// Every memory figure is RSS, USS and PSS from /proc/PID/smaps_rollup (bench/memory.ts).
//
// Output: the table goes to stdout. `--json FILE` writes the JSON to FILE; `--json` alone (or `--json -`)
// writes the JSON to stdout and moves the table to stderr, so `... --json > run.json` stays parseable.
// JSON shape: {"results":[{"scenario","path","rps","p50_ms","p99_ms","proxy_rss_mb","proxy_uss_mb","proxy_pss_mb","errors",
//                           "replicas"?:[{"name","slow","requests","share"}]  (balance only),
//                           "client_proxy_{rss,uss,pss}_mb"?,"server_proxy_{rss,uss,pss}_mb"?,"client_proxy_cpu_us_per_request"?,
//                           "server_proxy_cpu_us_per_request"?,"tls_connections_per_request"?,
//                           "upstream_connections_per_request"?  (mtls and mtls-handshake only)}],
//              "ratios":[{"scenario","rps_outrigger_over_haproxy","p99_outrigger_over_haproxy"}],
//              "propagation"?:{"watchers","changes","samples","missed","p50_ms","p99_ms","max_ms",...},
//              "fixed_rate"?:{"config","results":[{"rate","path","latency_ms","added_ms","proxies","schedule",...}],"runs"},
//              "mesh_size"?:{"config","cells":[{"services","used","proxy","proxy_heap_mb","control_plane",...}],
//                            "spreads","idle_uss_range_mb","target","runs"},
//              "config":{...,"mtls_handshake_load"? (mtls only)}}
// Aggregation: with --rounds N every path is measured N times, in a rotated order each round; each figure
// reported is the MEDIAN over the N runs (errors are the SUM); fixed-rate pools the rounds' requests into
// one latency histogram per rate and path. Progress lines go to stderr.
// The driver only spawns and parses: the upstream runs in its own node process (bench/upstream.ts),
// and wrk/h2load run one thread each, since client, proxy and upstream share the machine's cores.
// OUTRIGGER_BENCH_CLI=/path/to/cli/main.js runs that build as `outrigger proxy` instead of dist/src/cli/main.js.
// OUTRIGGER_BENCH_NODE=/path/to/node runs the outrigger proxies with that Node instead of this one.
import { writeFileSync } from 'node:fs';
import { serviceContent, startControlPlaneChild, VIP, VIP_PORT, type ControlPlaneChild } from './control.js';
import { H2_STREAMS, runH2load } from './h2.js';
import { runWrk } from './http1.js';
import { parseOptions, USAGE } from './options.js';
import { assertOutriggerBuilt, proxyNodeVersion, startBalancePath, startPath, type RunningPath } from './paths.js';
import { handshakeSetup, runMtlsScenario } from './mtls.js';
import { runGrpcScenario } from './grpc.js';
import { runFixedRateScenario, type FixedRateReport } from './fixed-rate.js';
import { formatMemory, readMemory } from './memory.js';
import { meshSizeUnavailable, runMeshSizeScenario } from './mesh-size.js';
import { measurePropagation, type PropagationResult } from './propagation.js';
import { buildReport, formatTable, type Sample } from './report.js';
import {
  BenchError,
  cleanupSync,
  fetchJson,
  installCleanupHandlers,
  isInterrupted,
  makeTempDir,
  removeTempDir,
  requireTools,
  stopManaged,
  type Tool,
} from './tools.js';
import { isLoadScenario, REPLICAS, type LoadResult, type LoadScenario, type Options, type PathName } from './types.js';
import { startUpstream } from './upstream-child.js';
import type { UpstreamPorts } from './upstream.js';

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface Context {
  opts: Options;
  tools: Partial<Record<Tool, string>>;
  upstream: UpstreamPorts;
  tmpDir: string;
}

/** The scenarios that put closed-loop load on paths (propagation, fixed-rate and mesh-size have their
 *  own shapes). */
function loadScenarios(opts: Options): LoadScenario[] {
  return opts.scenarios.filter(isLoadScenario);
}

/** The paths a scenario measures: balance has no direct path (there is nothing to balance), mtls
 *  neither (it measures pairs of proxies; http1's direct row is its baseline). */
function pathsOf(opts: Options, scenario: LoadScenario): PathName[] {
  return scenario === 'balance' || scenario === 'mtls' ? opts.paths.filter((p) => p !== 'direct') : opts.paths;
}

function neededTools(opts: Options): Tool[] {
  const tools: Tool[] = [];
  const load = loadScenarios(opts);
  const balance = load.includes('balance');
  if (load.includes('http1') || load.includes('mtls') || (balance && opts.balanceClient === 'wrk')) tools.push('wrk');
  if (load.includes('h2') || load.includes('grpc') || (balance && opts.balanceClient === 'h2load'))
    tools.push('h2load');
  const fixedRate = opts.scenarios.includes('fixed-rate');
  if (load.some((s) => pathsOf(opts, s).includes('haproxy')) || (fixedRate && opts.paths.includes('haproxy')))
    tools.push('haproxy');
  return tools;
}

function runLoad(
  ctx: Context,
  scenario: Exclude<LoadScenario, 'grpc'>,
  port: number,
  durationS: number,
): Promise<LoadResult> {
  const connections = ctx.opts.connections;
  if (scenario === 'h2') {
    return runH2load({ h2load: ctx.tools.h2load ?? 'h2load', port, durationS, connections, tmpDir: ctx.tmpDir });
  }
  if (scenario === 'balance' && ctx.opts.balanceClient === 'h2load') {
    return runH2load({
      h2load: ctx.tools.h2load ?? 'h2load',
      port,
      durationS,
      connections,
      tmpDir: ctx.tmpDir,
      h1: true,
    });
  }
  return runWrk({ wrk: ctx.tools.wrk ?? 'wrk', port, durationS, connections });
}

/** The requests each balance replica has received so far (the upstream counts them). */
async function replicaCounts(ctx: Context): Promise<number[]> {
  const counts = await fetchJson(ctx.upstream.stats, '/counts');
  if (!Array.isArray(counts) || counts.length !== REPLICAS || !counts.every((n) => typeof n === 'number')) {
    throw new BenchError(`upstream: unexpected /counts answer ${JSON.stringify(counts)}`);
  }
  return counts as number[];
}

/** Starts every path for one scenario, warms each up, then runs the alternating rounds. */
async function runScenario(ctx: Context, scenario: Exclude<LoadScenario, 'grpc'>): Promise<Sample[]> {
  const { opts } = ctx;
  const paths = pathsOf(opts, scenario);
  if (paths.length === 0) {
    log(`[${scenario}] skipped: it measures outrigger and haproxy, and --paths has neither`);
    return [];
  }
  const running: RunningPath[] = [];
  const samples: Sample[] = [];
  let control: ControlPlaneChild | undefined;
  try {
    let start: (path: PathName) => Promise<RunningPath>;
    if (scenario === 'balance') {
      const replicas = ctx.upstream.replicas;
      if (paths.includes('outrigger')) {
        control = await startControlPlaneChild();
        await control.replace(
          serviceContent(replicas.map((port, i) => ({ pod: `replica-${i}`, ip: '127.0.0.1', port }))),
        );
        log(
          `[balance] control plane on 127.0.0.1:${control.port} (pid ${control.proc.pid}): ${VIP}:${VIP_PORT} -> ${replicas.length} replicas`,
        );
      }
      const controlTls = { port: control?.port ?? 0, tlsArgs: control?.tlsArgs ?? [] };
      start = (path) => {
        if (path === 'direct') throw new Error('unreachable: balance has no direct path');
        return startBalancePath(path, `${VIP}:${VIP_PORT}`, controlTls, replicas, ctx.tools.haproxy);
      };
    } else {
      const upstreamPort = scenario === 'h2' ? ctx.upstream.h2 : ctx.upstream.http1;
      start = (path) => startPath(path, scenario, upstreamPort, ctx.tools.haproxy);
    }
    for (const path of paths) {
      log(`[${scenario}] starting ${path}`);
      running.push(await start(path));
    }
    if (opts.warmup > 0) {
      for (const p of running) {
        log(`[${scenario}] warm-up ${p.path} ${opts.warmup}s`);
        await runLoad(ctx, scenario, p.port, opts.warmup);
      }
    }
    for (let round = 1; round <= opts.rounds; round++) {
      // Rotate the order each round so no path always runs first (or last) after the others.
      const shift = (round - 1) % running.length;
      const order = [...running.slice(shift), ...running.slice(0, shift)];
      for (const p of order) {
        const before = scenario === 'balance' ? await replicaCounts(ctx) : undefined;
        const result = await runLoad(ctx, scenario, p.port, opts.duration);
        const memory = p.pid === null ? null : readMemory(p.pid);
        if (p.exitedEarly()) throw new BenchError(`[${scenario}] ${p.path} exited during its load run`);
        const after = before !== undefined ? await replicaCounts(ctx) : undefined;
        const counts =
          before !== undefined && after !== undefined ? after.map((n, i) => n - (before[i] ?? 0)) : undefined;
        samples.push({
          ...result,
          scenario,
          path: p.path,
          round,
          memory,
          ...(counts !== undefined ? { replicaCounts: counts } : {}),
        });
        log(
          `[${scenario} round ${round}/${opts.rounds}] ${p.path.padEnd(9)} ${result.rps.toFixed(0)} req/s, ` +
            `p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms` +
            (p.pid === null ? '' : `, ${formatMemory(memory)}`) +
            (counts === undefined ? '' : `, per replica ${counts.join('/')} (slow last)`) +
            (result.errors > 0 ? `, WARNING ${result.errors} errors of ${result.requests} requests` : ''),
        );
      }
    }
  } finally {
    for (const p of running) await p.stop();
    await control?.stop();
  }
  return samples;
}

async function main(): Promise<number> {
  installCleanupHandlers();
  const parsed = parseOptions(process.argv.slice(2));
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const opts = parsed;
  const tools = requireTools(neededTools(opts));
  const load = loadScenarios(opts);
  const fixedRate = opts.scenarios.includes('fixed-rate');
  const meshSize = opts.scenarios.includes('mesh-size');
  // Fail before starting anything.
  if (
    load.some((s) => pathsOf(opts, s).includes('outrigger')) ||
    (fixedRate && opts.paths.includes('outrigger')) ||
    meshSize
  ) {
    assertOutriggerBuilt();
    log(`outrigger proxies run on Node ${proxyNodeVersion()}`);
  }
  const noMesh = meshSize ? meshSizeUnavailable() : undefined;
  if (noMesh !== undefined) throw new BenchError(`mesh-size: ${noMesh}`);

  const samples: Sample[] = [];
  let fixedRateReport: FixedRateReport | undefined;
  if (load.length > 0 || fixedRate) {
    const { proc: upstream, ports } = await startUpstream(opts.slowMs);
    const tmpDir = makeTempDir('run');
    const ctx: Context = { opts, tools, upstream: ports, tmpDir };
    log(
      `upstream: http1 127.0.0.1:${ports.http1}, h2c 127.0.0.1:${ports.h2}, ` +
        `balance replicas ${ports.replicas.join(',')} (the last +${opts.slowMs} ms) (pid ${upstream.pid})`,
    );
    try {
      for (const scenario of load) {
        if (scenario === 'mtls') {
          const mtls = {
            opts,
            wrk: tools.wrk ?? 'wrk',
            haproxy: tools.haproxy,
            upstreamPort: ports.http1,
            statsPort: ports.stats,
            log,
          };
          samples.push(...(await runMtlsScenario(mtls)));
        } else if (scenario === 'grpc') {
          const grpc = { opts, h2load: tools.h2load ?? 'h2load', haproxy: tools.haproxy, log };
          samples.push(...(await runGrpcScenario(grpc)));
        } else {
          samples.push(...(await runScenario(ctx, scenario)));
        }
      }
      if (fixedRate)
        fixedRateReport = await runFixedRateScenario({ opts, haproxy: tools.haproxy, upstreamPort: ports.http1, log });
    } finally {
      await stopManaged(upstream);
      removeTempDir(tmpDir);
    }
  }
  let propagation: PropagationResult | undefined;
  if (opts.scenarios.includes('propagation')) propagation = await measurePropagation(opts, log);
  const meshSizeReport = meshSize ? await runMeshSizeScenario(opts, log) : undefined;

  const report = buildReport(samples, opts, H2_STREAMS, propagation, handshakeSetup(opts.resumption), {
    ...(fixedRateReport !== undefined ? { fixedRate: fixedRateReport } : {}),
    ...(meshSizeReport !== undefined ? { meshSize: meshSizeReport } : {}),
  });
  const table = formatTable(report);
  const json = JSON.stringify(report, null, 2) + '\n';
  if (opts.json === '-') {
    process.stderr.write(`\n${table}`);
    process.stdout.write(json);
  } else {
    process.stdout.write(`\n${table}`);
    if (opts.json !== undefined) {
      writeFileSync(opts.json, json);
      log(`JSON written to ${opts.json}`);
    }
  }
  if (report.results.some((r) => r.errors > 0)) log('WARNING: some runs had errors; their figures are suspect');
  if ((propagation?.missed ?? 0) > 0) log('WARNING: some watchers never saw some changes (propagation "missed")');
  if (fixedRateReport?.results.some((r) => r.errors > 0))
    log('WARNING: fixed-rate: some runs had errors; their figures are suspect');
  if (fixedRateReport?.results.some((r) => r.schedule.problems.length > 0))
    log('WARNING: fixed-rate: the schedule was not kept in some runs (see "schedule"); their latencies are suspect');
  if (meshSizeReport?.cells.some((c) => c.errors > 0 || c.watches !== c.used))
    log('WARNING: mesh-size: some cells had errors or did not watch every used Service');
  return 0;
}

main().then(
  (code) => {
    cleanupSync();
    process.exitCode = code;
  },
  (err: unknown) => {
    cleanupSync();
    if (isInterrupted()) return;
    if (err instanceof BenchError) log(`bench: ${err.message}`);
    else log(`bench: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  },
);
