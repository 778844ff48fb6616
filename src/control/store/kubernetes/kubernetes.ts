// The control plane's store on Kubernetes: informers (list, then watch from the list's
// resourceVersion) over Namespaces, Pods, Services, EndpointSlices, ServiceAccounts, HTTPRoutes,
// GRPCRoutes and the policy kinds, and one immutable snapshot recomputed from their caches after each
// burst of events. @kubernetes/client-node's ListWatch relists on 410 Gone by itself; every other
// failure stops it, so each informer is restarted here with jittered backoff, and a periodic resync
// recomputes the snapshot from the caches.
import * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { JitteredBackoff } from '../../../core/backoff.js';
import type { Logger } from '../../../core/log.js';
import type { PodRef } from '../../identity/tokens.js';
import { POLICY_API_VERSION, type PolicyKindName } from '../../../manifests/policy.js';
import { byNamespaceName, type PodEntry, type ServiceEntry, type Store, type StoreSnapshot } from '../store.js';
import { podEntry, policyEntriesFrom, routeEntriesFrom, serviceEntry, type ApiObject } from './convert.js';

/** One watched resource: its collection path and how it is listed. */
export interface Resource {
  readonly key: string;
  /** The collection path across namespaces, e.g. `/api/v1/pods`. */
  readonly path: string;
  /** CRD kinds (routes, policy) may be absent from a cluster: a 404 then counts as an empty list,
   *  retried slowly, instead of holding up readiness. */
  readonly optional: boolean;
  /** Lists the collection (every namespace). */
  readonly list: (kc: k8s.KubeConfig) => Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>;
}

type List = Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>;
const core = (plural: string, list: (api: k8s.CoreV1Api) => List): Resource => ({
  key: plural,
  path: `/api/v1/${plural}`,
  optional: false,
  list: (kc) => list(kc.makeApiClient(k8s.CoreV1Api)),
});
// Custom resources come back as the JSON the server sent, the same shape watch events have.
const group = (g: string, v: string, plural: string, optional: boolean): Resource => ({
  key: `${plural}.${g}`,
  path: `/apis/${g}/${v}/${plural}`,
  optional,
  list: (kc) =>
    kc.makeApiClient(k8s.CustomObjectsApi).listClusterCustomObject({ group: g, version: v, plural }) as List,
});

/** The policy kinds' resource names (src/kube/policy-crds.ts names the CRDs the same; a test keeps
 *  the install's RBAC in step with RESOURCES). */
export const POLICY_PLURALS: Readonly<Record<PolicyKindName, string>> = {
  Server: 'servers',
  AuthorizationPolicy: 'authorizationpolicies',
  MeshTLSAuthentication: 'meshtlsauthentications',
  NetworkAuthentication: 'networkauthentications',
  HTTPLocalRateLimitPolicy: 'httplocalratelimitpolicies',
};
const [POLICY_GROUP_NAME, POLICY_VERSION] = POLICY_API_VERSION.split('/') as [string, string];
const policyKey = (kind: PolicyKindName) => `${POLICY_PLURALS[kind]}.${POLICY_GROUP_NAME}`;

export const RESOURCES: readonly Resource[] = [
  core('namespaces', (api) => api.listNamespace()),
  core('pods', (api) => api.listPodForAllNamespaces()),
  core('services', (api) => api.listServiceForAllNamespaces()),
  core('serviceaccounts', (api) => api.listServiceAccountForAllNamespaces()),
  {
    key: 'endpointslices.discovery.k8s.io',
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    optional: false,
    list: (kc) => kc.makeApiClient(k8s.DiscoveryV1Api).listEndpointSliceForAllNamespaces(),
  },
  group('gateway.networking.k8s.io', 'v1', 'httproutes', true),
  group('gateway.networking.k8s.io', 'v1', 'grpcroutes', true),
  ...Object.values(POLICY_PLURALS).map((p) => group(POLICY_GROUP_NAME, POLICY_VERSION, p, true)),
];

export interface KubernetesStoreOptions {
  readonly kubeConfig: k8s.KubeConfig;
  readonly log?: Logger;
  /** Events within this window make one snapshot (ms). Default 20. */
  readonly coalesceMs?: number;
  /** How often the snapshot is recomputed from the caches even without events (ms). Default 5 min. */
  readonly resyncMs?: number;
  /** Restart backoff after a failed list or watch. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Delay before listing an absent optional resource again (ms). Default 60 s. */
  readonly absentRetryMs?: number;
  /** Only these resources (tests). */
  readonly resources?: readonly Resource[];
}

function freeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) freeze(x);
  }
  return v;
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | undefined;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

