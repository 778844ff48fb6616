// The mesh-size scenario: does a proxy's memory follow what it uses, or the size of the mesh? One proxy
// and the control plane, while the mesh knows N Services (a LocalStore behind the real control plane)
// and the proxy talks to K of them. The point (target): a proxy talking to 10 Services uses the same
// private memory (USS), within 2 MB, whether the mesh has 10 or 5,000 Services.
//
// A proxy finds a Service by its connection's original destination, so the scenario needs what a pod
// has: connections to many addresses redirected to one proxy. It makes a network namespace of its own
// (root), with the Services' range routed to `lo`, and runs everything there (bench/mesh-cells.ts:
// upstream, control plane, proxy, load generator, one iptables REDIRECT in the namespace's own nat
// table), so nothing on the machine's own network changes. The namespace and whatever still runs in it
// are removed at the end, on failure and on Ctrl-C.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { median } from './stats.js';
import type { CellRun, CellsConfig, CellsResult } from './mesh-cells.js';
import type { MemoryFigures } from './memory.js';
import { SERVICE_CIDR } from './mesh-store.js';
import { assertOutriggerBuilt } from './paths.js';
import { columns } from './table.js';
import { addCleanup, BenchError, findExecutable, killPid, spawnManaged, stopManaged } from './tools.js';
import type { Options } from './types.js';

const CELLS_SCRIPT = fileURLToPath(new URL('./mesh-cells.js', import.meta.url));
const ADDON = fileURLToPath(new URL('../../native/build/Release/origdst.node', import.meta.url));

/** The target: at this many used Services, USS may differ by at most LIMIT_MB between the smallest and
 *  the largest mesh measured. */
export const TARGET = { used: 10, limitMb: 2 } as const;

export interface MeshSizeCell {
  services: number;
  used: number;
  rounds: number;
  /** Medians over rounds of the idle and end readings; max: the largest reading of any round. */
  proxy: { idle: MemoryFigures | null; end: MemoryFigures | null; max: MemoryFigures | null };
  /** The proxy's V8 heap alive after a full GC, before and after the traffic (medians, MB). */
  proxy_heap_mb: { idle: number | null; end: number | null };
  /** What the traffic added to the proxy's USS: end - idle of each launch, median over rounds (MB). */
  proxy_uss_growth_mb: number | null;
  control_plane: { idle: MemoryFigures | null; end: MemoryFigures | null; max: MemoryFigures | null };
  /** The control plane's V8 heap alive after a full GC, before and after the traffic (medians, MB). */
  control_plane_heap_mb: { idle: number | null; end: number | null };
  /** destination_watches after the traffic (median): should be `used`. */
  watches: number;
  requests: number;
  errors: number;
  achieved_rps: number;
  fill_ms: number;
}

/** For each K measured with at least two mesh sizes: the proxy's end USS at the largest mesh minus at
 *  the smallest, and the largest difference between any two sizes. */
export interface MeshSizeSpread {
  used: number;
  smallest_mesh: number;
  largest_mesh: number;
  uss_delta_mb: number;
  uss_spread_mb: number;
  /** The same for what the traffic added to each launch's USS (end - idle, median over rounds): the
   *  difference without the launch-to-launch noise of the idle USS. */
  uss_growth_delta_mb: number | null;
  /** The same for the proxy's live heap after a full GC. */
  heap_delta_mb: number | null;
}

export interface MeshSizeReport {
  config: {
    services: number[];
    used: number[];
    endpoints_per_service: number;
    rate: number;
    hold_s: number;
    rounds: number;
    memory_sample_s: number;
    service_cidr: string;
    aggregate: string;
  };
  cells: MeshSizeCell[];
  spreads: MeshSizeSpread[];
  /** The proxy's USS before any traffic, lowest and highest over every cell and round: with nothing
   *  Service-specific held yet, how far two launches of the same proxy differ (the noise floor). */
  idle_uss_range_mb: [number, number] | null;
  /** The target's verdict; undefined when K = TARGET.used was not measured at two mesh sizes. met:
   *  the USS difference is within the limit; missed: it is not, and neither the growth from idle nor
   *  the live heap says it is noise; inconclusive: the USS difference is beyond the limit but it was
   *  there before any traffic (the growth and the live heap agree within the limit): launch noise, so
   *  more --rounds are needed to say. */
  target?: {
    used: number;
    limit_mb: number;
    uss_delta_mb: number;
    uss_growth_delta_mb: number | null;
    heap_delta_mb: number | null;
    verdict: 'met' | 'missed' | 'inconclusive';
    met: boolean;
  };
  runs: CellRun[];
}

