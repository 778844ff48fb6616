// From API objects (as the API server sends them: JSON, whatever else they carry) to the store's
// entries. Pure functions over the informers' caches, so that a snapshot is a function of what was
// watched and nothing else.
import { normalizePortList, parsePortList, type PortList } from '../../../core/ports.js';
import { ANNOTATION, PROXY_CONTAINER } from '../../../manifests/contract.js';
import {
  DEFAULT_INBOUND_POLICIES,
  POLICY_API_VERSION,
  POLICY_KINDS,
  type PolicyKindName,
} from '../../../manifests/policy.js';
import { checkPolicy } from '../../../manifests/policy-check.js';
import { checkRoute } from '../../../manifests/routes.js';
import { grpcRouteSchema, httpRouteSchema } from '../../../manifests/schema.js';
import {
  manifestSet,
  type GRPCRouteObject,
  type HTTPRouteObject,
  type PolicyObject,
  type ServiceObject,
} from '../../../manifests/types.js';
import { policyEntries } from '../manifests/policy.js';
import { routeEntries } from '../manifests/routes.js';
import type {
  DefaultInboundPolicy,
  EndpointEntry,
  PodEntry,
  PolicyEntries,
  RouteEntry,
  ServiceEntry,
  ServicePortEntry,
} from '../store.js';

export interface Meta {
  name?: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
}
export interface ApiObject {
  apiVersion?: string;
  kind?: string;
  metadata?: Meta;
  [k: string]: unknown;
}

type J = Record<string, unknown>;
const o = (v: unknown): J => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as J) : {});
const a = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const s = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function ports(text: string | undefined): PortList | undefined {
  if (text === undefined) return undefined;
  const p = parsePortList(text);
  return p.ok ? normalizePortList(p.ports) : undefined;
}

function defaultPolicy(text: string | undefined): DefaultInboundPolicy | undefined {
  return text !== undefined && (DEFAULT_INBOUND_POLICIES as readonly string[]).includes(text)
    ? (text as DefaultInboundPolicy)
    : undefined;
}

/** The Deployment that owns a pod: its controller is a ReplicaSet named `<deployment>-<hash>`, where
 *  the hash is the pod's `pod-template-hash` label (the Deployment controller names both so). A pod of
 *  a ReplicaSet without that label, of a StatefulSet, a Job... has no Deployment: undefined. Read from
 *  the pod alone, so the store need not watch ReplicaSets (nor have the RBAC to). */
export function deploymentOf(pod: ApiObject): string | undefined {
  const owner = pod.metadata?.ownerReferences?.find((r) => r.controller === true);
  const hash = pod.metadata?.labels?.['pod-template-hash'];
  if (owner?.kind !== 'ReplicaSet' || owner.name === undefined || hash === undefined || hash === '') return undefined;
  const suffix = `-${hash}`;
  return owner.name.endsWith(suffix) && owner.name.length > suffix.length
    ? owner.name.slice(0, -suffix.length)
    : undefined;
}

/** The TCP ports the pod's containers declare (a Server may name one): the app containers' and its
 *  native sidecars' (init containers with restartPolicy Always), not the mesh proxy's own. */
function containerPorts(spec: J): { name?: string; containerPort: number }[] {
  const containers = [
    ...a(spec.containers),
    ...a(spec.initContainers).filter((c) => o(c).restartPolicy === 'Always' && o(c).name !== PROXY_CONTAINER),
  ];
  const out: { name?: string; containerPort: number }[] = [];
  for (const c of containers) {
    for (const p of a(o(c).ports).map(o)) {
      if ((s(p.protocol) ?? 'TCP') !== 'TCP' || typeof p.containerPort !== 'number') continue;
      out.push({
        ...(s(p.name) !== undefined && p.name !== '' ? { name: p.name as string } : {}),
        containerPort: p.containerPort,
      });
    }
  }
  return out;
}

