// A pod's processes: for a meshed pod the proxy first (as its own uid, until its /ready answers), then
// the app containers in order; the pod's phase, readiness and restarts; and stopping all of it (apps
// first, then the proxy, then anything else left in the pod's namespace).
import { proxyStartSlots } from './start-slots.js';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chmod, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { parseCpu, parseMemory } from '../../manifests/quantity.js';
import { effectiveCapabilities } from '../../manifests/security.js';
import { PROXY_ADMIN_PORT, PROXY_CONTAINER, TRUST_BUNDLE_DIR, TRUST_BUNDLE_FILE } from '../../manifests/contract.js';
import { ANNOTATION, formatPortList, type PodPlan } from '../manifests/index.js';
import { DEFAULT_PROXY_INIT, netnsPids, runCommand } from '../net/index.js';
import type { BackoffOptions } from './backoff.js';
import { Container, type ContainerSpec, type ContainerStatus } from './container.js';
import { baseEnv, containerEnv, expandVars, type PodFacts } from './env.js';
import type { RunAs } from './launch.js';
import { Cgroup, podCgroupRel, POD_PIDS_MAX, type CgroupLimits, type CgroupRoots } from './cgroups.js';
import { containerInitPid, DEFAULT_WRITABLE, type Isolation, type VolumeBind } from './isolation.js';
import { resolveProbe, type ProbeRunner, type ResolvedProbe } from './probe.js';
import type { ProxyCommand } from './proxy-command.js';
import { isGone } from './proc.js';
import { podStateDir } from './record.js';
import { RuntimeCodes, RuntimeError } from '../errors.js';
import { internalError } from '../../core/errors.js';

/** The proxy's container name: its log is `<pod dir>/outrigger-proxy.log`. An app container may not
 *  use it. */
export { PROXY_CONTAINER };

/** The holder of a pod's shared PID namespace (`shareProcessNamespace: true`), Kubernetes' pause
 *  container: its log and process record are `<pod dir>/outrigger-pause.*`. Reserved like the proxy's. */
export const PID_HOLDER = 'outrigger-pause';

/** The holder's uid and gid, as the pause image's: nobody's, with no capability. */
const PID_HOLDER_UID = 65535;

/** How long a container that joins the pod's PID namespace waits for the holder to run (ms). */
const PID_HOLDER_WAIT_MS = 10_000;

export interface ProxyOptions {
  readonly command: ProxyCommand;
  /** Default uid and gid PROXY_UID (2102): must match the proxy-init rules' exempt uid. */
  readonly user?: RunAs;
  readonly inboundPort?: number;
  readonly outboundPort?: number;
  readonly adminPort?: number;
  /** How long start() waits for the proxy's /ready (ms, default 30 s). */
  readonly readyTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL (ms, default 10 s); the proxy drains for one second less. */
  readonly terminationGraceMs?: number;
  readonly logLevel?: string;
  /** More flags for `outrigger proxy` (identity settings, later). */
  readonly extraArgs?: readonly string[];
}

/** How a pod is joined to a proxy that runs outside it (src/runtime/dataplane). */
export interface PodDataPlane {
  /** Resolves once the proxy serves the pod and is ready for it. */
  attach(): Promise<void>;
  /** Resolves once the proxy no longer serves the pod (its connections drained, its key dropped). */
  detach(): Promise<void>;
}

export interface PodProcessesOptions {
  readonly pod: PodPlan;
  /** The pod's network (see runtime/net); `netns` undefined runs on the host (tests without root). */
  readonly net: { readonly netns?: string; readonly ip: string; readonly gateway: string };
  readonly stateDir: string;
  /** Required for a meshed pod, unless `dataPlane` serves it. */
  readonly proxy?: ProxyOptions;
  /** A meshed pod served by a proxy outside it (the per-host data plane's node proxy) instead of a
   *  proxy container: attached before the app containers start, detached after they stopped. */
  readonly dataPlane?: PodDataPlane;
  /** metadata.uid; default a random UUID. */
  readonly podUid?: string;
  readonly backoff?: BackoffOptions;
  /** Where PATH and the locale come from (default process.env). */
  readonly hostEnv?: NodeJS.ProcessEnv;
  /** The pod's node for the downward API (spec.nodeName): the per-host data plane's simulated node;
   *  default this machine's hostname. */
  readonly nodeName?: string;
  readonly probeRunner?: ProbeRunner;
  /** Where the pod's cgroup goes (cgroups.ts); without it the pod has none (tests without root). */
  readonly cgroups?: CgroupRoots;
  /** Directories of the host no container of the pod sees, besides the state directory and /etc/netns
   *  (which are always hidden). */
  readonly hide?: readonly string[];
}

/** The pod's CPU and memory, from its cgroup: `cpu` in cores over the last sample period. */
export interface PodUsage {
  readonly cpuCores: number;
  readonly memoryBytes: number;
  /** The pod's memory limit (the sum of its containers' when every one has one). */
  readonly memoryLimit?: number;
}

