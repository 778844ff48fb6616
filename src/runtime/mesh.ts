// One local mesh, as the control process runs it: the pod network, each pod's network and processes
// (Deployments expanded), progress lines as it goes, the status `get` shows, and stopping all of it.
import { rm } from 'node:fs/promises';
import { formatPortList, planPods, serviceTargets, type ManifestSet, type PodPlan } from './manifests/index.js';
import { DEFAULT_PROXY_INIT, PodNetwork, type NetRecord } from './net/index.js';
import { PodProcesses, resolveProxyCommand, type PodStatus, type ProxyCommand } from './supervisor/index.js';
import { removeStateFiles, statePaths, writeJsonAtomic, type StatePaths } from './state.js';

export interface MeshOptions {
  readonly stateDir: string;
  readonly bridge?: string;
  readonly podCidr?: string;
  /** How long each pod may take to become ready (ms, default 60 s). */
  readonly readyTimeoutMs?: number;
  /** Called with each progress line (also kept in the status). */
  readonly onProgress?: (line: string) => void;
}

export type MeshPhase = 'Starting' | 'Ready' | 'Failed' | 'Stopping' | 'Stopped';

export interface PodView extends PodStatus {
  readonly labels: Readonly<Record<string, string>>;
  /** The Deployment that owns the pod. */
  readonly deployment?: string;
  /** App container names, in order (the proxy is `outrigger-proxy`). */
  readonly appContainers: readonly string[];
}

export interface ServiceView {
  readonly namespace: string;
  readonly name: string;
  readonly selector: Readonly<Record<string, string>>;
  readonly ports: readonly { readonly name?: string; readonly port: number; readonly targetPort: number | string; readonly protocol: string }[];
  /** Ready endpoints: `ip:port` per Service port, in port order. */
  readonly endpoints: readonly string[];
}

export interface DeploymentView {
  readonly namespace: string;
  readonly name: string;
  readonly replicas: number;
  readonly ready: number;
  readonly pods: readonly string[];
}

export interface MeshStatus {
  readonly phase: MeshPhase;
  readonly message?: string;
  /** Progress lines so far; `up` prints the ones it has not printed yet. */
  readonly progress: readonly string[];
  readonly pods: readonly PodView[];
  readonly services: readonly ServiceView[];
  readonly deployments: readonly DeploymentView[];
}

export class Mesh {
  private readonly paths: StatePaths;
  private net: PodNetwork | undefined;
  private plans: PodPlan[] = [];
  private readonly pods = new Map<string, PodProcesses>();
  private phase: MeshPhase = 'Starting';
  private message: string | undefined;
  private readonly progress: string[] = [];
  private set: ManifestSet | undefined;
  private stopping: Promise<void> | undefined;
  private saveQueued = false;

  constructor(private readonly o: MeshOptions) {
    this.paths = statePaths(o.stateDir);
  }

  private say(line: string): void {
    this.progress.push(line);
    this.o.onProgress?.(line);
  }

  /** Creates the network and every pod, and waits until all are ready. On failure the phase is Failed
   *  and the error is rethrown; the caller stops the mesh (which removes what was made). */
  async start(set: ManifestSet): Promise<void> {
    try {
      this.set = set;
      this.plans = planPods(set);
      // Logs of an earlier mesh in this state directory (down keeps them) would mix with ours.
      await rm(this.paths.pods, { recursive: true, force: true });
      let proxy: ProxyCommand | undefined;
      if (this.plans.some((p) => p.mesh.inject)) {
        this.say('preparing the proxy command (uid 2102)');
        proxy = await resolveProxyCommand({ user: { uid: DEFAULT_PROXY_INIT.proxyUid, gid: DEFAULT_PROXY_INIT.proxyUid }, stateDir: this.o.stateDir });
      }
      this.net = await PodNetwork.create({
        ...(this.o.bridge !== undefined ? { bridge: this.o.bridge } : {}),
        ...(this.o.podCidr !== undefined ? { podCidr: this.o.podCidr } : {}),
        onRecord: (r: NetRecord) => writeJsonAtomic(this.paths.net, r),
      });
      this.say(`network: bridge ${this.net.bridge}, gateway ${this.net.gateway}`);
      for (const plan of this.plans) {
        if (this.stopping !== undefined) throw new Error('stopped while starting');
        const podNet = await this.net.addPod({ namespace: plan.namespace, name: plan.name, hostname: plan.hostname });
        if (plan.mesh.inject) {
          await this.net.applyProxyInit(podNet.netns, { ...DEFAULT_PROXY_INIT, skipInboundPorts: plan.mesh.skipInboundPorts, skipOutboundPorts: plan.mesh.skipOutboundPorts });
        }
        const pp = new PodProcesses({
          pod: plan,
          net: { netns: podNet.netns, ip: podNet.ip, gateway: podNet.gateway },
          stateDir: this.o.stateDir,
          ...(plan.mesh.inject && proxy !== undefined ? { proxy: { command: proxy } } : {}),
        });
        pp.on('change', () => this.queueSave());
        this.pods.set(key(plan), pp);
        this.say(`pod ${key(plan)}: ${podNet.ip}${plan.mesh.inject ? ', meshed' : ', not meshed'}${plan.mesh.inject && plan.mesh.skipOutboundPorts.length > 0 ? ` (skip outbound ${formatPortList(plan.mesh.skipOutboundPorts)})` : ''}`);
      }
      await this.save();
      // Every pod's processes start together; each waits for its own proxy first.
      const timeout = this.o.readyTimeoutMs ?? 60_000;
      await Promise.all(
        [...this.pods.entries()].map(async ([k, pp]) => {
          await pp.start();
          this.say(`pod ${k}: started`);
          await pp.whenReady(timeout);
          this.say(`pod ${k}: ready`);
        }),
      );
      this.phase = 'Ready';
      this.say(`ready: ${this.pods.size} pod${this.pods.size === 1 ? '' : 's'}`);
      await this.save();
    } catch (err) {
      this.phase = 'Failed';
      this.message = (err as Error).message;
      await this.save().catch(() => undefined);
      throw err;
    }
  }

