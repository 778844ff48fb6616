// What the mesh-size scenario's control plane holds: N Services, each with a clusterIP in SERVICE_CIDR
// that nothing listens on (the proxy finds their endpoints through discovery, as --scenario balance
// does with 127.0.0.77) and E ready endpoints, each its own loopback address (127.1.x.y) on the port
// of the one upstream, which listens on 0.0.0.0 in the scenario's network namespace. Plus the pod of
// the proxy under test (its inbound policy is watched, as in a real pod). Pure: tested in
// bench/mesh-size.test.ts.
import type { StoreContent } from '../src/control/store/local/local.js';
import type { PodEntry, ServiceEntry } from '../src/control/store/store.js';

/** How a line of bench/gc-preload.js (in the proxy under test) starts. */
export const GC_LINE = 'outrigger-bench-gc ';

/** The Services' clusterIPs; the scenario's namespace routes it to `lo` and REDIRECTs it to the proxy. */
export const SERVICE_CIDR = '10.96.0.0/16';
/** Every Service's one port (appProtocol http). */
export const SERVICE_PORT = 8080;
export const MESH_NS = 'bench';
/** The pod the proxy under test belongs to. */
export const CLIENT_POD = 'client-0';
/** 65,534 Services fit in SERVICE_CIDR; far more than the scenario needs. */
const MAX_SERVICES = 65_534;

/** The clusterIP of Service i (0-based): 10.96.0.1, 10.96.0.2, ... (never .0.0 or .255.255). */
export function serviceIp(i: number): string {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_SERVICES) throw new Error(`service index ${i} out of range`);
  const n = i + 1;
  return `10.96.${n >> 8}.${n & 255}`;
}

/** The address of endpoint n (0-based over the whole mesh): 127.1.0.1, 127.1.0.2, ... (127.0.0.0/8 is
 *  all local: every one of them reaches a server listening on 0.0.0.0). */
export function endpointIp(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= 254 * 65_536 - 1) throw new Error(`endpoint index ${n} out of range`);
  const m = n + 1;
  return `127.${1 + (m >> 16)}.${(m >> 8) & 255}.${m & 255}`;
}

export const serviceName = (i: number): string => `svc-${i}`;

export interface MeshSpec {
  /** Services in the mesh. */
  readonly services: number;
  readonly endpointsPerService: number;
  /** The upstream's port, where every endpoint leads. */
  readonly upstreamPort: number;
}

/** The store content of a mesh of `services` Services. */
export function meshContent(spec: MeshSpec): StoreContent {
  const services: ServiceEntry[] = [];
  const pods: PodEntry[] = [];
  let n = 0;
  for (let i = 0; i < spec.services; i++) {
    const name = serviceName(i);
    const endpoints: ServiceEntry['endpoints'][number][] = [];
    for (let e = 0; e < spec.endpointsPerService; e++) {
      const pod = `${name}-${e}`;
      const ip = endpointIp(n++);
      endpoints.push({ pod: `${MESH_NS}/${pod}`, ip, ports: { [SERVICE_PORT]: spec.upstreamPort }, ready: true });
      pods.push({
        namespace: MESH_NS,
        name: pod,
        ip,
        ready: true,
        meshed: false,
        serviceAccount: 'default',
        opaquePorts: [],
        labels: { app: name },
        workload: name,
      });
    }
    services.push({
      namespace: MESH_NS,
      name,
      clusterIP: serviceIp(i),
      ports: [{ name: 'http', port: SERVICE_PORT, appProtocol: 'http' }],
      endpoints,
    });
  }
  pods.push({
    namespace: MESH_NS,
    name: CLIENT_POD,
    ip: '127.0.0.1',
    ready: true,
    meshed: true,
    serviceAccount: 'client',
    opaquePorts: [],
    labels: { app: 'client' },
    workload: 'client',
  });
  return { services, pods };
}

/** The addresses the proxy is sent to when it talks to `used` Services: the first `used`. */
export function usedTargets(used: number): { host: string; port: number }[] {
  return Array.from({ length: used }, (_, i) => ({ host: serviceIp(i), port: SERVICE_PORT }));
}
