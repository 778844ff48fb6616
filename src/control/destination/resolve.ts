// What the destination service answers for a path, computed from one store snapshot: the parsing of
// paths (an IP and port, or a Service authority) and the answer (known?, the Service, its ready
// endpoints with identity and protocol hints). Pure functions, so every rule is tested without gRPC.
import { isIP } from 'node:net';
import type {
  Backend,
  Endpoint,
  Filter,
  Match,
  PathModifier,
  ProtocolHint,
  Route,
  Rule,
  Update,
} from '../../api/destination.js';
import { isPort, parseAddr } from '../../core/addr.js';
import { portListHas } from '../../core/ports.js';
import { PROXY_OWN_PORTS } from '../../manifests/contract.js';
import { podServers } from '../policy/servers.js';
import type {
  PathModifierEntry,
  PodEntry,
  RouteEntry,
  RouteFilterEntry,
  RouteMatchEntry,
  RouteRuleEntry,
  ServiceEntry,
  ServicePortEntry,
  StoreSnapshot,
} from '../store/store.js';

export const CLUSTER_DOMAIN = 'cluster.local';
/** Longer paths are refused: nothing real is this long (a DNS name is at most 253 characters). */
const MAX_PATH_LENGTH = 300;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export type Target =
  | { readonly kind: 'ip'; readonly ip: string; readonly port: number }
  /** A Service by name (`name.ns`, `name.ns.svc` or `name.ns.svc.cluster.local`). */
  | { readonly kind: 'name'; readonly namespace: string; readonly name: string; readonly port: number }
  /** A well-formed DNS name that is not a cluster Service name (e.g. example.com:443): a fair question
   *  whose answer is "not known to the mesh", not a bad request. */
  | { readonly kind: 'external'; readonly host: string; readonly port: number };

export type ParsedPath = { ok: true; target: Target } | { ok: false; message: string };

const EXPECTED = 'expected ip:port or name.namespace[.svc[.cluster.local]]:port';

/** Parses a GetDestination path. Errors are lower case and name the path. */
export function parsePath(path: string): ParsedPath {
  const shown = JSON.stringify(path.length > 80 ? `${path.slice(0, 80)}...` : path);
  const bad = (why: string): ParsedPath => ({ ok: false, message: `path ${shown}: ${why}` });
  if (path.length === 0) return bad(`empty (${EXPECTED})`);
  if (path.length > MAX_PATH_LENGTH) return bad(`longer than ${MAX_PATH_LENGTH} characters`);
  const colon = path.lastIndexOf(':');
  if (colon === -1) return bad(`no port (${EXPECTED})`);
  const portText = path.slice(colon + 1);
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!isPort(port)) return bad(`port ${JSON.stringify(portText)} is not a number from 1 to 65535`);

  const addr = parseAddr(path);
  if (path.startsWith('[')) {
    if (!addr || isIP(addr.host) !== 6) return bad(`not an ipv6 address in brackets (${EXPECTED})`);
    return { ok: true, target: { kind: 'ip', ip: addr.host.toLowerCase(), port } };
  }
  const host = path.slice(0, colon).toLowerCase().replace(/\.$/, '');
  if (isIP(host) === 4) return { ok: true, target: { kind: 'ip', ip: host, port } };
  if (/^[0-9.]+$/.test(host)) return bad('not a valid ipv4 address');
  if (host.includes(':')) return bad(`an ipv6 address must be in brackets, as [addr]:port (${EXPECTED})`);
  if (host.length > 253) return bad('the host name is longer than 253 characters');
  const labels = host.split('.');
  const badLabel = labels.find((l) => !DNS_LABEL.test(l));
  if (badLabel !== undefined) {
    return bad(`${JSON.stringify(badLabel)} is not a dns label (lower-case letters, digits and '-', at most 63)`);
  }
  if (labels.length === 1) return bad(`a service name needs its namespace: ${host}.<namespace>:${port}`);
  const [name, namespace, ...rest] = labels as [string, string, ...string[]];
  const suffix = rest.join('.');
  if (suffix === '' || suffix === 'svc' || suffix === `svc.${CLUSTER_DOMAIN}`) {
    return { ok: true, target: { kind: 'name', namespace, name, port } };
  }
  return { ok: true, target: { kind: 'external', host, port } };
}