const r2 = (v: number): number => Number(v.toFixed(2));

/** Each figure's median over the readings that exist; null when none. */
export function medianMemory(list: readonly (MemoryFigures | null | undefined)[]): MemoryFigures | null {
  const known = list.filter((m): m is MemoryFigures => m !== null && m !== undefined);
  if (known.length === 0) return null;
  const med = (k: keyof MemoryFigures): number => r2(median(known.map((m) => m[k])));
  return {
    rss_mb: med('rss_mb'),
    pss_mb: med('pss_mb'),
    uss_mb: med('uss_mb'),
    private_dirty_mb: med('private_dirty_mb'),
  };
}

/** The median of the numbers that exist, or null. */
function medianOf(list: readonly (number | null | undefined)[]): number | null {
  const known = list.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return known.length > 0 ? r2(median(known)) : null;
}

function maxMemory(list: readonly (MemoryFigures | null | undefined)[]): MemoryFigures | null {
  const known = list.filter((m): m is MemoryFigures => m !== null && m !== undefined);
  if (known.length === 0) return null;
  const max = (k: keyof MemoryFigures): number => Math.max(...known.map((m) => m[k]));
  return {
    rss_mb: max('rss_mb'),
    pss_mb: max('pss_mb'),
    uss_mb: max('uss_mb'),
    private_dirty_mb: max('private_dirty_mb'),
  };
}

/** The target's verdict from the spread at TARGET.used Services used. */
export function verdictOf(t: MeshSizeSpread): NonNullable<MeshSizeReport['target']> {
  const within = (v: number | null): boolean => v !== null && Math.abs(v) <= TARGET.limitMb;
  const verdict = within(t.uss_delta_mb)
    ? 'met'
    : within(t.uss_growth_delta_mb) && within(t.heap_delta_mb)
      ? 'inconclusive'
      : 'missed';
  return {
    used: t.used,
    limit_mb: TARGET.limitMb,
    uss_delta_mb: t.uss_delta_mb,
    uss_growth_delta_mb: t.uss_growth_delta_mb,
    heap_delta_mb: t.heap_delta_mb,
    verdict,
    met: verdict === 'met',
  };
}

/** The report from the cells' runs (pure). */
export function buildMeshSizeReport(runs: readonly CellRun[], opts: Options): MeshSizeReport {
  const cells: MeshSizeCell[] = [];
  for (const services of opts.meshServices) {
    for (const used of opts.meshUsed) {
      const mine = runs.filter((r) => r.services === services && r.used === used);
      if (mine.length === 0) continue;
      cells.push({
        services,
        used,
        rounds: mine.length,
        proxy: {
          idle: medianMemory(mine.map((r) => r.idle.proxy)),
          end: medianMemory(mine.map((r) => r.proxy?.end)),
          max: maxMemory(mine.map((r) => r.proxy?.max)),
        },
        proxy_heap_mb: {
          idle: medianOf(mine.map((r) => r.idle.proxy_heap?.heap_used_mb)),
          end: medianOf(mine.map((r) => r.proxy_heap_end?.heap_used_mb)),
        },
        proxy_uss_growth_mb: medianOf(
          mine.map((r) =>
            r.proxy !== null && r.idle.proxy !== null ? r.proxy.end.uss_mb - r.idle.proxy.uss_mb : null,
          ),
        ),
        control_plane: {
          idle: medianMemory(mine.map((r) => r.idle.control_plane)),
          end: medianMemory(mine.map((r) => r.control_plane?.end)),
          max: maxMemory(mine.map((r) => r.control_plane?.max)),
        },
        control_plane_heap_mb: {
          idle: medianOf(mine.map((r) => r.idle.control_plane_heap?.heap_used_mb)),
          end: medianOf(mine.map((r) => r.control_plane_heap_end?.heap_used_mb)),
        },
        watches: median(mine.map((r) => r.watches)),
        requests: mine.reduce((a, r) => a + r.requests, 0),
        errors: mine.reduce((a, r) => a + r.errors, 0),
        achieved_rps: r2(median(mine.map((r) => r.achieved_rps))),
        fill_ms: median(mine.map((r) => r.fill_ms)),
      });
    }
  }
  const spreads: MeshSizeSpread[] = [];
  for (const used of opts.meshUsed) {
    const row = cells.filter((c) => c.used === used && c.proxy.end !== null).sort((a, b) => a.services - b.services);
    const first = row[0];
    const last = row[row.length - 1];
    if (row.length < 2 || first?.proxy.end == null || last?.proxy.end == null) continue;
    const uss = row.map((c) => c.proxy.end?.uss_mb ?? 0);
    const heapFirst = first.proxy_heap_mb.end;
    const heapLast = last.proxy_heap_mb.end;
    const growthFirst = first.proxy_uss_growth_mb;
    const growthLast = last.proxy_uss_growth_mb;
    spreads.push({
      used,
      smallest_mesh: first.services,
      largest_mesh: last.services,
      uss_delta_mb: r2(last.proxy.end.uss_mb - first.proxy.end.uss_mb),
      uss_spread_mb: r2(Math.max(...uss) - Math.min(...uss)),
      uss_growth_delta_mb: growthFirst !== null && growthLast !== null ? r2(growthLast - growthFirst) : null,
      heap_delta_mb: heapFirst !== null && heapLast !== null ? r2(heapLast - heapFirst) : null,
    });
  }
  const idleUss = runs.map((r) => r.idle.proxy?.uss_mb).filter((v): v is number => v !== undefined);
  const t = spreads.find((s) => s.used === TARGET.used);
  return {
    config: {
      services: opts.meshServices,
      used: opts.meshUsed,
      endpoints_per_service: opts.meshEndpoints,
      rate: opts.meshRate,
      hold_s: opts.meshHoldS,
      rounds: opts.rounds,
      memory_sample_s: opts.memorySampleS,
      service_cidr: SERVICE_CIDR,
      aggregate: 'idle and end: median over rounds; max: the largest sample of any round',
    },
    cells,
    spreads,
    idle_uss_range_mb: idleUss.length > 0 ? [Math.min(...idleUss), Math.max(...idleUss)] : null,
    ...(t !== undefined ? { target: verdictOf(t) } : {}),
    runs: [...runs],
  };
}