/** A pod as the store sees it; undefined for pods without an address yet (or finished ones). */
export function podEntry(
  pod: ApiObject,
  namespaceAnnotations: Readonly<Record<string, string>> | undefined,
): PodEntry | undefined {
  const status = o(pod.status);
  const spec = o(pod.spec);
  const ip = s(status.podIP);
  const name = pod.metadata?.name;
  const namespace = pod.metadata?.namespace;
  if (ip === undefined || ip === '' || name === undefined || namespace === undefined) return undefined;
  if (status.phase === 'Succeeded' || status.phase === 'Failed') return undefined;
  const ready = a(status.conditions).some((c) => o(c).type === 'Ready' && o(c).status === 'True');
  const meshed = [...a(spec.initContainers), ...a(spec.containers)].some((c) => o(c).name === PROXY_CONTAINER);
  const opaque =
    ports(pod.metadata?.annotations?.[ANNOTATION.opaquePorts]) ??
    ports(namespaceAnnotations?.[ANNOTATION.opaquePorts]) ??
    [];
  // A value that is not a policy is ignored (the injector warned when it admitted the pod): the
  // namespace's, then the mesh's, apply.
  const inboundDefault =
    defaultPolicy(pod.metadata?.annotations?.[ANNOTATION.defaultInboundPolicy]) ??
    defaultPolicy(namespaceAnnotations?.[ANNOTATION.defaultInboundPolicy]);
  const declared = containerPorts(spec);
  const workload = deploymentOf(pod);
  return {
    namespace,
    name,
    ip,
    ready,
    meshed,
    serviceAccount: s(spec.serviceAccountName) ?? 'default',
    opaquePorts: opaque,
    labels: { ...(pod.metadata?.labels ?? {}) },
    ...(declared.length > 0 ? { ports: declared } : {}),
    ...(inboundDefault !== undefined ? { defaultInboundPolicy: inboundDefault } : {}),
    ...(workload !== undefined ? { workload } : {}),
  };
}

/** A Service with its endpoints from its EndpointSlices; undefined for headless and ExternalName ones
 *  (no virtual IP for a proxy to see). */
export function serviceEntry(svc: ApiObject, slices: readonly ApiObject[]): ServiceEntry | undefined {
  const spec = o(svc.spec);
  const clusterIP = s(spec.clusterIP);
  const name = svc.metadata?.name;
  const namespace = svc.metadata?.namespace;
  if (
    name === undefined ||
    namespace === undefined ||
    clusterIP === undefined ||
    clusterIP === '' ||
    clusterIP === 'None'
  )
    return undefined;
  const opaque = ports(svc.metadata?.annotations?.[ANNOTATION.opaquePorts]) ?? [];
  const svcPorts = a(spec.ports)
    .map(o)
    .filter((p) => (s(p.protocol) ?? 'TCP') === 'TCP' && typeof p.port === 'number');
  const entries: ServicePortEntry[] = svcPorts.map((p) => {
    const port = p.port as number;
    const isOpaque = opaque.some((r) => r.from <= port && port <= r.to);
    return {
      ...(s(p.name) !== undefined && p.name !== '' ? { name: p.name as string } : {}),
      port,
      ...(s(p.appProtocol) !== undefined ? { appProtocol: p.appProtocol as string } : {}),
      ...(isOpaque ? { opaque: true } : {}),
    };
  });
  // One entry per pod address: a pod may be in several slices (one per address family, or split).
  const byPod = new Map<string, { pod: string; ip: string; ports: Record<number, number>; ready: boolean }>();
  for (const slice of slices) {
    if (s(slice.addressType) !== 'IPv4' && s(slice.addressType) !== 'IPv6') continue;
    const slicePorts = a(slice.ports).map(o);
    for (const ep of a(slice.endpoints).map(o)) {
      const ip = s(a(ep.addresses)[0]);
      if (ip === undefined) continue;
      const ref = o(ep.targetRef);
      const pod =
        s(ref.kind) === 'Pod' && s(ref.name) !== undefined
          ? `${s(ref.namespace) ?? namespace}/${s(ref.name)}`
          : `${namespace}/${ip}`;
      // Kubernetes: a nil `ready` means ready; serving-but-terminating endpoints are not ready.
      const ready = o(ep.conditions).ready !== false;
      const entry = byPod.get(ip) ?? { pod, ip, ports: {}, ready };
      for (const sp of svcPorts) {
        const match = slicePorts.find((p) => (s(p.name) ?? '') === (s(sp.name) ?? ''));
        if (match !== undefined && typeof match.port === 'number') entry.ports[sp.port as number] = match.port;
      }
      byPod.set(ip, entry);
    }
  }
  const endpoints: EndpointEntry[] = [...byPod.values()].sort((x, y) => (x.pod < y.pod ? -1 : x.pod > y.pod ? 1 : 0));
  return { namespace, name, clusterIP, ports: entries, endpoints };
}

