// The grpc scenario: gRPC through the mesh path, client → outbound proxy → mutual TLS → inbound proxy →
// upstream, on the outrigger pair and on the haproxy pair (HTTP/2 end to end: h2c in, ALPN h2 between
// the proxies, h2c to the upstream), with direct (client → upstream) as the baseline the added p99 is
// measured from. The upstream is a @grpc/grpc-js server (bench/grpc-upstream.ts); the pairs are the mtls
// scenario's (bench/mtls.ts startMeshPairs), set up for HTTP/2.
//
// Three loads, alternated per round like every scenario:
// - grpc-unary: @grpc/grpc-js clients (bench/grpc-load.ts), --connections channels x 10 calls in
//   flight, one 100-byte message each way.
// - grpc-stream: the same clients, server-streaming: one request, 10 answers of 100 bytes.
// - grpc-unary-h2load: h2load posting the same unary call's bytes (content-type application/grpc,
//   te: trailers), --connections x 10 streams. grpc-js is a heavy client on one thread: when its CPU
//   reaches a whole core it, not the path, sets the rate; h2load is the generator that can push harder.
//   It cannot read grpc-status, so the upstream counts the calls it served and a shortfall is an error.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import { ECHO_SERVICE, grpcFrame, PAYLOAD_BYTES, STREAM_MESSAGES, UNARY_PATH } from './grpc-service.js';
import { H2_STREAMS, runH2load } from './h2.js';
import { Histogram, type HistogramJson } from './histogram.js';
import { formatMemory, readMemory, type MemoryFigures } from './memory.js';
import { pairEntry, startMeshPairs, type MeshPair, type PairName } from './mtls.js';
import {
  BenchError,
  cpuSeconds,
  fetchJson,
  makeTempDir,
  removeTempDir,
  runTool,
  spawnManaged,
  stopManaged,
  waitUntil,
  type Managed,
} from './tools.js';
import type { LoadResult, Options, PathName, Sample } from './types.js';

const LOAD_SCRIPT = fileURLToPath(new URL('./grpc-load.js', import.meta.url));
const UPSTREAM_SCRIPT = fileURLToPath(new URL('./grpc-upstream.js', import.meta.url));

export const GRPC_LOADS = ['grpc-unary', 'grpc-stream', 'grpc-unary-h2load'] as const;
export type GrpcLoad = (typeof GRPC_LOADS)[number];
/** A generator whose CPU is at least this (in cores) is taken to be the bottleneck of its run. */
export const SATURATED_CORES = 0.9;

interface GrpcContext {
  readonly opts: Options;
  readonly h2load: string;
  readonly haproxy: string | undefined;
  readonly log: (line: string) => void;
}

/** One path the loads enter: direct (the upstream itself) or a pair's client-side proxy. */
interface Entry {
  readonly path: PathName;
  readonly port: number;
  readonly pair: MeshPair | undefined;
}

interface Upstream {
  readonly proc: Managed;
  readonly grpc: number;
  readonly stats: number;
}

async function startGrpcUpstream(): Promise<Upstream> {
  const proc = spawnManaged('grpc upstream', process.execPath, [UPSTREAM_SCRIPT]);
  let ports: { grpc: number; stats: number } | undefined;
  await waitUntil(
    'grpc upstream',
    () => {
      const t = proc.tail();
      if (t.includes('\n')) ports = JSON.parse(t.split('\n')[0] as string) as { grpc: number; stats: number };
      return Promise.resolve(ports !== undefined);
    },
    10_000,
    proc,
  );
  if (ports === undefined) throw new Error('unreachable: grpc upstream ports');
  return { proc, ...ports };
}

async function served(up: Upstream): Promise<number> {
  const n = await fetchJson(up.stats, '/served');
  if (typeof n !== 'number') throw new BenchError(`grpc upstream: unexpected /served answer ${JSON.stringify(n)}`);
  return n;
}

/** One unary call through `port` succeeds (the pairs' readiness). */
export function grpcProbe(port: number): Promise<boolean> {
  const Echo = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
  const client = new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  }) as unknown as grpc.Client & {
    unary(req: Buffer, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): void;
  };
  return new Promise((resolve) => {
    client.unary(Buffer.from('probe'), { deadline: Date.now() + 2000 }, (err) => {
      client.close();
      resolve(err === null);
    });
  });
}