/** Where the app containers find their ServiceAccount token, as in Kubernetes. */
export const SERVICE_ACCOUNT_DIR = '/run/secrets/kubernetes.io/serviceaccount';

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

export interface PodStatus {
  readonly namespace: string;
  readonly name: string;
  readonly phase: PodPhase;
  readonly ready: boolean;
  /** Restarts of all its containers, the proxy's included. */
  readonly restarts: number;
  readonly meshed: boolean;
  readonly ip: string;
  readonly netns?: string;
  /** The proxy first (when meshed), then the app containers in order. */
  readonly containers: readonly ContainerStatus[];
  /** Why the pod failed to start, when it did. */
  readonly message?: string;
  /** From the pod's cgroup, once sampled. */
  readonly usage?: PodUsage;
}

export interface PodEvents {
  ready: [];
  unready: [];
  phase: [PodPhase];
  change: [];
}

/** The pod's phase from its app containers (the proxy, a sidecar, does not count), Kubernetes' way:
 *  Pending until every container has started once; Succeeded or Failed when all have ended for good
 *  (Failed if any did not exit 0); otherwise Running. */
export function podPhase(
  apps: readonly Pick<ContainerStatus, 'started' | 'finished' | 'lastTermination'>[],
  startFailed = false,
): PodPhase {
  if (startFailed) return 'Failed';
  if (apps.length > 0 && apps.every((c) => c.finished))
    return apps.every((c) => c.lastTermination?.reason === 'Completed') ? 'Succeeded' : 'Failed';
  if (apps.some((c) => !c.started)) return 'Pending';
  return 'Running';
}

export class PodStartError extends RuntimeError {
  constructor(message: string) {
    super(RuntimeCodes.POD_START, message);
    this.name = 'PodStartError';
  }
}

export class PodProcesses extends EventEmitter<PodEvents> {
  readonly meshed: boolean;
  readonly podDir: string;
  private readonly o: PodProcessesOptions;
  private readonly proxySpec: ContainerSpec | undefined;
  private readonly appSpecs: readonly ContainerSpec[];
  private proxy: Container | undefined;
  private readonly holderSpec: ContainerSpec | undefined;
  private holder: Container | undefined;
  private readonly apps: Container[] = [];
  private phaseNow: PodPhase = 'Pending';
  private readyNow = false;
  private failure: string | undefined;
  private started = false;
  /** Attached to its node proxy (per-host data plane): detached on stop. */
  private attached = false;
  private stopping: Promise<void> | undefined;
  private readonly cgroup: Cgroup | undefined;
  private usageNow: PodUsage | undefined;
  private sampler: NodeJS.Timeout | undefined;

  constructor(o: PodProcessesOptions) {
    super();
    this.o = o;
    this.meshed = o.pod.mesh.inject;
    this.podDir = podStateDir(o.stateDir, o.pod.namespace, o.pod.name);
    if (this.meshed && o.proxy === undefined && o.dataPlane === undefined) {
      throw new RuntimeError(RuntimeCodes.POD_SPEC, `pod ${this.label} is meshed but no proxy command was given`);
    }
    if (this.meshed && o.net.netns === undefined) {
      throw new RuntimeError(RuntimeCodes.POD_SPEC, `pod ${this.label} is meshed: it needs a network namespace`);
    }
    for (const c of o.pod.spec.containers) {
      for (const [name, what] of [
        [PROXY_CONTAINER, 'the proxy'],
        [PID_HOLDER, "the holder of the pod's PID namespace"],
      ]) {
        if (c.name === name) {
          const why = `pod ${this.label}: container name "${name}" is reserved for ${what}`;
          throw new RuntimeError(RuntimeCodes.POD_SPEC, why);
        }
      }
    }
    // Everything is resolved before anything runs, so a bad spec starts nothing.
    const isolate = o.net.netns !== undefined;
    const shared = isolate && o.pod.spec.shareProcessNamespace === true;
    this.appSpecs = appContainerSpecs(o, isolate ? this.podDir : undefined, shared);
    this.proxySpec =
      this.meshed && o.proxy !== undefined
        ? proxyContainerSpec(
            o.pod,
            o.proxy,
            isolate ? { podDir: this.podDir, hide: this.hidden(), sharedPid: shared } : undefined,
          )
        : undefined;
    this.holderSpec = shared ? pidHolderSpec(this.podDir, this.hidden(), o.hostEnv ?? process.env) : undefined;
    this.cgroup =
      o.cgroups !== undefined && o.net.netns !== undefined
        ? new Cgroup(o.cgroups, podCgroupRel(o.net.netns))
        : undefined;
  }

  /** What no container of the pod sees: the mesh's state (CA, tokens, other pods, the control socket)
   *  and the other pods' hosts files. */
  private hidden(): string[] {
    return [this.o.stateDir, '/etc/netns', ...(this.o.hide ?? [])];
  }