  /** Stops every pod (apps, then proxies, then anything left in their namespaces), removes the
   *  network and the state files (logs stay). Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.phase !== 'Failed') this.phase = 'Stopping';
      this.say('stopping');
      const errors: string[] = [];
      const results = await Promise.allSettled([...this.pods.values()].map((p) => p.stop()));
      for (const r of results) if (r.status === 'rejected') errors.push((r.reason as Error).message);
      if (this.net !== undefined) {
        try {
          await this.net.teardown();
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
      if (errors.length > 0) throw new Error(`stop: ${errors.join('; ')}`);
      // A failed mesh stays Failed (with its message) so that `up` can still tell why.
      if (this.phase !== 'Failed') this.phase = 'Stopped';
      await removeStateFiles(this.o.stateDir, { control: false });
    })();
    return this.stopping;
  }

  private queueSave(): void {
    if (this.saveQueued || this.stopping !== undefined) return;
    this.saveQueued = true;
    setTimeout(() => {
      this.saveQueued = false;
      if (this.stopping === undefined) void this.save().catch(() => undefined);
    }, 200).unref();
  }

  private async save(): Promise<void> {
    await writeJsonAtomic(this.paths.state, this.status());
  }

  status(): MeshStatus {
    const pods: PodView[] = this.plans.flatMap((plan) => {
      const pp = this.pods.get(key(plan));
      if (pp === undefined) return [];
      return [{
        ...pp.status(),
        labels: plan.labels,
        ...(plan.owner !== undefined ? { deployment: plan.owner.name } : {}),
        appContainers: plan.spec.containers.map((c) => c.name),
      }];
    });
    const byKey = new Map(pods.map((p) => [`${p.namespace}/${p.name}`, p]));
    const services: ServiceView[] = (this.set?.services ?? []).map((s) => {
      const endpoints: string[] = [];
      for (const { targets } of serviceTargets(s, this.plans)) {
        for (const t of targets) {
          const p = byKey.get(key(t.pod));
          if (p?.ready === true) endpoints.push(`${p.ip}:${t.port}`);
        }
      }
      return {
        namespace: s.metadata.namespace,
        name: s.metadata.name,
        selector: s.spec.selector ?? {},
        ports: s.spec.ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), port: p.port, targetPort: p.targetPort, protocol: p.protocol })),
        endpoints,
      };
    });
    const deployments: DeploymentView[] = (this.set?.deployments ?? []).map((d) => {
      const mine = pods.filter((p) => p.namespace === d.metadata.namespace && p.deployment === d.metadata.name);
      return { namespace: d.metadata.namespace, name: d.metadata.name, replicas: d.spec.replicas, ready: mine.filter((p) => p.ready).length, pods: mine.map((p) => p.name) };
    });
    return { phase: this.phase, ...(this.message !== undefined ? { message: this.message } : {}), progress: [...this.progress], pods, services, deployments };
  }
}

function key(p: { readonly namespace: string; readonly name: string }): string {
  return `${p.namespace}/${p.name}`;
}
