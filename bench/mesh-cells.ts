// The mesh-size scenario's cells, run inside the scenario's own network namespace (bench/mesh-size.ts
// creates it and starts this program there with `ip netns exec`, as root). In the namespace, the
// Services' range (SERVICE_CIDR) is routed to `lo`, and one iptables rule, as proxy-init's but for that
// range only, REDIRECTs connections to it to the proxy's outbound port: the proxy reads each connection's
// original destination (SO_ORIGINAL_DST) and asks discovery about it, as in a pod.
//
// Per cell (N Services in the mesh, K used): a fresh control plane (a LocalStore filled by
// bench/mesh-store.ts) and a fresh `outrigger proxy` (destination and policy from that control plane,
// its pod bench/client-0), the proxy's memory and the control plane's read after start-up (idle), then
// sampled during `hold` seconds of traffic to the K Services' addresses (bench/loadgen.ts at a constant
// rate, one connection per Service), and read again after 2 s. Everything every cell needs is started
// the same way; only N and K differ.
//
// The proxy and the control plane run with bench/gc-preload.js (node --expose-gc --import): after the
// idle and the end readings the bench asks each for a full garbage collection (SIGUSR2) and gets back
// the V8 heap it holds alive. USS itself varies by a few MB between two launches of the same proxy (mostly the malloc arenas
// of its threads, and how much of V8's young generation was touched), whatever it holds; the live heap
// after a full GC does not, so it is the figure that shows state kept per Service.
//
// argv[2]: the JSON of a CellsConfig. Progress on stderr; the result (CellsResult) as one JSON line on
// stdout.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlaneChild, type ControlPlaneChild } from './control.js';
import { runGenerator, type GeneratorRun } from './generator.js';
import { MemorySampler, readMemory, formatMemory, type MemoryFigures, type MemoryOverRun } from './memory.js';
import { CLIENT_POD, GC_LINE, meshContent, MESH_NS, SERVICE_CIDR, usedTargets } from './mesh-store.js';
import { promCounterSum } from './mtls.js';
import { BENCH_PROXY_NODE_OPTIONS, spawnOutriggerProcess, type OutriggerProcess } from './paths.js';
import {
  cleanupSync,
  fetchText,
  installCleanupHandlers,
  makeTempDir,
  removeTempDir,
  stopManaged,
  waitUntil,
  type Managed,
} from './tools.js';
import { spiffeOf } from './identity.js';
import { startUpstream } from './upstream-child.js';

export interface CellsConfig {
  services: number[];
  used: number[];
  endpoints: number;
  rate: number;
  holdS: number;
  rounds: number;
  memorySampleS: number;
}

/** What the proxy's V8 heap holds alive after a full GC (MB). */
export interface LiveHeap {
  heap_used_mb: number;
  external_mb: number;
}

export interface CellRun {
  services: number;
  used: number;
  round: number;
  /** After start-up (the proxy ready, 2 s of quiet), before any traffic; then each one's live heap
   *  (a full GC each). */
  idle: {
    proxy: MemoryFigures | null;
    control_plane: MemoryFigures | null;
    proxy_heap: LiveHeap | null;
    control_plane_heap: LiveHeap | null;
  };
  /** The live heaps after a full GC, 2 s after the traffic (after the end readings). */
  proxy_heap_end: LiveHeap | null;
  control_plane_heap_end: LiveHeap | null;
  /** Sampled during the traffic (max) and read 2 s after it (end). */
  proxy: MemoryOverRun | null;
  control_plane: MemoryOverRun | null;
  /** Destinations the proxy watched after the traffic (its destination_watches gauge): K when every
   *  Service was found through discovery. */
  watches: number;
  requests: number;
  errors: number;
  achieved_rps: number;
  /** How long the control plane took to hold the mesh (store.replace), ms. */
  fill_ms: number;
}

export interface CellsResult {
  runs: CellRun[];
}

