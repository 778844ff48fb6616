// `outrigger lab`'s runner: the fixed workload (src/lab/workload.ts) on meshes of the lab's own, first
// without any data plane (the baseline), then with sidecars, then per-host, at each pods-per-node step,
// and the phases run on the first step's mesh of each mode: attribution, noisy neighbour, blast radius,
// upgrade and key exposure. It fills a LabReport with what it measured and the method of each figure.
import { spawn } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { internalError } from '../core/errors.js';
import { adminGet, adminToken } from '../daemon/admin-get.js';
import { dataPlaneProcesses } from '../daemon/dataplane.js';
import { PROXY_CONTAINER } from '../manifests/contract.js';
import { parsePrometheusText } from '../observe/prom-text.js';
import { nodeCgroupRel } from '../runtime/dataplane/index.js';
import { RuntimeCodes, RuntimeError } from '../runtime/errors.js';
import type { MeshStatus, PodView } from '../runtime/mesh.js';
import { cgroupRoots, podCgroupRel, type CgroupRoots } from '../runtime/supervisor/index.js';
import { LabCodes, LabError } from './errors.js';
import { labFindings } from './findings.js';
import { LabMesh, type LabNet } from './lab-mesh.js';
import { cgroupPids, cgroupUsage, dataPlanePids, Load, processMemory, quantile, type LoadResult } from './measure.js';
import type { Progress } from './progress.js';
import type { Figure, LabMode, LabReport, ModeResult, OverheadStep } from './types.js';
import { LOAD_PY, SERVER_PY, SINK, labManifest, labPods, ringTarget, type LabPod } from './workload.js';

export interface LabOptions {
  readonly quick: boolean;
  readonly nodes: number;
  readonly podsPerNode: readonly number[];
  /** Seconds each measured load runs. */
  readonly durationS: number;
  /** Requests per second of the overhead phase, over all pods together. */
  readonly rateRps: number;
  readonly workDir: string;
  readonly net: LabNet;
  readonly version: string;
  readonly progress: Progress;
  /** Aborted on Ctrl-C: the runner stops at the next step (the caller takes the mesh down). */
  readonly signal: AbortSignal;
  /** The mesh being run, for the caller's teardown. */
  readonly onMesh?: (mesh: LabMesh | undefined) => void;
}

const MB = 1024 * 1024;
/** Rate of the quiet pod in the noisy-neighbour phase, and of each pod under the blast radius and the
 *  upgrade (requests per second). */
const QUIET_RPS = 20;
const PHASE_RPS = 20;
/** Connections of the flooding pod. */
const FLOOD_CONNS = 4;

export class LabStopped extends Error {
  constructor() {
    super('the lab was interrupted');
  }
}

const fig = (value: number | null, unit: string, method: string): Figure => ({
  value: value !== null && Number.isFinite(value) ? Math.round(value * 1000) / 1000 : null,
  unit,
  method,
});

export async function runLab(o: LabOptions): Promise<LabReport> {
  const started = new Date().toISOString();
  const roots = await cgroupRoots();
  if ('problem' in roots) throw new RuntimeError(RuntimeCodes.CGROUP, `cgroups: ${roots.problem}`);
  const programs = join(o.workDir, 'programs');
  const results = join(o.workDir, 'results');
  await mkdir(programs, { recursive: true });
  await mkdir(results, { recursive: true });
  // The pods' apps run as their own users: the programs must be readable by them.
  await chmod(o.workDir, 0o711);
  await chmod(programs, 0o755);
  await writeFile(join(programs, 'server.py'), SERVER_PY, { mode: 0o644 });
  await writeFile(join(programs, 'load.py'), LOAD_PY, { mode: 0o644 });
  const ctx = new Ctx(o, roots, programs, results);

  const baselines = new Map<number, { p50: number | null; p99: number | null; method: string }>();
  const bar = o.progress.phase('baseline (no data plane)', o.podsPerNode.length);
  for (const step of o.podsPerNode) {
    const m = await ctx.mesh(step, 'sidecar', false);
    try {
      const r = await ctx.overheadLoad(m, step, 'baseline');
      baselines.set(step, { p50: r.p50, p99: r.p99, method: r.latencyMethod });
    } finally {
      await ctx.down(m);
    }
    bar.tick();
  }
  bar.done();

  const modes = {} as Record<LabMode, ModeResult>;
  for (const mode of ['sidecar', 'per-host'] as const) modes[mode] = await ctx.runMode(mode, baselines);
  const partial: Omit<LabReport, 'findings'> = {
    version: o.version,
    started_at: started,
    finished_at: new Date().toISOString(),
    quick: o.quick,
    machine: machine(roots),
    workload: {
      nodes: o.nodes,
      pods_per_node_steps: o.podsPerNode,
      rate_rps: o.rateRps,
      duration_s: o.durationS,
      description:
        `${o.nodes} simulated node${o.nodes === 1 ? '' : 's'}; at each step every node runs that many pods, ` +
        `each a small Python HTTP/1.1 server, plus one unmeshed sink pod. In the overhead phase every pod calls ` +
        `${o.nodes > 1 ? 'the pod at the same place on the next node' : 'the next pod'} over one keep-alive connection at a ` +
        `fixed rate (${o.rateRps} requests/s over all pods), from a Python load generator run in the pod's network ` +
        `namespace (its traffic is intercepted like the app's). The other phases run on the first step's mesh.`,
    },
    modes,
  };
  return { ...partial, findings: labFindings(partial) };
}

