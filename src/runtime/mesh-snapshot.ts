// What a mesh publishes: the snapshot of Services (with their endpoints), pods, routes and policy that
// the control plane serves to the proxies, and the Service rules (virtual IP → ready endpoints) that
// every pod's network applies.
import type { EndpointEntry, PodEntry, ServiceEntry, StoreSnapshot } from '../control/store/store.js';
import { portListHas, serviceTargets, type ManifestSet } from './manifests/index.js';
import type { ServiceRule } from './net/index.js';
import { policyEntries } from '../control/store/manifests/policy.js';
import { routeEntries } from '../control/store/manifests/routes.js';
import { podKey, type RunningPod } from './mesh-pods.js';

export type MeshSnapshot = Omit<StoreSnapshot, 'version'>;

/** The snapshot of the running pods and the objects of `set`; Services without an address are left out. */
export function meshSnapshot(
  running: Iterable<RunningPod>,
  set: ManifestSet,
  addressOf: (service: string) => string | undefined,
): MeshSnapshot {
  const live = [...running];
  const plans = live.map((r) => r.plan);
  const byKey = new Map(live.map((r) => [podKey(r.plan), r]));
  const readyNow = (r: RunningPod | undefined) => r !== undefined && !r.terminating && r.pp.status().ready;
  const services: ServiceEntry[] = set.services.flatMap((s) => {
    const clusterIP = addressOf(podKey(s.metadata));
    if (clusterIP === undefined) return [];
    const eps = new Map<string, { pod: string; ip: string; ports: Record<number, number>; ready: boolean }>();
    for (const { port, targets } of serviceTargets(s, plans)) {
      for (const t of targets) {
        const k = podKey(t.pod);
        const r = byKey.get(k);
        if (r === undefined) continue;
        let e = eps.get(k);
        if (e === undefined) eps.set(k, (e = { pod: k, ip: r.net.ip, ports: {}, ready: readyNow(r) }));
        e.ports[port.port] = t.port;
      }
    }
    return [
      {
        namespace: s.metadata.namespace,
        name: s.metadata.name,
        clusterIP,
        ports: s.spec.ports.map((p) => ({
          ...(p.name !== undefined ? { name: p.name } : {}),
          port: p.port,
          ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}),
          ...(portListHas(s.opaquePorts, p.port) ? { opaque: true } : {}),
        })),
        endpoints: [...eps.values()] as EndpointEntry[],
      },
    ];
  });
  const pods: PodEntry[] = live.map((r) => ({
    namespace: r.plan.namespace,
    name: r.plan.name,
    ip: r.net.ip,
    ready: readyNow(r),
    meshed: r.plan.mesh.inject,
    serviceAccount: r.plan.spec.serviceAccountName,
    opaquePorts: r.plan.mesh.opaquePorts,
    labels: r.plan.labels,
    ports: r.plan.spec.containers.flatMap((c) =>
      c.ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), containerPort: p.containerPort })),
    ),
    ...(r.plan.mesh.defaultInboundPolicy !== undefined
      ? { defaultInboundPolicy: r.plan.mesh.defaultInboundPolicy }
      : {}),
    ...(r.plan.owner !== undefined ? { workload: r.plan.owner.name } : {}),
  }));
  return { services, pods, routes: routeEntries(set), policy: policyEntries(set) };
}

/** One rule per Service port: its virtual IP and port to the ready endpoints' ports. */
export function serviceRules(snap: MeshSnapshot): ServiceRule[] {
  return snap.services.flatMap((s) =>
    s.ports.map((p) => ({
      label: `${s.namespace}/${s.name}:${p.port}`,
      ip: s.clusterIP,
      port: p.port,
      endpoints: s.endpoints.flatMap((e) => {
        const port = e.ports[p.port];
        return e.ready && port !== undefined ? [{ ip: e.ip, port }] : [];
      }),
    })),
  );
}