interface GeneratorRun {
  calls: number;
  errors: number;
  messages: number;
  wall_s: number;
  cpu_cores: number;
  first_errors: string[];
  histogram: HistogramJson;
}

async function runGrpcJs(ctx: GrpcContext, port: number, mode: 'unary' | 'stream', durationS: number) {
  const args = [
    LOAD_SCRIPT,
    ...['--target', `127.0.0.1:${port}`, '--mode', mode, '--duration', String(durationS)],
    ...['--channels', String(ctx.opts.connections), '--concurrency', String(H2_STREAMS)],
  ];
  const out = await runTool(process.execPath, args, (durationS + 60) * 1000);
  if (out.code !== 0) throw new BenchError(`grpc-load exited with ${out.code}: ${out.stderr.trim()}`);
  const run = JSON.parse(out.stdout.trim().split('\n').pop() ?? '') as GeneratorRun;
  if (run.calls === 0) throw new BenchError(`grpc-load: no call completed: ${run.first_errors.join('; ')}`);
  const h = Histogram.fromJSON(run.histogram);
  const result: LoadResult = {
    rps: run.calls / run.wall_s,
    p50Ms: h.percentile(50) / 1e6,
    p99Ms: h.percentile(99) / 1e6,
    requests: run.calls,
    errors: run.errors,
  };
  return { result, cpuCores: run.cpu_cores, firstErrors: run.first_errors };
}

async function runLoad(
  ctx: GrpcContext,
  up: Upstream,
  tmpDir: string,
  bodyFile: string,
  load: GrpcLoad,
  port: number,
  durationS: number,
): Promise<{ result: LoadResult; cpuCores: number | null; firstErrors: string[] }> {
  if (load !== 'grpc-unary-h2load') return runGrpcJs(ctx, port, load === 'grpc-unary' ? 'unary' : 'stream', durationS);
  const before = await served(up);
  const result = await runH2load({
    h2load: ctx.h2load,
    port,
    durationS,
    connections: ctx.opts.connections,
    tmpDir,
    path: UNARY_PATH,
    dataFile: bodyFile,
    headers: ['content-type: application/grpc', 'te: trailers'],
  });
  // h2load counts a 200 as a success; a gRPC error answer is a 200 too. The upstream knows what it served.
  const shortfall = Math.max(0, result.requests - ((await served(up)) - before));
  return { result: { ...result, errors: result.errors + shortfall }, cpuCores: null, firstErrors: [] };
}

function sumMemory(a: MemoryFigures, b: MemoryFigures): MemoryFigures {
  const sum = (k: keyof MemoryFigures): number => Number((a[k] + b[k]).toFixed(2));
  return {
    rss_mb: sum('rss_mb'),
    pss_mb: sum('pss_mb'),
    uss_mb: sum('uss_mb'),
    private_dirty_mb: sum('private_dirty_mb'),
  };
}

async function measure(
  ctx: GrpcContext,
  up: Upstream,
  tmpDir: string,
  bodyFile: string,
  e: Entry,
  load: GrpcLoad,
  round: number,
): Promise<Sample> {
  const pids = e.pair !== undefined ? pairEntry(e.pair, 'keepalive').pids : undefined;
  const cpuBefore = pids && { client: cpuSeconds(pids.client), server: cpuSeconds(pids.server) };
  const run = await runLoad(ctx, up, tmpDir, bodyFile, load, e.port, ctx.opts.duration);
  const { result } = run;
  const cpuAfter = pids && { client: cpuSeconds(pids.client), server: cpuSeconds(pids.server) };
  if (e.pair?.exitedEarly()) throw new BenchError(`[grpc] a process of the ${e.path} pair exited during ${load}`);
  if (up.proc.hasExited()) throw new BenchError(`[grpc] the upstream exited during ${load}:\n${up.proc.tail()}`);
  const sample: Sample = { ...result, scenario: load, path: e.path, round, memory: null };
  if (run.cpuCores !== null) sample.loadgenCpuCores = run.cpuCores;
  if (run.firstErrors.length > 0) ctx.log(`[${load}] ${e.path}: first errors: ${run.firstErrors.join('; ')}`);
  if (pids !== undefined && cpuBefore !== undefined && cpuAfter !== undefined) {
    const client = readMemory(pids.client);
    const server = readMemory(pids.server);
    const cpuUs = (side: 'client' | 'server'): number | null => {
      const [a, b] = [cpuBefore[side], cpuAfter[side]];
      return a === null || b === null || result.requests === 0 ? null : ((b - a) * 1e6) / result.requests;
    };
    sample.memory = client !== null && server !== null ? sumMemory(client, server) : null;
    sample.pairMemory = { client, server };
    sample.pairCpuUsPerRequest = { client: cpuUs('client'), server: cpuUs('server') };
  }
  return sample;
}

