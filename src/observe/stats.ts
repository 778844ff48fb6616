// The golden metrics of a mesh, aggregated from the proxies' own counters over a window: per pod and
// per workload (Deployment, or a bare pod) as its proxies' inbound side saw them, per Service as its
// clients' outbound side saw them, per edge (client workload → Service, client workload → workload),
// and per route. An edge is measured where it starts: an outbound series of pod A whose target_addr is
// a Service's virtual IP (or a pod's IP) is A's traffic to that Service (or pod). When a Service is
// served by several workloads (a canary), the proxies' `route_*` series with `dst_deployment` say
// which got what; without them the split is estimated from each workload's inbound rate, and the
// edge says so (`estimated`).
import { matchesMap } from '../manifests/labels.js';
import type { RouteView } from '../manifests/types.js';
import { histogramQuantile } from './quantile.js';
import type { MetricsHistory, PodWindow } from './history.js';

/** The part of the mesh's status the aggregation needs (MeshStatus satisfies it). */
export interface Topology {
  readonly pods: readonly {
    readonly namespace: string;
    readonly name: string;
    readonly ip: string;
    readonly deployment?: string;
    readonly meshed: boolean;
    readonly ready: boolean;
    readonly labels: Readonly<Record<string, string>>;
  }[];
  readonly services: readonly {
    readonly namespace: string;
    readonly name: string;
    readonly clusterIP: string;
    readonly selector: Readonly<Record<string, string>>;
  }[];
  readonly routes?: readonly RouteView[];
}

export type { RouteView };

export type ResourceKind = 'deploy' | 'pod' | 'svc';

export interface Ref {
  readonly kind: ResourceKind;
  readonly namespace: string;
  readonly name: string;
}

/** Golden metrics of one thing over the window. Rates per second; latencies in ms; null: no requests. */
export interface Golden {
  readonly requests: number;
  readonly rps: number;
  readonly successRate: number | null;
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  /** TCP connections open now (HTTP and opaque). */
  readonly tcpConnections: number;
  /** Opaque and HTTP bytes per second through the proxies (read + written). */
  readonly tcpBytesPerSec: number;
  /** Retries per second the callers' proxies made (route retry policies; outbound figures only). */
  readonly retryRps: number;
}

export interface StatRow extends Ref, Golden {
  /** Pods with a proxy, and pods in all. */
  readonly meshed: number;
  readonly pods: number;
  /** The proxies' CPU (cores, summed over pods) and resident memory (bytes, summed); absent for Services. */
  readonly proxyCpu?: number;
  readonly proxyMemory?: number;
}

export interface Edge extends Golden {
  readonly from: Ref;
  readonly to: Ref;
  /** The Service the traffic was addressed to (workload edges through a Service). */
  readonly via?: string;
  /** The split of a Service's traffic between its workloads is inferred (no route_* dst labels). */
  readonly estimated?: boolean;
}

export interface RouteRow extends Golden {
  readonly namespace: string;
  /** `namespace/name` of the route, or `[default]` for the Service's traffic that matched none. */
  readonly route: string;
  readonly kind: string;
  readonly service: string;
  readonly backends: readonly {
    readonly service: string;
    readonly weight: number;
    readonly share: number | null;
    readonly rps: number;
    readonly estimated: boolean;
  }[];
}

export interface ObserveSnapshot {
  /** When it was computed (ms since the epoch). */
  readonly at: number;
  /** The window asked for, and the span the figures really cover (shorter while history builds up). */
  readonly windowSec: number;
  readonly spanSec: number;
  readonly scrapeIntervalSec: number;
  /** Deployments, and pods no Deployment owns, each as one workload. */
  readonly workloads: readonly StatRow[];
  readonly pods: readonly StatRow[];
  readonly services: readonly StatRow[];
  /** Workload → Service (exact, measured at the client). */
  readonly serviceEdges: readonly Edge[];
  /** Workload → workload (through Services: exact with dst labels, else estimated). */
  readonly edges: readonly Edge[];
  readonly routes: readonly RouteRow[];
  /** Pods whose proxy could not be scraped, and why. */
  readonly scrapeErrors: Readonly<Record<string, string>>;
}