  /** The pod's limits: the sum of its containers' where every container has one (as the kubelet
   *  sizes a pod's cgroup), and a pids limit. */
  private podLimits(): CgroupLimits {
    const all = [...(this.proxySpec !== undefined ? [this.proxySpec] : []), ...this.appSpecs];
    const sum = (f: (l: CgroupLimits) => number | undefined) => {
      const vs = all.map((c) => (c.resources !== undefined ? f(c.resources) : undefined));
      return vs.every((v) => v !== undefined) ? vs.reduce((a, b) => a + b, 0) : undefined;
    };
    const memoryLimit = sum((l) => l.memoryLimit);
    const cpuLimit = sum((l) => l.cpuLimit);
    const requests = all.map((c) => c.resources?.cpuRequest ?? c.resources?.cpuLimit ?? 0).reduce((a, b) => a + b, 0);
    return {
      ...(memoryLimit !== undefined ? { memoryLimit } : {}),
      ...(cpuLimit !== undefined ? { cpuLimit } : {}),
      ...(requests > 0 ? { cpuRequest: requests } : {}),
    };
  }

  /** The pod's cgroup, its directories on the host (volumes, the containers' /run) and the app
   *  containers' ServiceAccount token mount point: before any container starts. */
  private async prepare(): Promise<void> {
    if (this.cgroup !== undefined) {
      await this.cgroup.create(this.podLimits(), POD_PIDS_MAX);
      this.sampleUsage();
    }
    if (this.o.net.netns === undefined) return;
    const run = join(this.podDir, 'run');
    await mkdir(run, { recursive: true, mode: 0o700 });
    await chmod(run, 0o700);
    if (this.o.pod.spec.automountServiceAccountToken !== false) {
      // The token itself is written by whoever issues it (the mesh); the namespace is known here.
      const sa = podDirs(this.podDir).serviceAccount;
      await mkdir(sa, { recursive: true, mode: 0o755 });
      await chmod(dirname(sa), 0o700);
      await writeFile(join(sa, 'namespace'), this.o.pod.namespace, { mode: 0o644 });
    }
    for (const v of this.o.pod.spec.volumes) {
      // Any uid of the pod may write to an emptyDir (0777, as in Kubernetes).
      const dir = join(this.podDir, 'volumes', v.name);
      await mkdir(dir, { recursive: true });
      await chmod(join(this.podDir, 'volumes'), 0o700);
      await chmod(dir, 0o777);
    }
    for (const spec of [...this.containerSpecs(), ...(this.holderSpec !== undefined ? [this.holderSpec] : [])]) {
      const iso = spec.isolation;
      if (iso === undefined) continue;
      await mkdir(iso.runDir, { recursive: true, mode: 0o755 });
      await chmod(iso.runDir, 0o755);
      for (const b of iso.binds) {
        if (b.target.startsWith(`${iso.runDir}/`)) await mkdir(b.target, { recursive: true, mode: 0o755 });
      }
    }
  }

  /** The proxy's spec (meshed pods), then the app containers'. */
  private containerSpecs(): ContainerSpec[] {
    return [...(this.proxySpec !== undefined ? [this.proxySpec] : []), ...this.appSpecs];
  }

  /** Starts the holder of the pod's shared PID namespace (before any container), or takes over the one
   *  an earlier runtime left (`adopt`). Returns whether it was taken over. */
  private async startHolder(adopt: boolean): Promise<boolean> {
    if (this.holderSpec === undefined) return false;
    const h = this.container(this.holderSpec, false);
    this.holder = h;
    if (adopt && (await h.adopt())) return true;
    await h.start();
    await this.holderPid();
    return false;
  }