const SETTLE_MS = 2000;
const GC_PRELOAD = fileURLToPath(new URL('./gc-preload.js', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = (line: string): void => void process.stderr.write(`${line}\n`);

/** Points the Services' range at the proxy's outbound port (this namespace's nat table is ours alone). */
function redirectServicesTo(port: number): void {
  execFileSync('iptables', ['-t', 'nat', '-F', 'OUTPUT']);
  execFileSync('iptables', [
    '-t',
    'nat',
    '-A',
    'OUTPUT',
    '-d',
    SERVICE_CIDR,
    '-p',
    'tcp',
    '-j',
    'REDIRECT',
    '--to-ports',
    String(port),
  ]);
}

/** Node's flags for a process whose live heap the bench reads (bench/gc-preload.ts). */
const GC_NODE_ARGS = ['--expose-gc', '--import', GC_PRELOAD];

/** The gc-preload answers of a process, from its stderr. */
function gcAnswers(proc: Managed): string[] {
  const lines: string[] = [];
  let partial = '';
  proc.child.stderr?.on('data', (c: Buffer) => {
    partial += c.toString('utf8');
    for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (line.startsWith(GC_LINE)) lines.push(line.slice(GC_LINE.length));
    }
  });
  return lines;
}

/** Asks a process running with gc-preload for a full GC and returns its live heap, or null if it does
 *  not answer within 10 s. */
async function collect(proc: Managed, answers: string[]): Promise<LiveHeap | null> {
  const before = answers.length;
  process.kill(proc.pid, 'SIGUSR2');
  try {
    await waitUntil(`${proc.name} gc`, () => Promise.resolve(answers.length > before), 10_000, proc);
  } catch {
    return null;
  }
  const m = JSON.parse(answers[answers.length - 1] ?? '{}') as { heap_used?: number; external?: number };
  const mb = (b: number | undefined): number => Number(((b ?? NaN) / 1048576).toFixed(2));
  return { heap_used_mb: mb(m.heap_used), external_mb: mb(m.external) };
}

async function runCell(
  cfg: CellsConfig,
  upstreamPort: number,
  services: number,
  used: number,
  round: number,
): Promise<CellRun> {
  let control: ControlPlaneChild | undefined;
  let proxy: OutriggerProcess | undefined;
  // The policy service answers only a proxy that presents its pod's certificate: the proxy gets one as
  // client-0 (the child writes its token here), as a meshed pod's proxy would.
  const identityDir = makeTempDir('mesh-cells');
  try {
    control = await startControlPlaneChild({ nodeArgs: GC_NODE_ARGS, identityDir });
    const cpAnswers = gcAnswers(control.proc);
    const t = Date.now();
    await control.replace(meshContent({ services, endpointsPerService: cfg.endpoints, upstreamPort }));
    const fillMs = Date.now() - t;
    const cp = `127.0.0.1:${control.port}`;
    proxy = await spawnOutriggerProcess(
      `mesh-size ${services}x${used}`,
      [
        ...['--destination-addr', cp, '--policy-addr', cp, '--pod', `${MESH_NS}/${CLIENT_POD}`],
        ...['--identity-addr', cp, '--identity-token-file', path.join(identityDir, 'client.token')],
        ...['--identity', spiffeOf('client'), ...control.tlsArgs],
      ],
      [...BENCH_PROXY_NODE_OPTIONS, ...GC_NODE_ARGS],
    );
    const proxyAnswers = gcAnswers(proxy.proc);
    redirectServicesTo(proxy.outbound);
    await sleep(SETTLE_MS);
    const idle = {
      proxy: readMemory(proxy.proc.pid),
      control_plane: readMemory(control.proc.pid),
      proxy_heap: await collect(proxy.proc, proxyAnswers),
      control_plane_heap: await collect(control.proc, cpAnswers),
    };
    const sampler = new MemorySampler(
      { proxy: proxy.proc.pid, control_plane: control.proc.pid },
      cfg.memorySampleS * 1000,
    );
    let gen: GeneratorRun;
    let memory: Record<string, MemoryOverRun>;
    try {
      gen = await runGenerator({
        targets: usedTargets(used),
        rate: cfg.rate,
        connections: used,
        durationS: cfg.holdS,
        drainS: 5,
      });
      await sleep(SETTLE_MS);
    } finally {
      memory = sampler.stop();
    }
    // After the end reading (the sampler's last): the GC would lower USS only a little (V8 keeps the
    // pages it freed), but the live heap is then exact.
    const endHeap = await collect(proxy.proc, proxyAnswers);
    const cpEndHeap = await collect(control.proc, cpAnswers);
    const metrics = await fetchText(proxy.admin, '/metrics');
    const r = gen.result;
    return {
      services,
      used,
      round,
      idle,
      proxy_heap_end: endHeap,
      control_plane_heap_end: cpEndHeap,
      proxy: memory['proxy'] ?? null,
      control_plane: memory['control_plane'] ?? null,
      watches: promCounterSum(metrics, 'destination_watches', {}),
      requests: r.scheduled,
      errors: r.status_errors + r.connection_errors + r.unfinished,
      achieved_rps: Number((r.completed_in_window / r.duration_s).toFixed(2)),
      fill_ms: fillMs,
    };
  } finally {
    if (proxy !== undefined) await stopManaged(proxy.proc);
    await control?.stop();
    removeTempDir(identityDir);
  }
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const cfg = JSON.parse(process.argv[2] ?? 'null') as CellsConfig;
  const { proc: upstream, ports } = await startUpstream(0, '0.0.0.0');
  const runs: CellRun[] = [];
  try {
    for (let round = 1; round <= cfg.rounds; round++) {
      for (const services of cfg.services) {
        for (const used of cfg.used) {
          if (used > services) continue;
          const c = await runCell(cfg, ports.http1, services, used, round);
          runs.push(c);
          log(
            `[mesh-size round ${round}/${cfg.rounds}] ${services} Services, ${used} used: proxy idle ${formatMemory(c.idle.proxy)}, ` +
              `end ${formatMemory(c.proxy?.end)}, live heap ${c.idle.proxy_heap?.heap_used_mb ?? '?'} -> ${c.proxy_heap_end?.heap_used_mb ?? '?'} MB; ` +
              `control plane end ${formatMemory(c.control_plane?.end)}, live heap ${c.control_plane_heap_end?.heap_used_mb ?? '?'} MB; ` +
              `${c.watches} watches, ${c.achieved_rps} req/s` +
              (c.errors > 0 ? `, WARNING ${c.errors} errors of ${c.requests}` : ''),
          );
        }
      }
    }
  } finally {
    await stopManaged(upstream);
  }
  process.stdout.write(JSON.stringify({ runs } satisfies CellsResult) + '\n');
}

main().then(
  () => {
    cleanupSync();
    process.exit(0);
  },
  (err: unknown) => {
    cleanupSync();
    log(`mesh-size cells: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