const f1 = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v.toFixed(1));

export function formatMeshSize(r: MeshSizeReport | undefined): string[] {
  if (r === undefined || r.cells.length === 0) return [];
  const c = r.config;
  const rows = r.cells.map((x) => [
    String(x.services),
    String(x.used),
    f1(x.proxy.idle?.uss_mb),
    f1(x.proxy.end?.uss_mb),
    f1(x.proxy.max?.uss_mb),
    f1(x.proxy.end?.pss_mb),
    f1(x.proxy.end?.rss_mb),
    f1(x.proxy_heap_mb.idle),
    f1(x.proxy_heap_mb.end),
    f1(x.control_plane.idle?.uss_mb),
    f1(x.control_plane.end?.uss_mb),
    f1(x.control_plane.end?.pss_mb),
    f1(x.control_plane.end?.rss_mb),
    f1(x.control_plane_heap_mb.end),
    String(x.watches),
    String(x.errors),
  ]);
  const signed = (v: number | null): string =>
    v === null ? '?' : Math.abs(v) < 0.05 ? '0.0' : `${v > 0 ? '+' : ''}${v.toFixed(1)}`;
  const spread = r.spreads.map(
    (s) =>
      `  ${s.used} used: proxy at ${s.largest_mesh} Services - at ${s.smallest_mesh}: USS ${signed(s.uss_delta_mb)} MB ` +
      `(spread over all sizes ${s.uss_spread_mb.toFixed(1)} MB), USS growth from idle ${signed(s.uss_growth_delta_mb)} MB, live heap ${signed(s.heap_delta_mb)} MB`,
  );
  const noise =
    r.idle_uss_range_mb === null
      ? []
      : [
          `  noise floor: the proxy's USS before any traffic ranged ${r.idle_uss_range_mb[0].toFixed(1)} to ${r.idle_uss_range_mb[1].toFixed(1)} MB over every launch`,
        ];
  const verdict =
    r.target === undefined
      ? `  target (${TARGET.used} used, within ${TARGET.limitMb} MB whatever the mesh size): not measured (needs ${TARGET.used} used at two mesh sizes)`
      : `  target (${r.target.used} used, USS within ${r.target.limit_mb} MB whatever the mesh size): ` +
        (r.target.verdict === 'met'
          ? `met (${signed(r.target.uss_delta_mb)} MB)`
          : r.target.verdict === 'missed'
            ? `MISSED (${signed(r.target.uss_delta_mb)} MB; growth from idle ${signed(r.target.uss_growth_delta_mb)} MB, live heap ${signed(r.target.heap_delta_mb)} MB)`
            : `inconclusive: USS ${signed(r.target.uss_delta_mb)} MB, but the growth from idle (${signed(r.target.uss_growth_delta_mb)} MB) and the live heap ` +
              `(${signed(r.target.heap_delta_mb)} MB) agree within the limit: the difference was there before any traffic (launch noise); run more --rounds`);
  return [
    '',
    `mesh-size: memory (MB) of one proxy and of the control plane; the mesh knows N Services (${c.endpoints_per_service} endpoints each), ` +
      `the proxy talks to K of them (${c.rate} req/s spread over the K for ${c.hold_s} s); idle: before any traffic, end: 2 s after it, ` +
      `max: sampled every ${c.memory_sample_s} s during it; heap: the V8 heap alive after a full GC; CP: the control plane; ${c.aggregate}:`,
    ...columns(
      [
        'Services',
        'used',
        'proxy USS idle',
        'USS end',
        'USS max',
        'PSS end',
        'RSS end',
        'heap idle',
        'heap end',
        'CP USS idle',
        'CP USS end',
        'CP PSS end',
        'CP RSS end',
        'CP heap end',
        'watches',
        'errors',
      ],
      rows,
      0,
    ),
    ...spread,
    ...noise,
    verdict,
  ];
}