/** Lookups over one snapshot, built once and shared by every stream that reads it. */
export interface SnapshotIndex {
  readonly servicesByIP: ReadonlyMap<string, ServiceEntry>;
  readonly servicesByName: ReadonlyMap<string, ServiceEntry>;
  readonly podsByIP: ReadonlyMap<string, PodEntry>;
  readonly podsByKey: ReadonlyMap<string, PodEntry>;
  /** `podIP:podPort` → the Service port that leads there (the first one that says anything about its
   *  protocol), for the hint of answers about a pod IP. */
  readonly servicePortByPodPort: ReadonlyMap<string, ServicePortEntry>;
  /** `namespace/name` of a Service → the routes attached to it (any port), in the snapshot's order. */
  readonly routesByService: ReadonlyMap<string, readonly RouteEntry[]>;
  /** `podIP:podPort` of every port a Server declares opaque (proxyProtocol: opaque). */
  readonly opaqueByServer: ReadonlySet<string>;
}

/** `ip:port`, or `[ip]:port` for IPv6 (the form of Endpoint.addr). */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

const indexes = new WeakMap<StoreSnapshot, SnapshotIndex>();

export function indexSnapshot(s: StoreSnapshot): SnapshotIndex {
  let idx = indexes.get(s);
  if (idx) return idx;
  const servicesByIP = new Map<string, ServiceEntry>();
  const servicesByName = new Map<string, ServiceEntry>();
  const servicePortByPodPort = new Map<string, ServicePortEntry>();
  for (const svc of s.services) {
    if (svc.clusterIP !== '') servicesByIP.set(svc.clusterIP.toLowerCase(), svc);
    servicesByName.set(`${svc.namespace}/${svc.name}`, svc);
    for (const p of svc.ports) {
      if (p.appProtocol === undefined && p.opaque !== true) continue;
      for (const ep of svc.endpoints) {
        const target = ep.ports[p.port];
        if (target !== undefined) {
          const key = hostPort(ep.ip.toLowerCase(), target);
          if (!servicePortByPodPort.has(key)) servicePortByPodPort.set(key, p);
        }
      }
    }
  }
  const podsByIP = new Map<string, PodEntry>();
  const podsByKey = new Map<string, PodEntry>();
  for (const p of s.pods) {
    podsByKey.set(`${p.namespace}/${p.name}`, p);
    // Two pods may briefly share an IP (one terminating, its successor starting): prefer the ready one.
    const ip = p.ip.toLowerCase();
    const other = podsByIP.get(ip);
    if (ip !== '' && (other === undefined || (!other.ready && p.ready))) podsByIP.set(ip, p);
  }
  const routesByService = new Map<string, RouteEntry[]>();
  for (const r of s.routes ?? []) {
    for (const name of new Set(r.parents.filter((p) => p.kind !== 'Server').map((p) => p.name))) {
      const key = `${r.namespace}/${name}`;
      let list = routesByService.get(key);
      if (list === undefined) routesByService.set(key, (list = []));
      list.push(r);
    }
  }
  const opaqueByServer = new Set<string>();
  if (s.policy !== undefined && s.policy.servers.some((x) => x.proxyProtocol === 'opaque')) {
    for (const p of s.pods) {
      for (const [port, server] of podServers(s.policy, p))
        if (server.proxyProtocol === 'opaque') opaqueByServer.add(hostPort(p.ip.toLowerCase(), port));
    }
  }
  idx = { servicesByIP, servicesByName, podsByIP, podsByKey, servicePortByPodPort, routesByService, opaqueByServer };
  indexes.set(s, idx);
  return idx;
}

export function serviceAuthority(svc: ServiceEntry, port: number): string {
  return `${svc.name}.${svc.namespace}.svc.${CLUSTER_DOMAIN}:${port}`;
}

export function spiffeId(trustDomain: string, pod: PodEntry): string {
  return `spiffe://${trustDomain}/ns/${pod.namespace}/sa/${pod.serviceAccount}`;
}

/** The hint for a Service port's appProtocol (Kubernetes' and the common short names). */
export function protocolHintOf(appProtocol: string | undefined): ProtocolHint {
  switch (appProtocol?.toLowerCase()) {
    case 'kubernetes.io/h2c':
    case 'h2c':
    case 'grpc':
      return 'H2';
    case 'http':
      return 'HTTP1';
    default:
      return 'UNKNOWN';
  }
}