interface Watched {
  readonly resource: Resource;
  readonly informer: k8s.Informer<k8s.KubernetesObject> & k8s.ObjectCache<k8s.KubernetesObject>;
  readonly backoff: JitteredBackoff;
  synced: boolean;
  absent: boolean;
  timer?: NodeJS.Timeout;
}

export class KubernetesStore implements Store {
  private current: StoreSnapshot = freeze({ version: 0, services: [], pods: [] });
  private readonly subscribers = new Set<(s: StoreSnapshot) => void>();
  private readonly watched: Watched[] = [];
  private readonly log: Logger;
  private pending?: NodeJS.Timeout;
  private resync?: NodeJS.Timeout;
  private closed = false;
  /** What was last logged about each object left out (routes, policy): logged again only when it changes. */
  private readonly problems = new Map<string, string>();
  private readyResolve!: () => void;
  /** Resolves once every resource has been listed once (absent optional ones count). */
  readonly ready: Promise<void> = new Promise((r) => (this.readyResolve = r));
  /** Restarts after failures, per resource (metrics, tests). */
  readonly restarts = new Map<string, number>();

  constructor(private readonly o: KubernetesStoreOptions) {
    this.log = o.log ?? pino({ level: 'silent' });
    for (const resource of o.resources ?? RESOURCES) {
      const list = () => this.list(resource);
      const informer = k8s.makeInformer(o.kubeConfig, resource.path, list as k8s.ListPromise<k8s.KubernetesObject>);
      const w: Watched = {
        resource,
        informer,
        backoff: new JitteredBackoff(o.backoff ?? { initialMs: 250, maxMs: 30_000 }),
        synced: false,
        absent: false,
      };
      informer.on('add', () => this.changed(w));
      informer.on('update', () => this.changed(w));
      informer.on('delete', () => this.changed(w));
      informer.on('error', (err: unknown) => this.failed(w, err));
      this.watched.push(w);
    }
  }

  private async list(r: Resource): Promise<k8s.KubernetesListObject<k8s.KubernetesObject>> {
    const w = this.watched.find((x) => x.resource === r);
    let list: k8s.KubernetesListObject<k8s.KubernetesObject>;
    try {
      list = await r.list(this.o.kubeConfig);
    } catch (err) {
      if (statusOf(err) === 404 && r.optional && w !== undefined) {
        if (!w.absent)
          this.log.info(
            { resource: r.key },
            'resource not served by this cluster (CRD not installed); watching for it',
          );
        w.absent = true;
        this.markSynced(w);
      }
      throw err;
    }
    if (w !== undefined) {
      w.absent = false;
      w.backoff.reset();
      // markSynced after the informer has filled its cache from this list.
      setImmediate(() => this.markSynced(w));
    }
    return list;
  }

  /** Starts every informer; resolves at once (see `ready`). */
  start(): this {
    for (const w of this.watched) void w.informer.start().catch((err: unknown) => this.failed(w, err));
    this.resync = setInterval(() => this.schedule(), this.o.resyncMs ?? 300_000);
    this.resync.unref();
    return this;
  }

  private markSynced(w: Watched): void {
    if (w.synced) return;
    w.synced = true;
    this.schedule();
    if (this.watched.every((x) => x.synced)) this.readyResolve();
  }

  private changed(w: Watched): void {
    if (w.synced) this.schedule();
  }

  private failed(w: Watched, err: unknown): void {
    if (this.closed) return;
    const status = statusOf(err);
    const delay = w.absent ? (this.o.absentRetryMs ?? 60_000) : w.backoff.next();
    this.restarts.set(w.resource.key, (this.restarts.get(w.resource.key) ?? 0) + 1);
    if (!w.absent)
      this.log.warn(
        { resource: w.resource.key, status, err: (err as Error | undefined)?.message, retryInMs: Math.round(delay) },
        'list/watch failed; restarting',
      );
    clearTimeout(w.timer);
    w.timer = setTimeout(() => {
      if (!this.closed) void w.informer.start().catch((e: unknown) => this.failed(w, e));
    }, delay);
  }

