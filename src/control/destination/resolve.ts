// What the destination service answers for a path, computed from one store snapshot: the parsing of
// paths (an IP and port, or a Service authority) and the answer (known?, the Service, its ready
// endpoints with identity and protocol hints). Pure functions, so every rule is tested without gRPC.
import { isIP } from 'node:net';
import type { Endpoint, ProtocolHint, Update } from '../../api/destination.js';
import { isPort, parseAddr } from '../../core/addr.js';
import { portListHas } from '../../core/ports.js';
import type { PodEntry, ServiceEntry, ServicePortEntry, StoreSnapshot } from '../store/store.js';

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
  idx = { servicesByIP, servicesByName, podsByIP, podsByKey, servicePortByPodPort };
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

function endpointFor(trustDomain: string, podKey: string, pod: PodEntry | undefined, ip: string, port: number, svcPort: ServicePortEntry | undefined): Endpoint {
  // A pod missing from the snapshot (the two lists are computed together, so only for a moment) is
  // treated as unmeshed: without its service account there is no identity to verify.
  const meshed = pod?.meshed === true;
  return {
    addr: hostPort(ip, port),
    weight: 1,
    identity: meshed && pod ? spiffeId(trustDomain, pod) : '',
    // Opaque wins: the pod's proxy will not detect a protocol on that port, so neither may the client.
    protocol_hint: svcPort?.opaque === true || (pod && portListHas(pod.opaquePorts, port)) ? 'OPAQUE' : protocolHintOf(svcPort?.appProtocol),
    meshed,
    pod: podKey,
  };
}

const UNKNOWN: Update = Object.freeze({ known: false, service: '', endpoints: [] }) as Update;

function serviceAnswer(idx: SnapshotIndex, trustDomain: string, svc: ServiceEntry, port: ServicePortEntry): Update {
  const endpoints: Endpoint[] = [];
  for (const ep of svc.endpoints) {
    if (!ep.ready) continue;
    const target = ep.ports[port.port];
    // A named targetPort the pod does not declare leaves the pod out, as Kubernetes does.
    if (target === undefined) continue;
    endpoints.push(endpointFor(trustDomain, ep.pod, idx.podsByKey.get(ep.pod), ep.ip, target, port));
  }
  endpoints.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  return { known: true, service: serviceAuthority(svc, port.port), endpoints };
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
    return { known: true, service: '', endpoints: [endpointFor(trustDomain, key, pod, pod.ip, target.port, svcPort)] };
  }
  return UNKNOWN;
}