function endpointFor(
  idx: SnapshotIndex,
  trustDomain: string,
  podKey: string,
  pod: PodEntry | undefined,
  ip: string,
  port: number,
  svcPort: ServicePortEntry | undefined,
): Endpoint {
  // A pod missing from the snapshot (the two lists are computed together, so only for a moment) is
  // treated as unmeshed: without its service account there is no identity to verify. The proxy's own
  // ports (its admin server: probes, metrics) are never redirected to its inbound side and speak no mesh
  // TLS: a client proxy reaches them as it would an unmeshed pod.
  const meshed = pod?.meshed === true && !PROXY_OWN_PORTS.includes(port);
  return {
    addr: hostPort(ip, port),
    weight: 1,
    identity: meshed && pod ? spiffeId(trustDomain, pod) : '',
    // Opaque wins: the pod's proxy will not detect a protocol on that port, so neither may the client.
    // (or a Server covering the port says proxyProtocol: opaque).
    protocol_hint:
      svcPort?.opaque === true ||
      (pod && portListHas(pod.opaquePorts, port)) ||
      idx.opaqueByServer.has(hostPort(ip.toLowerCase(), port))
        ? 'OPAQUE'
        : protocolHintOf(svcPort?.appProtocol),
    meshed,
    pod: podKey,
    ...(pod?.workload !== undefined && pod.workload !== '' ? { workload: pod.workload } : {}),
  };
}

const UNKNOWN: Update = Object.freeze({ known: false, service: '', endpoints: [] }) as Update;

function readyEndpoints(
  idx: SnapshotIndex,
  trustDomain: string,
  svc: ServiceEntry,
  port: ServicePortEntry,
): Endpoint[] {
  const endpoints: Endpoint[] = [];
  for (const ep of svc.endpoints) {
    if (!ep.ready) continue;
    const target = ep.ports[port.port];
    // A named targetPort the pod does not declare leaves the pod out, as Kubernetes does.
    if (target === undefined) continue;
    endpoints.push(endpointFor(idx, trustDomain, ep.pod, idx.podsByKey.get(ep.pod), ep.ip, target, port));
  }
  endpoints.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  return endpoints;
}

function serviceAnswer(idx: SnapshotIndex, trustDomain: string, svc: ServiceEntry, port: ServicePortEntry): Update {
  const update: Update = {
    known: true,
    service: serviceAuthority(svc, port.port),
    endpoints: readyEndpoints(idx, trustDomain, svc, port),
  };
  const attached = (idx.routesByService.get(`${svc.namespace}/${svc.name}`) ?? []).filter((r) =>
    r.parents.some((p) => p.kind !== 'Server' && p.name === svc.name && (p.port === undefined || p.port === port.port)),
  );
  if (attached.length === 0) return update;
  // Every Service port the routes name, answered once (rules refer to it by its authority).
  const backends = new Map<string, Backend>();
  const backend = (namespace: string, name: string, portNumber: number): string => {
    const target = idx.servicesByName.get(`${namespace}/${name}`);
    const authority = `${name}.${namespace}.svc.${CLUSTER_DOMAIN}:${portNumber}`;
    if (!backends.has(authority)) {
      const p = target?.ports.find((sp) => sp.port === portNumber);
      backends.set(authority, {
        service: authority,
        exists: target !== undefined && p !== undefined,
        endpoints: target !== undefined && p !== undefined ? readyEndpoints(idx, trustDomain, target, p) : [],
      });
    }
    return authority;
  };
  const routes = attached.map((r): Route => ({
    kind: r.kind === 'GRPCRoute' ? 'GRPC' : 'HTTP',
    name: `${r.namespace}/${r.name}`,
    rules: r.rules.map((rule) => ruleMessage(rule, (name, p) => backend(r.namespace, name, p))),
  }));
  const sorted = [...backends.values()].sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  return { ...update, routes, backends: sorted };
}

const PATH_TYPE = { Exact: 'EXACT', PathPrefix: 'PREFIX', RegularExpression: 'REGEX' } as const;
const VALUE_TYPE = { Exact: 'EXACT', RegularExpression: 'REGEX' } as const;