function machine(roots: CgroupRoots): LabReport['machine'] {
  return {
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    memory_gb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    kernel: os.release(),
    node: process.version,
    cgroup: roots.version === 2 ? 'v2' : 'v1',
  };
}

interface OverheadLoad {
  readonly p50: number | null;
  readonly p99: number | null;
  readonly latencyMethod: string;
  readonly requests: number;
  readonly sent: number;
  readonly failed: number;
  readonly podCpuNanos: number;
  readonly nodeCpuNanos: number;
}

/** The state of one run, shared by the phases. */
class Ctx {
  private seq = 0;

  constructor(
    private readonly o: LabOptions,
    private readonly roots: CgroupRoots,
    private readonly programs: string,
    private readonly results: string,
  ) {}

  private get stateDir(): string {
    return join(this.o.workDir, 'state');
  }

  private check(): void {
    if (this.o.signal.aborted) throw new LabStopped();
  }

  async mesh(step: number, mode: LabMode, meshed: boolean): Promise<LabMesh> {
    this.check();
    const file = join(this.o.workDir, `lab-${mode}-${step}${meshed ? '' : '-baseline'}.yaml`);
    await writeFile(file, labManifest(labPods(this.o.nodes, step), this.programs, meshed));
    const m = new LabMesh(this.o.net, this.stateDir);
    this.o.onMesh?.(m);
    await m.up(file, mode, this.o.nodes);
    this.check();
    return m;
  }

  async down(m: LabMesh): Promise<void> {
    // Interrupted: the caller's Ctrl-C handler is taking this mesh down already.
    if (this.o.signal.aborted) return;
    const problems = await m.down();
    this.o.onMesh?.(undefined);
    if (problems.length > 0) throw new LabError(LabCodes.MESH, `taking the lab's mesh down: ${problems.join('; ')}`);
  }

  private out(): string {
    return join(this.results, `load-${++this.seq}.json`);
  }

  private stopFile(): string {
    return join(this.results, `stop-${++this.seq}`);
  }

  /** The data plane's cgroups: each meshed pod's proxy container group (sidecar) and each node's group
   *  (per-host); both lists are read in both modes, so an empty one is measured, not assumed. */
  private dataPlaneGroups(status: MeshStatus): { pods: string[]; nodes: string[] } {
    const meshed = status.pods.filter((p) => p.meshed && p.netns !== undefined);
    return {
      pods: meshed.map((p) => `${podCgroupRel(p.netns as string)}/${PROXY_CONTAINER}`),
      nodes: (status.dataPlane?.nodes ?? []).map((n) => nodeCgroupRel(this.o.net.bridge, n.node)),
    };
  }

  private pod(status: MeshStatus, name: string): PodView {
    const p = status.pods.find((x) => x.name === name);
    if (p?.netns === undefined) throw internalError(`pod ${name} is not in the lab's mesh`);
    return p;
  }

