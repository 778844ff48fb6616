// The status of a mesh as `get`, `up`, `apply` and the dashboard read it: its phase and progress lines,
// its pods, Services (with ready endpoints), Deployments and routes.
import { routeEntries } from '../control/store/manifests/routes.js';
import type { RouteView } from '../manifests/types.js';
import type { ManifestSet } from './manifests/index.js';
import type { PodStatus } from './supervisor/index.js';
import { podKey, type RunningPod } from './mesh-pods.js';
import type { MeshSnapshot } from './mesh-snapshot.js';
import type { DataPlaneMode, NodeProxyStatus } from './dataplane/index.js';

export type MeshPhase = 'Starting' | 'Ready' | 'Failed' | 'Stopping' | 'Stopped';

export interface PodView extends PodStatus {
  readonly labels: Readonly<Record<string, string>>;
  /** The Deployment that owns the pod. */
  readonly deployment?: string;
  /** App container names, in order (the proxy is `outrigger-proxy`). */
  readonly appContainers: readonly string[];
  /** Being removed (by apply or a rollout). */
  readonly terminating?: boolean;
  /** The simulated node it runs on (per-host data plane). */
  readonly node?: string;
  /** The pod's cgroup directories (its own processes; a sidecar's proxy is in one below them). */
  readonly cgroups?: readonly string[];
}

export interface ServiceView {
  readonly namespace: string;
  readonly name: string;
  readonly clusterIP: string;
  readonly selector: Readonly<Record<string, string>>;
  readonly ports: readonly {
    readonly name?: string;
    readonly port: number;
    readonly targetPort: number | string;
    readonly protocol: string;
  }[];
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
  /** Progress lines so far; `up` and `apply` print the ones they have not printed yet. */
  readonly progress: readonly string[];
  readonly pods: readonly PodView[];
  readonly services: readonly ServiceView[];
  readonly deployments: readonly DeploymentView[];
  /** HTTPRoutes and GRPCRoutes: what `routes` and the dashboard show beside each route's figures. */
  readonly routes?: readonly RouteView[];
  /** The data plane: sidecars, or per-host with its node proxies. */
  readonly dataPlane?: { readonly mode: DataPlaneMode; readonly nodes: readonly NodeProxyStatus[] };
}

export interface StatusInput {
  readonly phase: MeshPhase;
  readonly message: string | undefined;
  readonly progress: readonly string[];
  readonly running: Iterable<RunningPod>;
  readonly set: ManifestSet;
  /** The published snapshot (without a network yet: no Services, no pods). */
  readonly snapshot: Pick<MeshSnapshot, 'services'>;
  readonly addressOf: (service: string) => string | undefined;
  readonly dataPlane?: MeshStatus['dataPlane'];
}

export function meshStatus(i: StatusInput): MeshStatus {
  const pods: PodView[] = [...i.running].map((r) => ({
    ...r.pp.status(),
    labels: r.plan.labels,
    ...(r.plan.owner !== undefined ? { deployment: r.plan.owner.name } : {}),
    appContainers: r.plan.spec.containers.map((c) => c.name),
    ...(r.terminating ? { terminating: true } : {}),
    ...(r.node !== undefined ? { node: r.node } : {}),
    ...(r.pp.cgroupDirs().length > 0 ? { cgroups: r.pp.cgroupDirs() } : {}),
  }));
  const services: ServiceView[] = i.set.services.map((s) => {
    const entry = i.snapshot.services.find((e) => e.namespace === s.metadata.namespace && e.name === s.metadata.name);
    const endpoints: string[] = [];
    for (const p of s.spec.ports) {
      for (const e of entry?.endpoints ?? []) {
        const port = e.ports[p.port];
        if (e.ready && port !== undefined) endpoints.push(`${e.ip}:${port}`);
      }
    }
    return {
      namespace: s.metadata.namespace,
      name: s.metadata.name,
      clusterIP: i.addressOf(podKey(s.metadata)) ?? '',
      selector: s.spec.selector ?? {},
      ports: s.spec.ports.map((p) => ({
        ...(p.name !== undefined ? { name: p.name } : {}),
        port: p.port,
        targetPort: p.targetPort,
        protocol: p.protocol,
      })),
      endpoints,
    };
  });
  const deployments: DeploymentView[] = i.set.deployments.map((d) => {
    const mine = pods.filter((p) => p.namespace === d.metadata.namespace && p.deployment === d.metadata.name);
    return {
      namespace: d.metadata.namespace,
      name: d.metadata.name,
      replicas: d.spec.replicas,
      ready: mine.filter((p) => p.ready && p.terminating !== true).length,
      pods: mine.map((p) => p.name),
    };
  });
  const routes: RouteView[] = routeEntries(i.set).map((r) => {
    type Rule = (typeof r.rules)[number];
    const widest = r.rules.reduce<Rule | undefined>(
      (w, x) => (w === undefined || x.backends.length >= w.backends.length ? x : w),
      undefined,
    );
    return {
      kind: r.kind,
      namespace: r.namespace,
      name: r.name,
      parents: r.parents.map((p) => p.name),
      backends: (widest?.backends ?? []).map((b) => ({ service: b.name, weight: b.weight })),
    };
  });
  return {
    phase: i.phase,
    ...(i.message !== undefined ? { message: i.message } : {}),
    progress: [...i.progress],
    pods,
    services,
    deployments,
    routes,
    ...(i.dataPlane !== undefined ? { dataPlane: i.dataPlane } : {}),
  };
}