function ruleMessage(rule: RouteRuleEntry, backend: (name: string, port: number) => string): Rule {
  const r = rule.retry;
  return {
    name: rule.name ?? '',
    matches: rule.matches.map(matchMessage),
    filters: rule.filters.map((f) => filterMessage(f, backend)),
    backends: rule.backends.map((b) => ({ backend: backend(b.name, b.port), weight: b.weight })),
    request_timeout_ms: rule.requestTimeoutMs ?? 0,
    backend_request_timeout_ms: rule.backendRequestTimeoutMs ?? 0,
    ...(r !== undefined
      ? {
          retry: {
            attempts: r.attempts,
            statuses: r.statuses.map(([from, to]) => ({ from, to })),
            grpc_codes: [...r.grpcCodes],
            connect_failure: r.connectFailure,
            reset: r.reset,
            timeout: r.timeout,
          },
        }
      : {}),
  };
}

export function matchMessage(m: RouteMatchEntry): Match {
  const value = (v: { type: 'Exact' | 'RegularExpression'; name: string; value: string }) => ({
    type: VALUE_TYPE[v.type],
    name: v.name,
    value: v.value,
  });
  return {
    ...(m.path !== undefined ? { path: { type: PATH_TYPE[m.path.type], value: m.path.value } } : {}),
    method: m.method ?? '',
    headers: m.headers.map(value),
    query_params: m.queryParams.map(value),
    ...(m.grpcMethod !== undefined
      ? {
          grpc_method: {
            type: VALUE_TYPE[m.grpcMethod.type],
            service: m.grpcMethod.service ?? '',
            method: m.grpcMethod.method ?? '',
          },
        }
      : {}),
  };
}

function pathModifierMessage(p: PathModifierEntry | undefined): { path?: PathModifier } {
  return p === undefined
    ? {}
    : { path: { type: p.type === 'ReplaceFullPath' ? 'REPLACE_FULL_PATH' : 'REPLACE_PREFIX_MATCH', value: p.value } };
}

function filterMessage(f: RouteFilterEntry, backend: (name: string, port: number) => string): Filter {
  switch (f.type) {
    case 'RequestHeaderModifier':
    case 'ResponseHeaderModifier':
      return {
        type: f.type === 'RequestHeaderModifier' ? 'REQUEST_HEADER_MODIFIER' : 'RESPONSE_HEADER_MODIFIER',
        header_modifier: {
          set: f.set.map((h) => ({ ...h })),
          add: f.add.map((h) => ({ ...h })),
          remove: [...f.remove],
        },
      };
    case 'RequestMirror':
      return {
        type: 'REQUEST_MIRROR',
        mirror: {
          backend: backend(f.backend.name, f.backend.port),
          numerator: f.numerator,
          denominator: f.denominator,
        },
      };
    case 'URLRewrite':
      return { type: 'URL_REWRITE', url_rewrite: { hostname: f.hostname ?? '', ...pathModifierMessage(f.path) } };
    case 'RequestRedirect':
      return {
        type: 'REQUEST_REDIRECT',
        redirect: {
          scheme: f.scheme ?? '',
          hostname: f.hostname ?? '',
          ...pathModifierMessage(f.path),
          port: f.port ?? 0,
          status_code: f.statusCode,
        },
      };
  }
}

/** The answer for `target` in snapshot `s`. */
export function answer(s: StoreSnapshot, target: Target, trustDomain: string): Update {
  if (target.kind === 'external') return UNKNOWN;
  const idx = indexSnapshot(s);
  if (target.kind === 'name') {
    const svc = idx.servicesByName.get(`${target.namespace}/${target.name}`);
    const port = svc?.ports.find((p) => p.port === target.port);
    return svc && port ? serviceAnswer(idx, trustDomain, svc, port) : UNKNOWN;
  }
  const svc = idx.servicesByIP.get(target.ip);
  if (svc) {
    // A Service IP on a port the Service does not have leads nowhere; passthrough says so honestly.
    const port = svc.ports.find((p) => p.port === target.port);
    return port ? serviceAnswer(idx, trustDomain, svc, port) : UNKNOWN;
  }
  const pod = idx.podsByIP.get(target.ip);
  if (pod) {
    // The client chose this pod itself, so it is the endpoint whether or not it is ready (as with a
    // direct connection in Kubernetes); readiness only decides what a Service balances over.
    const key = `${pod.namespace}/${pod.name}`;
    const svcPort = idx.servicePortByPodPort.get(hostPort(target.ip, target.port));
    return {
      known: true,
      service: '',
      endpoints: [endpointFor(idx, trustDomain, key, pod, pod.ip, target.port, svcPort)],
    };
  }
  return UNKNOWN;
}