  /**
   * The holder's pid 1 as the host sees it, for a container about to join its PID namespace: waits for
   * it to run (it may be restarting: when it ends, the kernel ends every process of the namespace, and
   * the containers start again in a new one). Rejects if it does not run within PID_HOLDER_WAIT_MS.
   */
  private async holderPid(): Promise<number> {
    const h = this.holder;
    const deadline = Date.now() + PID_HOLDER_WAIT_MS;
    let last = 'not started';
    while (h !== undefined && !h.status().finished) {
      const st = h.status().state;
      if (st.state === 'running') {
        const init = await containerInitPid(st.pid);
        // Its own namespace's pid 1 (NSpid ends in 1), not a process on its way there.
        if (init !== undefined && (await namespacePid(init)) === 1) return init;
        last = 'starting';
      } else last = st.state === 'waiting' ? st.reason : `terminated (${st.reason})`;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (h?.status().finished === true) last = 'stopped';
    throw new RuntimeError(
      RuntimeCodes.POD_START,
      `the holder of pod ${this.label}'s PID namespace (shareProcessNamespace) is not running: ${last}`,
    );
  }

  /** Reads the pod's CPU and memory every 2 s while it runs. */
  private sampleUsage(): void {
    const cg = this.cgroup;
    if (cg === undefined) return;
    let last: { at: number; cpu: number } | undefined;
    const limit = this.podLimits().memoryLimit;
    const tick = async () => {
      const u = await cg.usage();
      if (u === undefined) return;
      const at = Date.now();
      const cpuCores = last !== undefined && at > last.at ? (u.cpuNanos - last.cpu) / 1e6 / (at - last.at) : 0;
      last = { at, cpu: u.cpuNanos };
      this.usageNow = {
        cpuCores: Math.max(0, cpuCores),
        memoryBytes: u.memoryBytes,
        ...(limit !== undefined ? { memoryLimit: limit } : {}),
      };
    };
    void tick();
    this.sampler = setInterval(() => void tick(), 2000);
    this.sampler.unref();
  }

  /** The pod's cgroup directories (none without cgroups). */
  cgroupDirs(): string[] {
    return this.cgroup?.dirs() ?? [];
  }

  private get label(): string {
    return `${this.o.pod.namespace}/${this.o.pod.name}`;
  }

  /** Starts the proxy (meshed pods) and waits for it to be ready, then starts the app containers in
   *  order. Resolves once all are started (not necessarily ready: see whenReady). If the proxy does
   *  not become ready in time, stops everything and rejects with what its log says. */
  async start(): Promise<void> {
    if (this.started) throw internalError(`pod ${this.label}: already started`);
    this.started = true;
    try {
      await this.prepare();
      await this.startHolder(false);
      if (this.proxySpec !== undefined) {
        // The proxy's time to get ready counts from when it may start (start-slots.ts says why).
        const release = await proxyStartSlots.acquire();
        try {
          if (this.stopping !== undefined)
            throw new PodStartError(`pod ${this.label}: stopped before its proxy started`);
          const proxy = this.container(this.proxySpec);
          this.proxy = proxy;
          await proxy.start();
          await this.waitProxyReady(proxy, this.o.proxy?.readyTimeoutMs ?? 30_000);
        } finally {
          release();
        }
      } else if (this.meshed && this.o.dataPlane !== undefined) {
        this.attached = true;
        await this.o.dataPlane.attach();
      }
      for (const spec of this.appSpecs) {
        if (this.stopping !== undefined) return;
        const c = this.container(spec);
        this.apps.push(c);
        await c.start();
      }
    } catch (err) {
      this.failure = (err as Error).message;
      this.update();
      await this.stop().catch(() => undefined); // the start's failure is the news, not the cleanup's
      throw err;
    }
    this.update();
  }

  /**
   * Takes over a pod an earlier runtime started (see Container.adopt): each container whose process
   * still runs is adopted as it is, ready if it was (`wasReady`, by container name); any other is
   * started afresh, the proxy first as in start(). Rejects, having stopped the pod, like start().
   */
  async adopt(wasReady: Readonly<Record<string, boolean>> = {}): Promise<{ adopted: string[]; started: string[] }> {
    if (this.started) throw internalError(`pod ${this.label}: already started`);
    this.started = true;
    const adopted: string[] = [];
    const started: string[] = [];
    // A holder started afresh means a new PID namespace: whatever the old one held was ended by the kernel
    // with its pid 1, and a container's process left from it must not be taken over.
    let freshNamespace = false;
    const take = async (c: Container) => {
      if (freshNamespace) await c.dropLeftover();
      else if (await c.adopt({ wasReady: wasReady[c.spec.name] === true })) {
        adopted.push(c.spec.name);
        return;
      }
      await c.start();
      started.push(c.spec.name);
    };
    try {
      await this.prepare();
      if (this.holderSpec !== undefined) freshNamespace = !(await this.startHolder(true));
      if (this.proxySpec !== undefined) {
        const proxy = this.container(this.proxySpec);
        this.proxy = proxy;
        await take(proxy);
        await this.waitProxyReady(proxy, this.o.proxy?.readyTimeoutMs ?? 30_000);
      }
      for (const spec of this.appSpecs) {
        if (this.stopping !== undefined) break;
        const c = this.container(spec);
        this.apps.push(c);
        await take(c);
      }
    } catch (err) {
      this.failure = (err as Error).message;
      this.update();
      await this.stop().catch(() => undefined);
      throw err;
    }
    this.update();
    return { adopted, started };
  }

  /** A resume of the per-host data plane: the adopted pod joins this runtime's node proxy (which needs
   *  the control plane up: it asks for the pod's certificate and policy). */
  async attachAdopted(): Promise<void> {
    if (!this.meshed || this.o.dataPlane === undefined || this.attached) return;
    this.attached = true;
    await this.o.dataPlane.attach();
  }

  private container(spec: ContainerSpec, member = true): Container {
    const c = new Container(spec, {
      pod: { namespace: this.o.pod.namespace, name: this.o.pod.name },
      ...(this.o.net.netns !== undefined ? { netns: this.o.net.netns } : {}),
      podDir: this.podDir,
      ...(this.o.backoff !== undefined ? { backoff: this.o.backoff } : {}),
      ...(this.o.probeRunner !== undefined ? { probeRunner: this.o.probeRunner } : {}),
      ...(this.cgroup !== undefined
        ? { cgroup: new Cgroup(this.cgroup.roots, `${this.cgroup.rel}/${spec.name}`) }
        : {}),
      ...(spec.isolation?.pidNamespace === 'join' ? { pidHolder: () => this.holderPid() } : {}),
    });
    if (!member) return c; // the holder: not one of the pod's containers in its status
    c.on('change', () => this.update());
    c.on('exit', () => this.sidecarCheck());
    return c;
  }

  private async waitProxyReady(proxy: Container, timeoutMs: number): Promise<void> {
    if (proxy.ready) return;
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => done(false), timeoutMs);
      const onReady = () => done(true);
      // Stopped meanwhile (the pod is being stopped): no point waiting out the timeout.
      const onExit = () => {
        if (proxy.status().finished) done(false);
      };
      const done = (v: boolean) => {
        clearTimeout(timer);
        proxy.off('ready', onReady);
        proxy.off('exit', onExit);
        resolve(v);
      };
      proxy.on('ready', onReady);
      proxy.on('exit', onExit);
    });
    if (ok) return;
    if (this.stopping !== undefined) throw new PodStartError(`pod ${this.label}: stopped while its proxy was starting`);
    const s = proxy.status();
    const why =
      s.lastProbe?.message ??
      (s.lastTermination !== undefined
        ? `last exit: ${s.lastTermination.message ?? `code ${s.lastTermination.exitCode}`}`
        : 'no probe answered');
    const tail = await tailFile(proxy.logFile, 15);
    throw new PodStartError(
      `pod ${this.label}: the proxy was not ready within ${timeoutMs / 1000} s (${why}; restarts ${s.restarts})` +
        (tail !== '' ? `; the end of ${proxy.logFile}:\n${tail}` : ''),
    );
  }

  /** Like Kubernetes' sidecars: once every app container has ended for good, the proxy is stopped. */
  private sidecarCheck(): void {
    if (this.proxy === undefined || this.stopping !== undefined) return;
    if (this.apps.length === this.appSpecs.length && this.apps.every((c) => c.status().finished)) {
      void this.proxy.stop().catch(() => undefined);
    }
  }

  private update(): void {
    if (this.stopping !== undefined) return;
    const apps = this.apps.map((c) => c.status());
    // Containers not created yet (waiting for the proxy) count as not started.
    const pendingApps = this.appSpecs.length - apps.length;
    const phase = podPhase(
      [...apps, ...Array.from({ length: pendingApps }, () => ({ started: false, finished: false }))],
      this.failure !== undefined,
    );
    const all = [...(this.proxy !== undefined ? [this.proxy] : []), ...this.apps];
    const ready = phase === 'Running' && pendingApps === 0 && all.every((c) => c.ready);
    const phaseChanged = phase !== this.phaseNow;
    const readyChanged = ready !== this.readyNow;
    this.phaseNow = phase;
    this.readyNow = ready;
    if (phaseChanged) this.emit('phase', phase);
    if (readyChanged) this.emit(ready ? 'ready' : 'unready');
    this.emit('change');
  }

  get ready(): boolean {
    return this.readyNow;
  }

  get phase(): PodPhase {
    return this.phaseNow;
  }

  status(): PodStatus {
    const containers = [...(this.proxy !== undefined ? [this.proxy] : []), ...this.apps].map((c) => c.status());
    return {
      namespace: this.o.pod.namespace,
      name: this.o.pod.name,
      phase: this.phaseNow,
      ready: this.readyNow,
      restarts: containers.reduce((n, c) => n + c.restarts, 0),
      meshed: this.meshed,
      ip: this.o.net.ip,
      ...(this.o.net.netns !== undefined ? { netns: this.o.net.netns } : {}),
      containers,
      ...(this.failure !== undefined ? { message: this.failure } : {}),
      ...(this.usageNow !== undefined ? { usage: this.usageNow } : {}),
    };
  }

  /** Resolves when the pod is ready; rejects after `timeoutMs`, or when the pod can no longer become
   *  ready (Failed or Succeeded), with the containers' states in the message. */
  whenReady(timeoutMs: number): Promise<void> {
    if (this.readyNow) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          finish(new PodStartError(`pod ${this.label} was not ready within ${timeoutMs / 1000} s: ${this.describe()}`)),
        timeoutMs,
      );
      const onChange = () => {
        if (this.readyNow) finish();
        else if (this.phaseNow === 'Failed' || this.phaseNow === 'Succeeded')
          finish(
            new PodStartError(`pod ${this.label} is ${this.phaseNow} and will not become ready: ${this.describe()}`),
          );
      };
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.off('change', onChange);
        if (err !== undefined) reject(err);
        else resolve();
      };
      this.on('change', onChange);
      onChange();
    });
  }

  /** One line per container: its state, readiness, restarts and last probe or exit. */
  describe(): string {
    const s = this.status();
    const parts = s.containers.map((c) => {
      const st =
        c.state.state === 'waiting'
          ? `waiting (${c.state.reason})`
          : c.state.state === 'running'
            ? 'running'
            : `terminated (${c.state.reason}, exit ${c.state.exitCode})`;
      const extra =
        c.lastProbe !== undefined && !c.ready
          ? `; probe: ${c.lastProbe.message}`
          : c.lastTermination?.message !== undefined
            ? `; ${c.lastTermination.message}`
            : '';
      return `${c.name}: ${st}, ${c.ready ? 'ready' : 'not ready'}, restarts ${c.restarts}${extra}`;
    });
    return `phase ${s.phase}${s.message !== undefined ? ` (${s.message})` : ''}; ${parts.join('; ') || 'no containers started'}`;
  }

  /** Stops the app containers (together), then the proxy, then kills anything else still in the pod's
   *  namespace (a daemon that left its process group). Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const errors: string[] = [];
      const settle = async (p: Promise<void>) => p.catch((e: unknown) => void errors.push((e as Error).message));
      await Promise.all(this.apps.map((c) => settle(c.stop())));
      if (this.proxy !== undefined) await settle(this.proxy.stop());
      if (this.attached && this.o.dataPlane !== undefined) await settle(this.o.dataPlane.detach());
      // Nothing of the holder drains, and pid 1 ignores TERM (it has no handler, so that no container
      // can end the namespace): SIGKILL at once.
      if (this.holder !== undefined) await settle(this.holder.stop(0));
      if (this.o.net.netns !== undefined) await settle(killNetnsProcesses(this.o.net.netns).then(() => undefined));
      if (this.sampler !== undefined) clearInterval(this.sampler);
      const cg = this.cgroup;
      if (cg !== undefined) {
        const names = [...this.containerSpecs(), ...(this.holderSpec !== undefined ? [this.holderSpec] : [])].map(
          (c) => c.name,
        );
        await settle(removePodCgroup(cg, names));
      }
      // The pod's emptyDir volumes go with it (its logs stay, as `down` keeps them).
      await settle(rm(join(this.podDir, 'volumes'), { recursive: true, force: true }));
      await settle(rm(join(this.podDir, 'run'), { recursive: true, force: true }));
      await settle(rm(join(this.podDir, 'secrets'), { recursive: true, force: true }));
      this.readyNow = false;
      if (errors.length > 0) throw new RuntimeError(RuntimeCodes.STOP, `pod ${this.label}: stop: ${errors.join('; ')}`);
    })();
    return this.stopping;
  }
}

/** SIGKILLs every process in a named network namespace until none is left; returns the pids killed.
 *  Everything in a pod's namespace belongs to the pod, so this is the backstop that catches processes
 *  which escaped their group (setsid daemons), and what `down` uses after a crash. */