  private schedule(): void {
    if (this.closed || this.pending !== undefined) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.recompute();
    }, this.o.coalesceMs ?? 20);
  }

  private cached(key: string): ApiObject[] {
    const w = this.watched.find((x) => x.resource.key === key);
    return (w?.informer.list() ?? []) as ApiObject[];
  }

  /** A namespace's annotations, from the cache (the injector reads them). */
  namespaceAnnotations(name: string): Readonly<Record<string, string>> | undefined {
    const ns = this.watched.find((x) => x.resource.key === 'namespaces')?.informer.get(name) as ApiObject | undefined;
    return ns?.metadata?.annotations ?? (ns !== undefined ? {} : undefined);
  }

  /** The namespaces in the cache, by name (the trust bundle's copies go into each). */
  namespaceNames(): string[] {
    return (
      this.cached('namespaces')
        // A namespace being deleted takes no new objects.
        .filter((n) => (n.metadata as { deletionTimestamp?: unknown } | undefined)?.deletionTimestamp == null)
        .map((n) => n.metadata?.name ?? '')
        .filter((n) => n !== '')
    );
  }

  /** Whether the pod exists now with this uid (the identity service's pod binding check). */
  podExists(namespace: string, pod: PodRef): boolean {
    const p = this.watched.find((x) => x.resource.key === 'pods')?.informer.get(pod.name, namespace) as
      ApiObject | undefined;
    return p !== undefined && p.metadata?.uid === pod.uid;
  }

  private recompute(): void {
    if (this.closed) return;
    const nsAnnotations = new Map(
      this.cached('namespaces').map((n) => [n.metadata?.name ?? '', n.metadata?.annotations ?? {}]),
    );
    const pods: PodEntry[] = [];
    for (const p of this.cached('pods')) {
      const e = podEntry(p, nsAnnotations.get(p.metadata?.namespace ?? ''));
      if (e !== undefined) pods.push(e);
    }
    const slicesByService = new Map<string, ApiObject[]>();
    for (const sl of this.cached('endpointslices.discovery.k8s.io')) {
      const svc = sl.metadata?.labels?.['kubernetes.io/service-name'];
      if (svc === undefined) continue;
      const key = `${sl.metadata?.namespace}/${svc}`;
      const list = slicesByService.get(key) ?? [];
      list.push(sl);
      slicesByService.set(key, list);
    }
    const serviceObjects = this.cached('services');
    const services: ServiceEntry[] = [];
    for (const svc of serviceObjects) {
      const e = serviceEntry(svc, slicesByService.get(`${svc.metadata?.namespace}/${svc.metadata?.name}`) ?? []);
      if (e !== undefined) services.push(e);
    }
    const { routes, problems } = routeEntriesFrom(
      this.cached('httproutes.gateway.networking.k8s.io'),
      this.cached('grpcroutes.gateway.networking.k8s.io'),
      serviceObjects,
    );
    const policy = policyEntriesFrom(
      Object.fromEntries((Object.keys(POLICY_PLURALS) as PolicyKindName[]).map((k) => [k, this.cached(policyKey(k))])),
    );
    const leftOut = new Map<string, string[]>([...problems, ...policy.problems]);
    for (const [object, list] of leftOut) {
      const text = list.join('; ');
      if (this.problems.get(object) !== text)
        this.log.warn({ object, problems: list }, 'object left out: not valid for outrigger');
      this.problems.set(object, text);
    }
    // Fixed or deleted: say so again if it comes back broken.
    for (const object of [...this.problems.keys()]) if (!leftOut.has(object)) this.problems.delete(object);
    services.sort(byNamespaceName);
    pods.sort(byNamespaceName);
    const next: StoreSnapshot = freeze({
      version: this.current.version + 1,
      services,
      pods,
      ...(routes.length > 0 ? { routes } : {}),
      ...(policy.count > 0 ? { policy: policy.policy } : {}),
    });
    this.current = next;
    for (const fn of [...this.subscribers]) {
      try {
        fn(next);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'store subscriber failed');
      }
    }
  }

  snapshot(): StoreSnapshot {
    return this.current;
  }

  subscribe(fn: (s: StoreSnapshot) => void): () => void {
    const entry = (s: StoreSnapshot) => fn(s);
    this.subscribers.add(entry);
    return () => void this.subscribers.delete(entry);
  }

  /** The resourceVersion each informer has reached (its list, events and bookmarks), and whether a
   *  snapshot is still to be computed from them: with the API server's current resourceVersion, tells
   *  when the snapshot has caught up (tests, debugging). Each resource's watch is its own stream, so
   *  between two events of different resources a snapshot may hold one and not yet the other. */
  progress(): { readonly resourceVersions: Readonly<Record<string, string>>; readonly pending: boolean } {
    return {
      resourceVersions: Object.fromEntries(
        this.watched.map((w) => [
          w.resource.key,
          (w.informer as unknown as { latestResourceVersion(): string }).latestResourceVersion(),
        ]),
      ),
      pending: this.pending !== undefined,
    };
  }

  /** The raw cached objects of a resource (`check`, debugging). */
  objects(key: string): readonly ApiObject[] {
    return this.cached(key);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.pending);
    clearInterval(this.resync);
    for (const w of this.watched) {
      clearTimeout(w.timer);
      await w.informer.stop();
    }
  }
}