function describe(s: Sample): string {
  const cpu = s.pairCpuUsPerRequest;
  return (
    `${s.path.padEnd(9)} ${s.rps.toFixed(0)} calls/s` +
    (s.scenario === 'grpc-stream' ? ` (${(s.rps * STREAM_MESSAGES).toFixed(0)} messages/s)` : '') +
    `, p50 ${s.p50Ms.toFixed(2)} ms, p99 ${s.p99Ms.toFixed(2)} ms` +
    (s.pairMemory ? `, client ${formatMemory(s.pairMemory.client)}, server ${formatMemory(s.pairMemory.server)}` : '') +
    (cpu ? `, cpu/call ${cpu.client?.toFixed(0) ?? '?'}+${cpu.server?.toFixed(0) ?? '?'} us` : '') +
    (s.loadgenCpuCores !== undefined ? `, grpc-js client ${s.loadgenCpuCores.toFixed(2)} cores` : '') +
    (s.loadgenCpuCores !== undefined && s.loadgenCpuCores >= SATURATED_CORES
      ? ' (SATURATED: the client, not the path, set this rate)'
      : '') +
    (s.errors > 0 ? `, WARNING ${s.errors} errors of ${s.requests} calls` : '')
  );
}

/** Starts the upstream and both pairs (HTTP/2), warms each path up with every load, then the rounds. */
export async function runGrpcScenario(ctx: GrpcContext): Promise<Sample[]> {
  const { opts, log } = ctx;
  const up = await startGrpcUpstream();
  const tmpDir = makeTempDir('grpc');
  const bodyFile = path.join(tmpDir, 'unary.grpc');
  writeFileSync(bodyFile, grpcFrame(Buffer.alloc(PAYLOAD_BYTES, 0x61)));
  log(`[grpc] grpc-js upstream on 127.0.0.1:${up.grpc} (pid ${up.proc.pid})`);
  const wanted = opts.paths.filter((p): p is PairName => p !== 'direct');
  let mesh: Awaited<ReturnType<typeof startMeshPairs>> | undefined;
  const samples: Sample[] = [];
  try {
    if (!(await grpcProbe(up.grpc))) throw new BenchError('[grpc] the upstream does not answer a unary call');
    if (wanted.length > 0) {
      mesh = await startMeshPairs({
        pairs: wanted,
        loads: ['keepalive'],
        haproxy: ctx.haproxy,
        upstreamPort: up.grpc,
        log,
        label: 'grpc',
        h2: true,
        probe: grpcProbe,
      });
    }
    const entries: Entry[] = [
      ...(opts.paths.includes('direct') ? [{ path: 'direct' as const, port: up.grpc, pair: undefined }] : []),
      ...(mesh?.pairs ?? []).map((p) => ({ path: p.path, port: pairEntry(p, 'keepalive').port, pair: p })),
    ];
    if (opts.warmup > 0) {
      for (const e of entries) {
        for (const load of GRPC_LOADS) {
          log(`[grpc] warm-up ${e.path} ${load} ${opts.warmup}s`);
          await runLoad(ctx, up, tmpDir, bodyFile, load, e.port, opts.warmup);
        }
      }
    }
    for (let round = 1; round <= opts.rounds; round++) {
      const shift = (round - 1) % entries.length;
      const order = [...entries.slice(shift), ...entries.slice(0, shift)];
      for (const load of GRPC_LOADS) {
        for (const e of order) {
          const s = await measure(ctx, up, tmpDir, bodyFile, e, load, round);
          samples.push(s);
          log(`[${load} round ${round}/${opts.rounds}] ${describe(s)}`);
        }
      }
    }
  } finally {
    await mesh?.stop();
    await stopManaged(up.proc);
    removeTempDir(tmpDir);
  }
  return samples;
}