export async function killNetnsProcesses(netns: string, timeoutMs = 5000): Promise<number[]> {
  const killed = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let pids: number[];
    try {
      pids = await netnsPids(runCommand, netns);
    } catch {
      return [...killed]; // no such namespace
    }
    const live: number[] = [];
    for (const pid of pids) if (!(await isGone(pid))) live.push(pid);
    if (live.length === 0) return [...killed];
    if (Date.now() > deadline) {
      throw new RuntimeError(RuntimeCodes.STOP, `processes survive in ${netns}: ${live.join(', ')}`);
    }
    for (const pid of live) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch {
        // gone meanwhile
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Removes the containers' groups, then the pod's. */
async function removePodCgroup(cg: Cgroup, containers: readonly string[]): Promise<void> {
  for (const name of containers) await new Cgroup(cg.roots, `${cg.rel}/${name}`).remove();
  await cg.remove();
}

type ManifestContainer = PodPlan['spec']['containers'][number];

/** A container's cgroup limits from its resources (a request without a limit weighs CPU only). */
export function containerLimits(r: ManifestContainer['resources']): CgroupLimits | undefined {
  if (r === undefined) return undefined;
  const num = (v: string | number | undefined, parse: (x: string | number) => number | string) => {
    if (v === undefined) return undefined;
    const n = parse(v);
    return typeof n === 'number' ? n : undefined;
  };
  const cpuRequest = num(r.requests?.cpu, parseCpu);
  const cpuLimit = num(r.limits?.cpu, parseCpu);
  const memoryLimit = num(r.limits?.memory, parseMemory);
  if (cpuRequest === undefined && cpuLimit === undefined && memoryLimit === undefined) return undefined;
  return {
    ...(cpuRequest !== undefined ? { cpuRequest } : {}),
    ...(cpuLimit !== undefined ? { cpuLimit } : {}),
    ...(memoryLimit !== undefined ? { memoryLimit } : {}),
  };
}

/** The host directories of a pod: each container's /run, the emptyDir volumes, the app containers'
 *  ServiceAccount token (a parent of each is 0700: only root on the host walks into them). */
export function podDirs(podDir: string) {
  return {
    run: (container: string) => join(podDir, 'run', container),
    volume: (name: string) => join(podDir, 'volumes', name),
    serviceAccount: join(podDir, 'secrets', 'serviceaccount'),
  };
}

/** An app container's isolation: its uid, gid and capabilities from its securityContext (the pod's
 *  for uid and gid when its own does not say), the hidden paths, its volumes and token. */
function appIsolation(
  o: PodProcessesOptions,
  c: ManifestContainer,
  podDir: string,
  hide: readonly string[],
  sharedPid: boolean,
): Isolation {
  const sc = c.securityContext;
  const psc = o.pod.spec.securityContext;
  const dirs = podDirs(podDir);
  const runDir = dirs.run(c.name);
  const inRun = (path: string): string | undefined => {
    const p = path.replace(/\/+$/, '').replace(/^\/var\/run(\/|$)/, '/run$1');
    return p.startsWith('/run/') ? join(runDir, p.slice('/run/'.length)) : undefined;
  };
  const binds: VolumeBind[] = c.volumeMounts.map((m) => ({
    source: dirs.volume(m.name),
    target: inRun(m.mountPath) ?? m.mountPath.replace(/\/+$/, ''),
    readOnly: m.readOnly,
  }));
  if (o.pod.spec.automountServiceAccountToken !== false) {
    binds.push({ source: dirs.serviceAccount, target: inRun(SERVICE_ACCOUNT_DIR) as string, readOnly: true });
  }
  return {
    hide,
    keep: [],
    runDir,
    binds,
    writable: sc?.readOnlyRootFilesystem === true ? [] : DEFAULT_WRITABLE,
    workingDir: c.workingDir ?? '/',
    privileges: {
      uid: sc?.runAsUser ?? psc?.runAsUser ?? 0,
      gid: sc?.runAsGroup ?? psc?.runAsGroup ?? 0,
      capabilities: effectiveCapabilities(sc?.capabilities ?? {}),
    },
    ...(sharedPid ? { pidNamespace: 'join' as const } : {}),
  };
}

function appContainerSpecs(o: PodProcessesOptions, podDir?: string, sharedPid = false): ContainerSpec[] {
  const { pod, net } = o;
  const facts: PodFacts = {
    namespace: pod.namespace,
    name: pod.name,
    uid: o.podUid ?? randomUUID(),
    serviceAccountName: pod.spec.serviceAccountName,
    nodeName: o.nodeName ?? hostname(),
    podIP: net.ip,
    hostIP: net.gateway,
  };
  const base = baseEnv(o.hostEnv ?? process.env, { hostname: pod.hostname, home: '/root' });
  return pod.spec.containers.map((c): ContainerSpec => {
    const env = containerEnv(base, c.env, facts);
    const probe: ResolvedProbe | undefined =
      c.readinessProbe !== undefined ? resolveProbe(c.readinessProbe, c.ports, net.ip) : undefined;
    const resources = containerLimits(c.resources);
    const hide = [o.stateDir, '/etc/netns', ...(o.hide ?? [])];
    return {
      name: c.name,
      argv: [...c.command, ...c.args].map((a) => expandVars(a, env)),
      env,
      ...(c.workingDir !== undefined ? { workingDir: c.workingDir } : {}),
      restartPolicy: c.restartPolicy ?? pod.spec.restartPolicy,
      ...(probe !== undefined ? { readinessProbe: probe } : {}),
      terminationGraceMs: pod.spec.terminationGracePeriodSeconds * 1000,
      ...(resources !== undefined ? { resources } : {}),
      ...(podDir !== undefined ? { isolation: appIsolation(o, c, podDir, hide, sharedPid) } : {}),
    };
  });
}

/** The flags of a pod's proxy: the ports the proxy-init rules redirect to, drain, log level, the pod's
 *  opaque ports and `extraArgs` (the mesh's). A sidecar's command line, and what the per-host data
 *  plane's node proxy is given for the pod. */
export function proxyFlags(pod: PodPlan, p: Omit<ProxyOptions, 'command'>): string[] {
  const inbound = p.inboundPort ?? DEFAULT_PROXY_INIT.inboundPort;
  const outbound = p.outboundPort ?? DEFAULT_PROXY_INIT.outboundPort;
  const admin = p.adminPort ?? PROXY_ADMIN_PORT;
  const grace = p.terminationGraceMs ?? 10_000;
  const args = [
    '--inbound-addr',
    '0.0.0.0',
    '--inbound-port',
    String(inbound),
    '--outbound-addr',
    '127.0.0.1',
    '--outbound-port',
    String(outbound),
    '--admin-addr',
    '0.0.0.0',
    '--admin-port',
    String(admin),
    '--drain-timeout-ms',
    String(Math.max(0, grace - 1000)),
    '--log-level',
    p.logLevel ?? 'info',
  ];
  // The annotation's list replaces the proxy's default list; without the annotation (anywhere) the
  // proxy keeps its defaults. An explicit empty annotation on the pod means "no opaque ports".
  if (pod.mesh.opaquePorts.length > 0 || pod.annotations[ANNOTATION.opaquePorts] !== undefined) {
    args.push('--opaque-ports', formatPortList(pod.mesh.opaquePorts));
  }
  args.push(...(p.extraArgs ?? []));
  return args;
}

/** The proxy as a container: `outrigger proxy` with the ports the proxy-init rules redirect to, the
 *  pod's opaque ports, and a readiness probe on its admin /ready from inside the pod. */
export function proxyContainerSpec(
  pod: PodPlan,
  p: ProxyOptions,
  isolate?: { readonly podDir: string; readonly hide: readonly string[]; readonly sharedPid?: boolean },
): ContainerSpec {
  const admin = p.adminPort ?? PROXY_ADMIN_PORT;
  const uid = p.user ?? { uid: DEFAULT_PROXY_INIT.proxyUid, gid: DEFAULT_PROXY_INIT.proxyUid };
  const grace = p.terminationGraceMs ?? 10_000;
  const args = proxyFlags(pod, p);
  const isolation: Isolation | undefined =
    isolate !== undefined
      ? {
          hide: isolate.hide,
          keep: proxyKeeps(p.command, args, isolate.hide),
          runDir: podDirs(isolate.podDir).run(PROXY_CONTAINER),
          binds: [],
          writable: DEFAULT_WRITABLE,
          workingDir: '/',
          // Its own uid, which the proxy-init rules exempt, and no capability at all.
          privileges: { uid: uid.uid, gid: uid.gid, capabilities: [] },
          ...(isolate.sharedPid === true ? { pidNamespace: 'join' as const } : {}),
        }
      : undefined;
  return {
    ...(isolation !== undefined ? { isolation } : {}),
    name: PROXY_CONTAINER,
    argv: [...p.command.argv, ...args],
    // Nothing of the runtime's environment: no OUTRIGGER_PROXY_* setting may leak in unseen. Only what
    // the command itself needs (another build of the addon) is added.
    env: { ...p.command.env, PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/', HOSTNAME: pod.hostname },
    restartPolicy: 'Always',
    user: uid,
    readinessProbe: {
      action: { kind: 'http', host: '127.0.0.1', port: admin, path: '/ready', scheme: 'HTTP', headers: [] },
      // Probed often until first ready so that the app starts without delay, then every 10 s.
      timing: {
        initialDelayMs: 100,
        periodMs: 10_000,
        startupPeriodMs: 200,
        timeoutMs: 1000,
        successThreshold: 1,
        failureThreshold: 3,
      },
    },
    terminationGraceMs: grace,
  };
}

/** The holder of a pod's shared PID namespace: an isolated container like the others (the mesh's state
 *  hidden, the host read-only, so that a container allowed SYS_PTRACE finds nothing through its
 *  /proc/1/root), whose init is the namespace's pid 1 and keeps a placeholder (sleep, as nobody, with no
 *  capability) running for as long as the pod lives. Restarted if it ever ends. */
function pidHolderSpec(podDir: string, hide: readonly string[], hostEnv: NodeJS.ProcessEnv): ContainerSpec {
  return {
    name: PID_HOLDER,
    argv: ['sleep', '2147483647'],
    env: { PATH: hostEnv.PATH ?? '/usr/bin:/bin' },
    restartPolicy: 'Always',
    terminationGraceMs: 0,
    isolation: {
      hide,
      keep: [],
      runDir: podDirs(podDir).run(PID_HOLDER),
      binds: [],
      writable: [],
      workingDir: '/',
      privileges: { uid: PID_HOLDER_UID, gid: PID_HOLDER_UID, capabilities: [] },
      pidNamespace: 'hold',
    },
  };
}

/** A process's pid in its own (innermost) PID namespace, from the NSpid line of its status. */
async function namespacePid(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^NSpid:\s*(.*)$/m.exec(status);
  const last = m?.[1]?.trim().split(/\s+/).pop();
  return last !== undefined ? Number(last) : undefined;
}

/** What the proxy must still see below the hidden directories: its command when staged there, and the
 *  files its flags name (its token's directory, as the token is replaced by rename; the tap token). */
function proxyKeeps(command: ProxyCommand, args: readonly string[], hide: readonly string[]): string[] {
  const under = (path: string) => hide.some((h) => path === h || path.startsWith(`${h}/`));
  const keep = new Set<string>();
  if (under(command.root)) keep.add(command.root);
  for (const a of [...command.argv, ...args, ...Object.values(command.env)]) {
    const path = a.startsWith('--') && a.includes('=') ? a.slice(a.indexOf('=') + 1) : a;
    if (!path.startsWith('/') || !under(path) || [...keep].some((k) => path.startsWith(`${k}/`))) continue;
    // Files replaced by a rename while the proxy runs (its token, the trust bundle during a rotation)
    // are kept through their directory: a bind mount of the file itself would stay on the old inode.
    keep.add(
      path.endsWith('/token') || path.endsWith(`/${TRUST_BUNDLE_DIR}/${TRUST_BUNDLE_FILE}`) ? dirname(path) : path,
    );
  }
  return [...keep];
}

/** The last `lines` lines of a file (at most 64 KiB read), '' if it cannot be read. */
export async function tailFile(path: string, lines: number): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
    const { size } = await fh.stat();
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    return buf
      .toString('utf8')
      .split('\n')
      .filter((l) => l !== '')
      .slice(-lines)
      .join('\n');
  } catch {
    return '';
  } finally {
    await fh?.close();
  }
}