// ---- the namespace ----

/** Why this machine cannot run the scenario, or undefined. */
export function meshSizeUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'it needs root (a network namespace and an iptables rule inside it)';
  const missing = ['ip', 'iptables'].filter((t) => findExecutable(t) === undefined);
  if (missing.length > 0) return `missing ${missing.join(', ')} (Debian: iproute2 iptables)`;
  if (!existsSync(ADDON)) return `the SO_ORIGINAL_DST addon is not built (${ADDON}); run npm ci`;
  return undefined;
}

function ipCmd(args: readonly string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Kills what still runs in the namespace (only our processes can be in it) and deletes it. */
function removeNamespace(ns: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
  for (const pid of pids
    .split('\n')
    .map(Number)
    .filter((p) => Number.isInteger(p) && p > 0))
    killPid(pid, 'SIGKILL');
  spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

/** Runs every cell in a fresh namespace; progress lines go to `log`. */
export async function runMeshSizeScenario(opts: Options, log: (line: string) => void): Promise<MeshSizeReport> {
  const why = meshSizeUnavailable();
  if (why !== undefined) throw new BenchError(`mesh-size: ${why}`);
  assertOutriggerBuilt();
  const ns = `outr-bench-${process.pid}`;
  removeNamespace(ns); // one left by an earlier run with the same pid
  const unregister = addCleanup(() => removeNamespace(ns));
  try {
    ipCmd(['netns', 'add', ns]);
    ipCmd(['-n', ns, 'link', 'set', 'lo', 'up']);
    // The Services' range is local in the namespace: a connection to a clusterIP is routed to lo, and
    // REDIRECTed to the proxy in OUTPUT before anything answers.
    ipCmd(['-n', ns, 'route', 'add', 'local', SERVICE_CIDR, 'dev', 'lo']);
    log(`[mesh-size] network namespace ${ns}: ${SERVICE_CIDR} routed to lo`);
    const cfg: CellsConfig = {
      services: opts.meshServices,
      used: opts.meshUsed,
      endpoints: opts.meshEndpoints,
      rate: opts.meshRate,
      holdS: opts.meshHoldS,
      rounds: opts.rounds,
      memorySampleS: opts.memorySampleS,
    };
    const proc = spawnManaged('mesh-size cells', 'ip', [
      'netns',
      'exec',
      ns,
      process.execPath,
      CELLS_SCRIPT,
      JSON.stringify(cfg),
    ]);
    let stdout = '';
    let partial = '';
    proc.child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    proc.child.stderr?.on('data', (c: Buffer) => {
      partial += c.toString('utf8');
      for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
        log(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    });
    const how = await proc.exited;
    if (how !== 'code 0') throw new BenchError(`mesh-size: the cells runner exited (${how}):\n${proc.tail()}`);
    const result = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as CellsResult;
    if (!Array.isArray(result.runs))
      throw new BenchError(`mesh-size: no result from the cells runner:\n${proc.tail()}`);
    await stopManaged(proc);
    return buildMeshSizeReport(result.runs, opts);
  } finally {
    removeNamespace(ns);
    unregister();
  }
}