  /** The fixed-rate ring load of the overhead phase, with the data plane's CPU over it. */
  async overheadLoad(m: LabMesh, step: number, what: string): Promise<OverheadLoad> {
    const status = await m.status();
    const pods = labPods(this.o.nodes, step);
    const groups = this.dataPlaneGroups(status);
    const perPod = this.o.rateRps / pods.length;
    const cpu0 = [await cgroupUsage(this.roots, groups.pods), await cgroupUsage(this.roots, groups.nodes)];
    const loads = pods.map(
      (p) =>
        new Load(
          p.name,
          this.pod(status, p.name).netns as string,
          join(this.programs, 'load.py'),
          this.pod(status, ringTarget(pods, p, this.o.nodes).name).ip,
          { rate: perPod, seconds: this.o.durationS, out: this.out() },
        ),
    );
    const rs = await Promise.all(loads.map((l) => l.result()));
    const cpu1 = [await cgroupUsage(this.roots, groups.pods), await cgroupUsage(this.roots, groups.nodes)];
    this.check();
    const lat = rs.flatMap((r) => r.lat).sort((a, b) => a - b);
    return {
      p50: quantile(lat, 0.5),
      p99: quantile(lat, 0.99),
      latencyMethod:
        `${what}: ${lat.length} requests from ${pods.length} pods at ${round(perPod)}/s each for ${this.o.durationS} s ` +
        `(after a 1 s warm-up), each timed from its scheduled start in the calling pod's load generator; nearest-rank percentile`,
      requests: rs.reduce((a, r) => a + r.ok + r.fail, 0),
      sent: rs.reduce((a, r) => a + r.sent, 0),
      failed: rs.reduce((a, r) => a + r.fail, 0),
      podCpuNanos: (cpu1[0]?.cpuNanos ?? 0) - (cpu0[0]?.cpuNanos ?? 0),
      nodeCpuNanos: (cpu1[1]?.cpuNanos ?? 0) - (cpu0[1]?.cpuNanos ?? 0),
    };
  }

  async runMode(
    mode: LabMode,
    baselines: Map<number, { p50: number | null; p99: number | null; method: string }>,
  ): Promise<ModeResult> {
    const overhead: OverheadStep[] = [];
    let phases: Omit<ModeResult, 'mode' | 'overhead'> | undefined;
    // One phase per step, and the step-0 phases each a phase of their own after it: phases never
    // nest (a log shows each one's start and end in order).
    for (const [i, step] of this.o.podsPerNode.entries()) {
      const bar = this.o.progress.phase(`${mode}: overhead at ${step} pods per node`, 1);
      const m = await this.mesh(step, mode, true);
      try {
        const r = await this.overheadLoad(m, step, mode);
        const status = await m.status();
        const mem = await this.memory(status);
        const groups = this.dataPlaneGroups(status);
        const memPods = await cgroupUsage(this.roots, groups.pods);
        const memNodes = await cgroupUsage(this.roots, groups.nodes);
        const base = baselines.get(step);
        const npods = step * this.o.nodes;
        const cpuNs = r.podCpuNanos + r.nodeCpuNanos;
        const usMethod = `USS (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) of every process in the data plane's cgroups (${mode === 'sidecar' ? "each pod's proxy container" : "each node's"}), after the load`;
        overhead.push({
          pods_per_node: step,
          p50_ms: fig(r.p50, 'ms', r.latencyMethod),
          p99_ms: fig(r.p99, 'ms', r.latencyMethod),
          baseline_p50_ms: fig(base?.p50 ?? null, 'ms', base?.method ?? 'no baseline'),
          baseline_p99_ms: fig(base?.p99 ?? null, 'ms', base?.method ?? 'no baseline'),
          added_p50_ms: fig(
            diff(r.p50, base?.p50),
            'ms',
            'p50 with the data plane less p50 of the baseline (the same pods, unmeshed)',
          ),
          added_p99_ms: fig(
            diff(r.p99, base?.p99),
            'ms',
            'p99 with the data plane less p99 of the baseline (the same pods, unmeshed)',
          ),
          cpu_ms_per_request: fig(
            r.sent > 0 ? cpuNs / 1e6 / r.sent : null,
            'ms',
            `user+system CPU of the data plane's cgroups (${this.roots.version === 2 ? 'cpu.stat usage_usec' : 'cpuacct.usage'}) over the load, divided by the ${r.sent} requests sent (warm-up included); each request crosses the caller's and the server's data plane`,
          ),
          data_plane_private_mb_total: fig(mem.uss / MB, 'MB', usMethod),
          data_plane_private_mb_per_pod: fig(
            mem.uss / MB / npods,
            'MB',
            `the total divided by the ${npods} meshed pods`,
          ),
          data_plane_rss_mb_total: fig(
            mem.rss / MB,
            'MB',
            usMethod.replace('USS (Private_Clean + Private_Dirty', 'RSS (Rss'),
          ),
          data_plane_processes: mem.processes,
          requests: r.requests,
          failed_requests: r.failed,
        });
        bar.tick();
        bar.done();
        if (i === 0) {
          const total = cpuNs;
          const memTotal = memPods.memoryBytes + memNodes.memoryBytes;
          phases = {
            attributed_cpu_share: fig(
              total > 0 ? r.podCpuNanos / total : null,
              'share',
              `CPU of the data plane charged to the calling and called pods' own cgroups (their proxy containers' groups: ${round(r.podCpuNanos / 1e6)} ms) over all of the data plane's CPU (those and the node groups: ${round(total / 1e6)} ms), during the overhead load at ${step} pods per node`,
            ),
            attributed_memory_share: fig(
              memTotal > 0 ? memPods.memoryBytes / memTotal : null,
              'share',
              `working-set memory (usage less inactive file) of the data plane in the pods' cgroups (${round(memPods.memoryBytes / MB)} MB) over that of all its cgroups, pods' and nodes' (${round(memTotal / MB)} MB), after the overhead load`,
            ),
            ...(await this.phases(m, step, mode)),
          };
        }
      } finally {
        await this.down(m);
      }
    }
    if (phases === undefined) throw internalError('no step ran');
    return { mode, overhead, ...phases };
  }