/** Accumulates rates and latency counts. */
class Acc {
  requests = 0;
  rps = 0;
  successRps = 0;
  tcp = 0;
  bytesPerSec = 0;
  retryRps = 0;
  readonly buckets = new Map<number, number>();

  addResponses(increase: number, spanSec: number, success: boolean): void {
    this.requests += increase;
    if (spanSec <= 0) return;
    this.rps += increase / spanSec;
    if (success) this.successRps += increase / spanSec;
  }

  addBucket(le: number, increase: number): void {
    this.buckets.set(le, (this.buckets.get(le) ?? 0) + increase);
  }

  merge(o: Acc, factor = 1): void {
    this.requests += o.requests * factor;
    this.rps += o.rps * factor;
    this.successRps += o.successRps * factor;
    this.tcp += o.tcp * factor;
    this.bytesPerSec += o.bytesPerSec * factor;
    this.retryRps += o.retryRps * factor;
    for (const [le, n] of o.buckets) this.addBucket(le, n * factor);
  }

  golden(): Golden {
    const q = (x: number) => {
      const v = histogramQuantile(x, this.buckets);
      return v === undefined ? null : round(v, 2);
    };
    return {
      requests: Math.round(this.requests),
      rps: round(this.rps, 3),
      successRate: this.rps > 0 ? round(this.successRps / this.rps, 4) : null,
      p50: q(0.5),
      p95: q(0.95),
      p99: q(0.99),
      tcpConnections: Math.round(this.tcp),
      tcpBytesPerSec: Math.round(this.bytesPerSec),
      retryRps: round(this.retryRps, 3),
    };
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const RESPONSE = 'response_total';
const LATENCY = 'response_latency_ms_bucket';
const ROUTE_RESPONSE = 'route_response_total';
const ROUTE_LATENCY = 'route_response_latency_ms_bucket';

/** The metric names the aggregation reads (the scraper keeps only these). */
export const OBSERVED_METRICS: ReadonlySet<string> = new Set([
  RESPONSE,
  LATENCY,
  ROUTE_RESPONSE,
  ROUTE_LATENCY,
  'tcp_open_connections',
  'tcp_read_bytes_total',
  'tcp_write_bytes_total',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'retry_total',
]);

function isSuccess(labels: Readonly<Record<string, string>>): boolean {
  if (labels.classification !== undefined) return labels.classification === 'success';
  const code = Number(labels.status_code);
  return code > 0 && code < 500;
}

const wkey = (r: Ref) => `${r.kind}/${r.namespace}/${r.name}`;

function accFor<K>(m: Map<K, Acc>, k: K): Acc {
  let a = m.get(k);
  if (a === undefined) m.set(k, (a = new Acc()));
  return a;
}

/** Aggregates the history over the window ending now. */
export function aggregate(
  topo: Topology,
  history: MetricsHistory,
  o: { now: number; windowSec: number; scrapeIntervalSec: number; scrapeErrors?: Readonly<Record<string, string>> },
): ObserveSnapshot {
  const podKey = (p: { namespace: string; name: string }) => `${p.namespace}/${p.name}`;
  const workloadOf = (p: Topology['pods'][number]): Ref =>
    p.deployment !== undefined
      ? { kind: 'deploy', namespace: p.namespace, name: p.deployment }
      : { kind: 'pod', namespace: p.namespace, name: p.name };
  const svcByIp = new Map(topo.services.filter((s) => s.clusterIP !== '').map((s) => [s.clusterIP, s]));
  const podByIp = new Map(topo.pods.map((p) => [p.ip, p]));
  const selects = (s: Topology['services'][number], p: Topology['pods'][number]) =>
    p.namespace === s.namespace && matchesMap(s.selector, p.labels);

  const podIn = new Map<string, Acc>();
  const podCpu = new Map<string, number>();
  const podMem = new Map<string, number>();
  /** workload key → Service key → outbound acc. */
  const toService = new Map<string, Map<string, Acc>>();
  /** workload key → workload key (direct pod-IP traffic) → acc. */
  const toWorkload = new Map<string, Map<string, Acc>>();
  /** `route\0svcKey` → acc (outbound, every client). */
  const routeAcc = new Map<string, Acc>();
  /** src workload key → svc key → dst deployment key → acc, from route_* series with dst labels. */
  const exact = new Map<string, Map<string, Map<string, Acc>>>();
  /** svc key → dst_service → rps, from route_response_total (which backend Service answered). */
  const exactBackends = new Map<string, Map<string, number>>();
  let span = 0;

  const windows = new Map<string, PodWindow>();
  for (const p of topo.pods) {
    const w = history.window(podKey(p), o.now, o.windowSec * 1000);
    if (w !== undefined) windows.set(podKey(p), w);
  }

  for (const p of topo.pods) {
    const w = windows.get(podKey(p));
    if (w === undefined) continue;
    span = Math.max(span, w.spanSec);
    const src = wkey(workloadOf(p));
    const inbound = accFor(podIn, podKey(p));
    for (const { s, increase, latest } of w.series) {
      const l = s.labels;
      if (s.name === 'process_cpu_seconds_total') {
        if (w.spanSec > 0) podCpu.set(podKey(p), increase / w.spanSec);
        continue;
      }
      if (s.name === 'process_resident_memory_bytes') {
        if (!Number.isNaN(latest)) podMem.set(podKey(p), latest);
        continue;
      }
      const target = l.target_addr ?? '';
      const ip = target.slice(0, target.lastIndexOf(':'));
      const svc = svcByIp.get(ip);
      const dstPod = svc === undefined ? podByIp.get(ip) : undefined;
      // Where an outbound series goes: the Service's acc (and its route's), or the pod's workload's.
      const outAccs = (): Acc[] => {
        const out: Acc[] = [];
        if (svc !== undefined) {
          let m = toService.get(src);
          if (m === undefined) toService.set(src, (m = new Map()));
          out.push(accFor(m, podKey(svc)));
          // Unrouted requests: no route label, or (the route_* era) route="default" or "".
          const route = l.route === undefined || l.route === '' || l.route === 'default' ? '[default]' : l.route;
          out.push(accFor(routeAcc, `${route}\0${podKey(svc)}`));
        } else if (dstPod !== undefined) {
          let m = toWorkload.get(src);
          if (m === undefined) toWorkload.set(src, (m = new Map()));
          out.push(accFor(m, wkey(workloadOf(dstPod))));
        }
        return out;
      };
      switch (s.name) {
        case RESPONSE:
          if (l.direction === 'inbound') inbound.addResponses(increase, w.spanSec, isSuccess(l));
          else if (l.direction === 'outbound')
            for (const a of outAccs()) a.addResponses(increase, w.spanSec, isSuccess(l));
          break;
        case LATENCY: {
          const le = l.le === '+Inf' ? Infinity : Number(l.le);
          if (l.direction === 'inbound') inbound.addBucket(le, increase);
          else if (l.direction === 'outbound') for (const a of outAccs()) a.addBucket(le, increase);
          break;
        }
        case 'tcp_open_connections':
          if (Number.isNaN(latest)) break;
          if (l.direction === 'inbound') inbound.tcp += latest;
          else if (l.direction === 'outbound') for (const a of outAccs().slice(0, 1)) a.tcp += latest;
          break;
        case 'tcp_read_bytes_total':
        case 'tcp_write_bytes_total':
          if (w.spanSec <= 0) break;
          if (l.direction === 'inbound') inbound.bytesPerSec += increase / w.spanSec;
          else if (l.direction === 'outbound')
            for (const a of outAccs().slice(0, 1)) a.bytesPerSec += increase / w.spanSec;
          break;
        case 'retry_total':
          if (l.direction === 'outbound' && w.spanSec > 0)
            for (const a of outAccs()) a.retryRps += increase / w.spanSec;
          break;
        case ROUTE_RESPONSE:
        case ROUTE_LATENCY: {
          if (
            s.name === ROUTE_RESPONSE &&
            l.direction === 'outbound' &&
            svc !== undefined &&
            l.dst_service !== undefined &&
            l.dst_service !== '' &&
            w.spanSec > 0
          ) {
            let m = exactBackends.get(podKey(svc));
            if (m === undefined) exactBackends.set(podKey(svc), (m = new Map()));
            m.set(l.dst_service, (m.get(l.dst_service) ?? 0) + increase / w.spanSec);
          }
          // The other proxy-side labels say exactly which workload answered a Service's request.
          if (
            l.direction !== 'outbound' ||
            svc === undefined ||
            l.dst_deployment === undefined ||
            l.dst_deployment === ''
          )
            break;
          let bySvc = exact.get(src);
          if (bySvc === undefined) exact.set(src, (bySvc = new Map()));
          let byDst = bySvc.get(podKey(svc));
          if (byDst === undefined) bySvc.set(podKey(svc), (byDst = new Map()));
          const a = accFor(
            byDst,
            wkey({ kind: 'deploy', namespace: l.dst_namespace || svc.namespace, name: l.dst_deployment }),
          );
          if (s.name === ROUTE_RESPONSE) a.addResponses(increase, w.spanSec, isSuccess(l));
          else a.addBucket(l.le === '+Inf' ? Infinity : Number(l.le), increase);
          break;
        }
      }
    }
  }

  // Rows: pods, workloads (their pods' inbound), Services (their clients' outbound).
  const podRows: StatRow[] = topo.pods.map((p) => {
    const a = podIn.get(podKey(p)) ?? new Acc();
    return {
      kind: 'pod',
      namespace: p.namespace,
      name: p.name,
      meshed: p.meshed ? 1 : 0,
      pods: 1,
      ...a.golden(),
      ...(p.meshed && podCpu.has(podKey(p)) ? { proxyCpu: round(podCpu.get(podKey(p)) ?? 0, 4) } : {}),
      ...(p.meshed && podMem.has(podKey(p)) ? { proxyMemory: podMem.get(podKey(p)) ?? 0 } : {}),
    };
  });
  const workloads = new Map<
    string,
    { ref: Ref; acc: Acc; meshed: number; pods: number; cpu: number; mem: number; metered: boolean }
  >();
  for (const p of topo.pods) {
    const ref = workloadOf(p);
    let w = workloads.get(wkey(ref));
    if (w === undefined)
      workloads.set(wkey(ref), (w = { ref, acc: new Acc(), meshed: 0, pods: 0, cpu: 0, mem: 0, metered: false }));
    w.pods++;
    if (p.meshed) w.meshed++;
    const a = podIn.get(podKey(p));
    if (a !== undefined) w.acc.merge(a);
    if (podMem.has(podKey(p))) {
      w.metered = true;
      w.cpu += podCpu.get(podKey(p)) ?? 0;
      w.mem += podMem.get(podKey(p)) ?? 0;
    }
  }
  const workloadRows = (): StatRow[] =>
    [...workloads.values()].map((w) => ({
      ...w.ref,
      meshed: w.meshed,
      pods: w.pods,
      ...w.acc.golden(),
      ...(w.metered ? { proxyCpu: round(w.cpu, 4), proxyMemory: w.mem } : {}),
    }));

  const svcAcc = new Map<string, Acc>();
  for (const bySvc of toService.values()) for (const [k, a] of bySvc) accFor(svcAcc, k).merge(a);
  const serviceRows: StatRow[] = topo.services.map((s) => {
    const backing = topo.pods.filter((p) => selects(s, p));
    return {
      kind: 'svc',
      namespace: s.namespace,
      name: s.name,
      meshed: backing.filter((p) => p.meshed).length,
      pods: backing.length,
      ...(svcAcc.get(podKey(s)) ?? new Acc()).golden(),
    };
  });

  // Edges.
  const refOf = (key: string): Ref => {
    const [kind, namespace, ...rest] = key.split('/');
    return { kind: kind as ResourceKind, namespace: namespace ?? '', name: rest.join('/') };
  };
  const serviceEdges: Edge[] = [];
  const edges: Edge[] = [];
  const inboundOf = (wk: string) => workloads.get(wk)?.acc.rps ?? 0;
  for (const [src, bySvc] of toService) {
    for (const [sk, a] of bySvc) {
      const s = topo.services.find((x) => podKey(x) === sk);
      if (s === undefined) continue;
      serviceEdges.push({ from: refOf(src), to: { kind: 'svc', namespace: s.namespace, name: s.name }, ...a.golden() });
      const known = exact.get(src)?.get(sk);
      if (known !== undefined && known.size > 0) {
        for (const [dst, da] of known) edges.push({ from: refOf(src), to: refOf(dst), via: s.name, ...da.golden() });
        continue;
      }
      const dsts = [...new Set(topo.pods.filter((p) => selects(s, p)).map((p) => wkey(workloadOf(p))))];
      if (dsts.length === 0) continue;
      const weights = dsts.map(inboundOf);
      const total = weights.reduce((x, y) => x + y, 0);
      dsts.forEach((dst, i) => {
        const share = total > 0 ? (weights[i] ?? 0) / total : 1 / dsts.length;
        if (dsts.length > 1 && share === 0) return;
        const part = new Acc();
        part.merge(a, share);
        edges.push({
          from: refOf(src),
          to: refOf(dst),
          via: s.name,
          ...part.golden(),
          ...(dsts.length > 1 ? { estimated: true } : {}),
        });
      });
    }
  }
  for (const [src, byDst] of toWorkload)
    for (const [dst, a] of byDst) edges.push({ from: refOf(src), to: refOf(dst), ...a.golden() });

  // Routes: each route attached to a Service, and the Service's traffic no route matched.
  const routes: RouteRow[] = [];
  const routeViews = topo.routes ?? [];
  for (const [k, a] of routeAcc) {
    // A Service's traffic that matched no route is only a row when there was some.
    if (k.startsWith('[default]\0') && a.requests === 0) continue;
    const [route, sk] = k.split('\0') as [string, string];
    const [namespace, service] = sk.split('/') as [string, string];
    const view = routeViews.find((r) => `${r.namespace}/${r.name}` === route);
    const backendShare = (svcName: string) => {
      const s = topo.services.find((x) => x.namespace === namespace && x.name === svcName);
      if (s === undefined) return 0;
      const dsts = new Set(topo.pods.filter((p) => selects(s, p)).map((p) => wkey(workloadOf(p))));
      return [...dsts].reduce((n, d) => n + inboundOf(d), 0);
    };
    const totalWeight = view?.backends.reduce((n, b) => n + b.weight, 0) ?? 0;
    // Exact when the proxies label which backend Service answered (route_* dst_service), else estimated.
    const known = exactBackends.get(sk);
    const exactShares = known !== undefined && view !== undefined && view.backends.some((b) => known.has(b.service));
    const measured =
      view?.backends.map((b) => (exactShares ? (known?.get(b.service) ?? 0) : backendShare(b.service))) ?? [];
    const measuredTotal = measured.reduce((x, y) => x + y, 0);
    const g = a.golden();
    routes.push({
      namespace,
      route,
      kind: view?.kind ?? (route === '[default]' ? '' : 'HTTPRoute'),
      service,
      ...g,
      backends: (view?.backends ?? []).map((b, i) => {
        const share = measuredTotal > 0 ? (measured[i] ?? 0) / measuredTotal : null;
        return {
          service: b.service,
          weight: totalWeight > 0 ? round(b.weight / totalWeight, 4) : 0,
          share: share === null ? null : round(share, 4),
          rps: share === null ? 0 : round(g.rps * share, 3),
          estimated: !exactShares,
        };
      }),
    });
  }
  routes.sort((x, y) => x.service.localeCompare(y.service) || x.route.localeCompare(y.route));

  return {
    at: o.now,
    windowSec: o.windowSec,
    spanSec: round(span, 1),
    scrapeIntervalSec: o.scrapeIntervalSec,
    workloads: workloadRows(),
    pods: podRows,
    services: serviceRows,
    serviceEdges,
    edges,
    routes,
    scrapeErrors: o.scrapeErrors ?? {},
  };
}