/** The parts of an API object's metadata our strict manifest schemas know. */
function manifestMeta(m: Meta | undefined): Meta {
  return {
    ...(m?.name !== undefined ? { name: m.name } : {}),
    ...(m?.namespace !== undefined ? { namespace: m.namespace } : {}),
    ...(m?.labels !== undefined ? { labels: m.labels } : {}),
    ...(m?.annotations !== undefined ? { annotations: m.annotations } : {}),
  };
}

/** HTTPRoutes and GRPCRoutes, checked as the local runtime checks them; a route that fails is left
 *  out and its problems returned (the caller logs them once). */
export function routeEntriesFrom(
  httpRoutes: readonly ApiObject[],
  grpcRoutes: readonly ApiObject[],
  services: readonly ApiObject[],
): { routes: RouteEntry[]; problems: Map<string, string[]> } {
  const problems = new Map<string, string[]>();
  const http: HTTPRouteObject[] = [];
  const grpc: GRPCRouteObject[] = [];
  const source = { file: 'kubernetes', document: 0 };
  for (const [kind, list] of [
    ['HTTPRoute', httpRoutes],
    ['GRPCRoute', grpcRoutes],
  ] as const) {
    for (const r of list) {
      const key = `${kind} ${r.metadata?.namespace}/${r.metadata?.name}`;
      const raw = { apiVersion: r.apiVersion, kind, metadata: manifestMeta(r.metadata), spec: r.spec };
      const parsed = (kind === 'HTTPRoute' ? httpRouteSchema : grpcRouteSchema).safeParse(raw);
      if (!parsed.success) {
        problems.set(
          key,
          parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
        );
        continue;
      }
      const found: string[] = [];
      const retry = checkRoute(parsed.data, (path, message) => found.push(`${path.join('.')}: ${message}`));
      if (found.length > 0) {
        problems.set(key, found);
        continue;
      }
      if (parsed.data.kind === 'HTTPRoute') http.push({ ...parsed.data, source, retry });
      else grpc.push({ ...parsed.data, source, retry } as GRPCRouteObject);
    }
  }
  if (http.length + grpc.length === 0) return { routes: [], problems };
  const svcObjects = services.map((svc) => ({
    metadata: { name: svc.metadata?.name ?? '', namespace: svc.metadata?.namespace ?? '' },
    spec: {
      ports: a(o(svc.spec).ports)
        .map(o)
        .map((p) => ({ name: s(p.name), port: p.port as number, targetPort: p.port as number })),
    },
  })) as unknown as ServiceObject[];
  return { routes: routeEntries(manifestSet({ services: svcObjects, httpRoutes: http, grpcRoutes: grpc })), problems };
}

/** The policy objects (policy.outrigger.io), by kind: each is parsed with the schema and checked with
 *  the rules the local runtime applies to manifests (POLICY_KINDS, checkPolicy); one that fails is left
 *  out and its problems returned (the caller logs them once). References between objects are not
 *  required to resolve: in a cluster a target may come later or go first, and a reference to nothing
 *  authorizes nobody (the policy service's rule). */
export function policyEntriesFrom(byKind: Readonly<Partial<Record<PolicyKindName, readonly ApiObject[]>>>): {
  policy: PolicyEntries;
  count: number;
  problems: Map<string, string[]>;
} {
  const problems = new Map<string, string[]>();
  const policies: PolicyObject[] = [];
  const source = { file: 'kubernetes', document: 0 };
  for (const kind of Object.keys(POLICY_KINDS) as PolicyKindName[]) {
    for (const p of byKind[kind] ?? []) {
      const key = `${kind} ${p.metadata?.namespace}/${p.metadata?.name}`;
      if (p.apiVersion !== POLICY_API_VERSION) {
        problems.set(key, [
          `apiVersion: must be ${JSON.stringify(POLICY_API_VERSION)}, got ${JSON.stringify(p.apiVersion)}`,
        ]);
        continue;
      }
      const raw = { apiVersion: p.apiVersion, kind, metadata: manifestMeta(p.metadata), spec: p.spec };
      const parsed = POLICY_KINDS[kind].safeParse(raw);
      if (!parsed.success) {
        problems.set(
          key,
          parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
        );
        continue;
      }
      const found: string[] = [];
      checkPolicy(parsed.data, (path, message) => found.push(`${path.join('.')}: ${message}`));
      if (found.length > 0) {
        problems.set(key, found);
        continue;
      }
      policies.push({ ...parsed.data, source } as PolicyObject);
    }
  }
  return { policy: policyEntries(manifestSet({ policies })), count: policies.length, problems };
}