  /** USS and RSS of every process in the data plane's cgroups, and how many groups had one. */
  private async memory(status: MeshStatus): Promise<{ uss: number; rss: number; processes: number }> {
    const groups = this.dataPlaneGroups(status);
    let uss = 0;
    let rss = 0;
    let processes = 0;
    for (const rel of [...groups.pods, ...groups.nodes]) {
      const pids = await cgroupPids(this.roots, rel);
      if (pids.length > 0) processes++;
      for (const pid of pids) {
        const m = await processMemory(pid);
        uss += m.uss;
        rss += m.rss;
      }
    }
    return { uss, rss, processes };
  }

  private async phases(
    m: LabMesh,
    step: number,
    mode: LabMode,
  ): Promise<Omit<ModeResult, 'mode' | 'overhead' | 'attributed_cpu_share' | 'attributed_memory_share'>> {
    const one = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
      const bar = this.o.progress.phase(`${mode}: ${name}`, 1);
      const r = await run();
      bar.tick();
      bar.done();
      return r;
    };
    const noisy = await one('noisy neighbour', () => this.noisyNeighbour(m, step));
    const blast = await one('blast radius', () => this.blastRadius(m, step, mode));
    const upgrade = await one('upgrade', () => this.upgrade(m, step, mode));
    const keys = await one('key exposure', () => this.keys(m, step, mode));
    return { ...noisy, ...blast, ...upgrade, ...keys };
  }

  private async noisyNeighbour(
    m: LabMesh,
    step: number,
  ): Promise<Pick<ModeResult, 'quiet_pod_p99_ms_before' | 'quiet_pod_p99_ms_during_flood'>> {
    if (step < 2) {
      const why = 'not measured: the first step has 1 pod per node, and a quiet pod needs a neighbour';
      return { quiet_pod_p99_ms_before: fig(null, 'ms', why), quiet_pod_p99_ms_during_flood: fig(null, 'ms', why) };
    }
    this.check();
    const status = await m.status();
    const pods = labPods(this.o.nodes, step);
    const flooder = pods[0] as LabPod;
    const quiet = pods[1] as LabPod;
    const peer = ringTarget(pods, flooder, this.o.nodes);
    const sink = this.pod(status, SINK).ip;
    const quietLoad = async () => {
      const l = new Load(
        quiet.name,
        this.pod(status, quiet.name).netns as string,
        join(this.programs, 'load.py'),
        sink,
        {
          rate: QUIET_RPS,
          seconds: this.o.durationS,
          out: this.out(),
        },
      );
      return l.result();
    };
    const before = await quietLoad();
    const stop = this.stopFile();
    const flood = new Load(
      flooder.name,
      this.pod(status, flooder.name).netns as string,
      join(this.programs, 'load.py'),
      this.pod(status, peer.name).ip,
      { rate: 0, seconds: 0, out: this.out(), stopFile: stop, conns: FLOOD_CONNS },
    );
    let during: LoadResult;
    try {
      await sleep(1000);
      during = await quietLoad();
    } finally {
      await writeFile(stop, '');
    }
    const flooded = await flood.result();
    this.check();
    const method = (r: LoadResult, what: string) =>
      `p99 of ${r.lat.length} requests of ${quiet.name} to the unmeshed sink at ${QUIET_RPS}/s for ${this.o.durationS} s, ${what}; ${quiet.name} is on ${quiet.node} with ${flooder.name}`;
    return {
      quiet_pod_p99_ms_before: fig(quantile(before.lat, 0.99), 'ms', method(before, 'alone')),
      quiet_pod_p99_ms_during_flood: fig(
        quantile(during.lat, 0.99),
        'ms',
        method(
          during,
          `while ${flooder.name} flooded ${peer.name} with ${FLOOD_CONNS} connections as fast as answers came (${flooded.ok} answered, ${flooded.fail} failed)`,
        ),
      ),
    };
  }

  /** Load from every meshed pod to the sink until `action` has run and the data plane is whole again;
   *  the results per pod. */
  private async underLoad(m: LabMesh, step: number, action: (status: MeshStatus) => Promise<void>) {
    const status = await m.status();
    const pods = labPods(this.o.nodes, step);
    const stop = this.stopFile();
    const sink = this.pod(status, SINK).ip;
    const loads = pods.map(
      (p) =>
        new Load(p.name, this.pod(status, p.name).netns as string, join(this.programs, 'load.py'), sink, {
          rate: PHASE_RPS,
          seconds: 0,
          out: this.out(),
          stopFile: stop,
        }),
    );
    try {
      // Every load past its warm-up (starting them can take seconds on a busy machine), then a second
      // of steady load before the action, so that its failures are all counted.
      await Promise.all(loads.map((l) => l.measuring())).catch((err: unknown) => {
        this.check(); // interrupted: say so, not that a load ended
        throw err;
      });
      await sleep(1000);
      this.check();
      await action(status);
      await sleep(2000);
    } finally {
      await writeFile(stop, '');
    }
    const rs = await Promise.all(loads.map((l) => l.result()));
    this.check();
    const times = rs.flatMap((r) => r.fail_t);
    return {
      pods: pods.map((p, i) => ({ pod: p, r: rs[i] as LoadResult })),
      failed: rs.reduce((a, r) => a + r.fail, 0),
      requests: rs.reduce((a, r) => a + r.ok + r.fail, 0),
      window: times.length > 0 ? Math.max(...times) - Math.min(...times) : 0,
    };
  }

  /** The pid of the data-plane process serving `pod` now (its sidecar, or its node's proxy). */
  private async servingPid(m: LabMesh, mode: LabMode, pod: LabPod): Promise<number | undefined> {
    const status = await m.status();
    if (mode === 'per-host') return status.dataPlane?.nodes.find((n) => n.node === pod.node)?.pid;
    const proxy = this.pod(status, pod.name).containers.find((c) => c.name === PROXY_CONTAINER);
    return proxy?.state.state === 'running' ? proxy.state.pid : undefined;
  }

  /** Waits until `pod` is served by a data-plane process other than `old`, ready again. */
  private async replaced(m: LabMesh, mode: LabMode, pod: LabPod, old: number): Promise<void> {
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      this.check();
      const pid = await this.servingPid(m, mode, pod);
      const status = await m.status();
      const served = status.pods.filter(
        (p) => p.meshed && (mode === 'sidecar' ? p.name === pod.name : p.node === pod.node),
      );
      if (pid !== undefined && pid !== old && served.every((p) => p.ready)) {
        if (mode === 'sidecar') return;
        const dp = (await dataPlaneProcesses(status, this.stateDir)).find((d) => d.node === pod.node);
        if (dp !== undefined && dp.pods.length === served.length) return;
      }
      await sleep(200);
    }
    throw new LabError(
      LabCodes.DATA_PLANE,
      `the data plane of ${pod.name} did not come back within 90 s after pid ${old} was replaced`,
    );
  }

  private async blastRadius(
    m: LabMesh,
    step: number,
    mode: LabMode,
  ): Promise<Pick<ModeResult, 'blast_radius_pods' | 'blast_radius_failed_requests' | 'blast_radius_window_ms'>> {
    this.check();
    const victim = labPods(this.o.nodes, step)[0] as LabPod;
    let killed: number[] = [];
    const r = await this.underLoad(m, step, async () => {
      const pid = await this.servingPid(m, mode, victim);
      if (pid === undefined) throw new LabError(LabCodes.DATA_PLANE, `no data-plane process serves ${victim.name}`);
      // The proxy itself (the Node process in the data plane's cgroup), as a crash would end it, not the
      // runtime's wrapper whose pid the status records (the runtime would then kill the rest of the
      // wrapper's process group: the proxy dies either way, but this is the failure being measured).
      const status = await m.status();
      const group =
        mode === 'sidecar'
          ? `${podCgroupRel(this.pod(status, victim.name).netns as string)}/${PROXY_CONTAINER}`
          : nodeCgroupRel(this.o.net.bridge, victim.node);
      const pids = await dataPlanePids(this.roots, group);
      if (pids.length === 0) throw new LabError(LabCodes.DATA_PLANE, `no data-plane process in the cgroup ${group}`);
      killed = pids;
      for (const p of pids) process.kill(p, 'SIGKILL');
      await this.replaced(m, mode, victim, pid);
    });
    const hit = r.pods.filter((p) => p.r.fail > 0);
    const what =
      mode === 'sidecar'
        ? `${victim.name}'s sidecar (pid ${killed.join(', ')})`
        : `the node proxy of ${victim.node} (pid ${killed.join(', ')})`;
    const load = `every one of the ${r.pods.length} meshed pods calling the unmeshed sink at ${PHASE_RPS}/s (so only the caller's data plane is on the path)`;
    return {
      blast_radius_pods: fig(
        hit.length,
        'pods',
        `kill -9 of ${what} under load from ${load}, until the runtime had started it again and 2 s more: pods with at least one failed request (${hit.map((p) => p.pod.name).join(', ') || 'none'})`,
      ),
      blast_radius_failed_requests: fig(
        r.failed,
        'requests',
        `failed requests over all pods in that run, out of ${r.requests}`,
      ),
      blast_radius_window_ms: fig(
        r.window,
        'ms',
        'from the first failed request to the last, over all pods (a request fails on an error, a status other than 200, or no answer within 2 s)',
      ),
    };
  }

  private async upgrade(
    m: LabMesh,
    step: number,
    mode: LabMode,
  ): Promise<Pick<ModeResult, 'upgrade_failed_requests' | 'upgrade_window_ms'>> {
    this.check();
    const onNode = labPods(this.o.nodes, step).filter((p) => p.nodeNumber === 1);
    const r = await this.underLoad(m, step, async () => {
      // Sidecar: pod by pod, each waiting for the last to be ready again; per-host: the node proxy.
      for (const p of mode === 'sidecar' ? onNode : onNode.slice(0, 1)) {
        const pid = await this.servingPid(m, mode, p);
        if (pid === undefined) throw new LabError(LabCodes.DATA_PLANE, `no data-plane process serves ${p.name}`);
        // A sidecar's recorded pid leads its container's process group (the runtime's init chain), and
        // the runtime stops a container by signalling that group: so does the lab.
        process.kill(mode === 'sidecar' ? -pid : pid, 'SIGTERM');
        await this.replaced(m, mode, p, pid);
      }
    });
    const what =
      mode === 'sidecar'
        ? `the sidecars of the ${onNode.length} pods of node-1, one after the other (SIGTERM: the proxy drains and exits, the runtime starts it again, the next one once the pod is ready)`
        : 'the node proxy of node-1 (SIGTERM: it drains and exits, the runtime starts it again and hands it every pod of the node)';
    return {
      upgrade_failed_requests: fig(
        r.failed,
        'requests',
        `replacing ${what}, under load from every meshed pod to the unmeshed sink at ${PHASE_RPS}/s each: failed requests out of ${r.requests}`,
      ),
      upgrade_window_ms: fig(r.window, 'ms', 'from the first failed request to the last (0: none failed)'),
    };
  }

  private async keys(
    m: LabMesh,
    step: number,
    mode: LabMode,
  ): Promise<Pick<ModeResult, 'identities_per_process' | 'confused_deputy'>> {
    this.check();
    const status = await m.status();
    const procs = await dataPlaneProcesses(status, this.stateDir);
    const broken = procs.filter((p) => p.error !== undefined);
    const most = procs.reduce((a, p) => Math.max(a, p.identities.length), 0);
    const identities = fig(
      broken.length > 0 ? null : most,
      'identities',
      broken.length > 0
        ? `could not ask ${broken.map((b) => `${b.name}: ${b.error ?? ''}`).join('; ')}`
        : `the most identities whose private keys one of the ${procs.length} data-plane processes holds, as each says itself (a node proxy's /dataplane, a sidecar's /identity)`,
    );
    if (step < 2)
      return {
        identities_per_process: identities,
        confused_deputy: { attempted: false, refused: false, detail: 'not attempted: it needs two pods on a node' },
      };
    const pods = labPods(this.o.nodes, step);
    const a = this.pod(status, (pods[0] as LabPod).name);
    const b = this.pod(status, (pods[1] as LabPod).name);
    const c = this.pod(status, ringTarget(pods, pods[0] as LabPod, this.o.nodes).name);
    const bId = procs.flatMap((p) => p.identities).find((id) => id.endsWith(`/sa/${b.name}`)) ?? `(${b.name})`;
    const token = await adminToken(this.stateDir);
    const metric = async (ip: string, name: string, labels: Record<string, string>) => {
      const r = await adminGet(ip, '/metrics', token, 5000);
      return parsePrometheusText(r.body, (n) => n === name)
        .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .reduce((x, s) => x + s.value, 0);
    };
    const refusedBefore = await metric(a.ip, 'tcp_refused_total', { direction: 'outbound', reason: 'source_not_pod' });
    const asBBefore = await metric(c.ip, 'response_total', { direction: 'inbound', client_id: bId });
    const script = [
      `ip addr add ${b.ip}/32 dev lo`,
      `curl -sS -m 5 -o /dev/null -w '%{http_code}' --interface ${b.ip} http://${c.ip}:8080/; rc=$?`,
      `ip addr del ${b.ip}/32 dev lo`,
      'exit $rc',
    ].join('; ');
    const r = await run('ip', ['netns', 'exec', a.netns as string, 'sh', '-c', script]);
    const refusedAfter = await metric(a.ip, 'tcp_refused_total', { direction: 'outbound', reason: 'source_not_pod' });
    const asBAfter = await metric(c.ip, 'response_total', { direction: 'inbound', client_id: bId });
    const gotB = asBAfter > asBBefore;
    const attempt = `from ${a.name}'s namespace with ${b.name}'s address (${b.ip}) added to lo, curl --interface ${b.ip} to ${c.name} (${c.ip}:8080)`;
    const outcome =
      r.code === 0
        ? `curl got an answer (HTTP ${r.stdout.trim()})`
        : `curl failed (exit ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''})`;
    const counter = `tcp_refused_total{direction="outbound",reason="source_not_pod"} at ${a.name}'s data plane went ${refusedBefore} → ${refusedAfter}`;
    const server = `${c.name} saw ${asBAfter - asBBefore} request(s) with ${b.name}'s identity`;
    const detail =
      mode === 'per-host'
        ? `${attempt}: ${outcome}; ${counter}; ${server}. The node proxy holds ${b.name}'s key too and must check the source of every connection to choose it`
        : `${attempt}: ${outcome}; ${server}; the sidecar holds only ${a.name}'s key, so what it sent went as ${a.name} at most (${counter})`;
    return {
      identities_per_process: identities,
      confused_deputy: {
        attempted: true,
        refused: !gotB && (mode === 'sidecar' || refusedAfter > refusedBefore),
        detail,
      },
    };
  }
}

function diff(a: number | null, b: number | null | undefined): number | null {
  return a === null || b === null || b === undefined ? null : a - b;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function run(cmd: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (c: string) => (stdout += c));
    p.stderr.on('data', (c: string) => (stderr += c));
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    p.on('error', (err) => resolve({ code: 1, stdout, stderr: err.message }));
  });
}
