// `npm run bench`: on loopback, the same load (wrk for HTTP/1.1, h2load for h2c) against direct, outrigger
// and haproxy paths, alternating per round; prints a table and, with --json, the same figures as JSON.
//
// Output: the table goes to stdout. `--json FILE` writes the JSON to FILE; `--json` alone (or `--json -`)
// writes the JSON to stdout and moves the table to stderr, so `... --json > run.json` stays parseable.
// JSON shape: {"results":[{"scenario","path","rps","p50_ms","p99_ms","proxy_rss_mb","errors"}],
//              "ratios":[{"scenario","rps_outrigger_over_haproxy","p99_outrigger_over_haproxy"}],"config":{...}}
// Aggregation: with --rounds N every path is measured N times, in a rotated order each round; each figure
// reported is the MEDIAN over the N runs (errors are the SUM). Progress lines go to stderr.
// The driver only spawns and parses: the upstream runs in its own node process (bench/upstream.ts),
// and wrk/h2load run one thread each, since client, proxy and upstream share the machine's cores.
// OUTRIGGER_BENCH_CLI=/path/to/cli/main.js runs that build as `outrigger proxy` instead of dist/src/cli/main.js.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { H2_STREAMS, runH2load } from './h2.js';
import { runWrk } from './http1.js';
import { parseOptions, USAGE } from './options.js';
import { assertOutriggerBuilt, startPath, type RunningPath } from './paths.js';
import { buildReport, formatTable, type Sample } from './report.js';
import {
  BenchError,
  cleanupSync,
  installCleanupHandlers,
  isInterrupted,
  makeTempDir,
  removeTempDir,
  requireTools,
  rssMb,
  spawnManaged,
  stopManaged,
  waitUntil,
  type Managed,
  type Tool,
} from './tools.js';
import type { LoadResult, Options, Scenario } from './types.js';
import type { UpstreamPorts } from './upstream.js';

const UPSTREAM_SCRIPT = fileURLToPath(new URL('./upstream.js', import.meta.url));

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface Context {
  opts: Options;
  tools: Partial<Record<Tool, string>>;
  upstream: UpstreamPorts;
  tmpDir: string;
}

function neededTools(opts: Options): Tool[] {
  const tools: Tool[] = [];
  if (opts.scenarios.includes('http1')) tools.push('wrk');
  if (opts.scenarios.includes('h2')) tools.push('h2load');
  if (opts.paths.includes('haproxy')) tools.push('haproxy');
  return tools;
}

/** Starts bench/upstream.js and reads the ports it prints on its first stdout line. */
async function startUpstream(): Promise<{ proc: Managed; ports: UpstreamPorts }> {
  const proc = spawnManaged('upstream', process.execPath, [UPSTREAM_SCRIPT]);
  let ports: UpstreamPorts | undefined;
  await waitUntil(
    'upstream',
    () => {
      const line = proc.tail().split('\n')[0];
      if (line !== undefined && proc.tail().includes('\n')) ports = JSON.parse(line) as UpstreamPorts;
      return Promise.resolve(ports !== undefined);
    },
    10_000,
    proc,
  );
  if (ports === undefined) throw new Error('unreachable: upstream ports');
  return { proc, ports };
}

function runLoad(ctx: Context, scenario: Scenario, port: number, durationS: number): Promise<LoadResult> {
  const connections = ctx.opts.connections;
  if (scenario === 'h2') {
    return runH2load({ h2load: ctx.tools.h2load ?? 'h2load', port, durationS, connections, tmpDir: ctx.tmpDir });
  }
  return runWrk({ wrk: ctx.tools.wrk ?? 'wrk', port, durationS, connections });
}

/** Starts every path for one scenario, warms each up, then runs the alternating rounds. */
async function runScenario(ctx: Context, scenario: Scenario): Promise<Sample[]> {
  const { opts } = ctx;
  const upstreamPort = scenario === 'h2' ? ctx.upstream.h2 : ctx.upstream.http1;
  const running: RunningPath[] = [];
  const samples: Sample[] = [];
  try {
    for (const path of opts.paths) {
      log(`[${scenario}] starting ${path}`);
      running.push(await startPath(path, scenario, upstreamPort, ctx.tools.haproxy));
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
        const result = await runLoad(ctx, scenario, p.port, opts.duration);
        const rss = p.pid === null ? null : rssMb(p.pid);
        if (p.exitedEarly()) throw new BenchError(`[${scenario}] ${p.path} exited during its load run`);
        samples.push({ ...result, scenario, path: p.path, round, rssMb: rss });
        log(
          `[${scenario} round ${round}/${opts.rounds}] ${p.path.padEnd(9)} ${result.rps.toFixed(0)} req/s, ` +
            `p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms` +
            (rss === null ? '' : `, rss ${rss.toFixed(1)} MB`) +
            (result.errors > 0 ? `, WARNING ${result.errors} errors of ${result.requests} requests` : ''),
        );
      }
    }
  } finally {
    for (const p of running) await p.stop();
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
  if (opts.paths.includes('outrigger')) assertOutriggerBuilt(); // fail before starting anything

  const { proc: upstream, ports } = await startUpstream();
  const tmpDir = makeTempDir('run');
  const ctx: Context = { opts, tools, upstream: ports, tmpDir };
  log(`upstream: http1 127.0.0.1:${ports.http1}, h2c 127.0.0.1:${ports.h2} (pid ${upstream.pid})`);
  const samples: Sample[] = [];
  try {
    for (const scenario of opts.scenarios) samples.push(...(await runScenario(ctx, scenario)));
  } finally {
    await stopManaged(upstream);
    removeTempDir(tmpDir);
  }

  const report = buildReport(samples, opts, H2_STREAMS);
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
